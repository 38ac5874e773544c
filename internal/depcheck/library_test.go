package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// deps returns, for every package matching pattern, the package and its
// non-test imports, transitively: one "pkg imp imp …" per package reached.
func deps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pattern, err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// under reports whether pkg is prefix or a package below it.
func under(pkg, prefix string) bool {
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// TestVerifyImportsNoBuildxParser: the verifier reads a provenance
// record's cache spec with internal/cachespec (the grammar of one
// --cache-from value), not with internal/buildargs, the parser of
// buildx's whole command line.
func TestVerifyImportsNoBuildxParser(t *testing.T) {
	for pkg := range deps(t, module+"/verify/...") {
		if under(pkg, module+"/internal/buildargs") {
			t.Errorf("verify/... reaches %s; the verifier must not import the buildx argument parser (use internal/cachespec)", pkg)
		}
	}
}

// TestPolicyImportsNoRegistryCode: the policy model (verify/trustpolicy)
// parses and matches a file; it reaches no registry client (ggcr's remote
// packages, internal/registry), no signature reader (internal/signature),
// and none of the module's packages it reaches imports net/http. (The
// trusted root's parser, sigstore-go's pkg/root, links go-tuf, whose
// fetcher imports net/http; no code of the policy calls it.)
func TestPolicyImportsNoRegistryCode(t *testing.T) {
	const policy = module + "/verify/trustpolicy"
	all := deps(t, policy)
	if _, ok := all[policy]; !ok {
		t.Fatalf("%s is not in its own dependency list", policy)
	}
	forbidden := []string{
		"github.com/google/go-containerregistry/pkg/v1/remote",
		"github.com/google/go-containerregistry/pkg/registry",
		module + "/internal/registry",
		module + "/internal/signature",
		module + "/verify", // exactly: the verifier sits above the model
	}
	for pkg, imps := range all {
		for _, f := range forbidden {
			if pkg == f || (f != module+"/verify" && under(pkg, f)) {
				t.Errorf("%s reaches %s; the policy model must not import registry code", policy, pkg)
			}
		}
		if !under(pkg, module) {
			continue
		}
		for _, imp := range imps {
			if under(imp, "net/http") {
				t.Errorf("%s reaches %s, which imports %s; the policy model makes no requests", policy, pkg, imp)
			}
		}
	}
}
