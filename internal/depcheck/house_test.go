package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/docker-trustcache/docker-trustcache"

// imports returns every package of the module with its non-test imports.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s/...: %v\n%s", module, err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// TestHarnessOnlyInTests: internal/testreg (the test harness) is imported
// by _test.go files only; no package of the module, and so no binary,
// links it.
func TestHarnessOnlyInTests(t *testing.T) {
	const harness = module + "/internal/testreg"
	all := imports(t)
	if _, ok := all[harness]; !ok {
		t.Fatalf("%s is not in the module's package list", harness)
	}
	for pkg, imps := range all {
		for _, imp := range imps {
			if imp == harness {
				t.Errorf("%s imports %s outside its tests; only _test.go files may", pkg, harness)
			}
		}
	}
}

// TestDecisionImportsOnlyVerify: the verdict → cache action table
// (verify/decision) depends on the verdicts and the policy model and
// nothing else of the module: no command, gateway, endpoint, storage or
// transport package.
func TestDecisionImportsOnlyVerify(t *testing.T) {
	const decision = module + "/verify/decision"
	imps, ok := imports(t)[decision]
	if !ok {
		t.Fatalf("%s is not in the module's package list", decision)
	}
	for _, imp := range imps {
		switch imp {
		case module + "/verify", module + "/verify/trustpolicy", module + "/verify/provenance":
			continue // the verdicts, the policy model, the record format that carries the words
		}
		if strings.HasPrefix(imp, module+"/") {
			t.Errorf("%s imports %s; it may import only verify, verify/trustpolicy and verify/provenance of the module", decision, imp)
		}
	}
}
