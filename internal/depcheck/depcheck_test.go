// Package depcheck pins the import direction cmd → plugin → verify → keys:
// the trust decision and the key material import no command-line code.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are import path prefixes verify/ and keys/ must not reach.
var forbidden = []string{
	"github.com/spf13/cobra",
	"github.com/spf13/pflag",
	"github.com/docker/cli/cli/command", // the docker CLI's commands (config packages are fine: ggcr's keychain reads the config)
	"github.com/docker/cli/cli-plugins",
	"github.com/docker-trustcache/docker-trustcache/plugin",
	"github.com/docker-trustcache/docker-trustcache/cmd/",
}

func TestImportDirection(t *testing.T) {
	for _, pkg := range []string{
		"github.com/docker-trustcache/docker-trustcache/verify",
		"github.com/docker-trustcache/docker-trustcache/keys",
		"github.com/docker-trustcache/docker-trustcache/internal/signature",
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s imports %s; it must not import %s*", pkg, dep, f)
				}
			}
		}
	}
}

func TestKeysDoNotImportVerify(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/docker-trustcache/docker-trustcache/keys").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "docker-trustcache/verify") {
		t.Errorf("keys imports verify; the direction is verify → keys")
	}
}

// heavyForStartUp are packages the plugin binary must not link: Go
// initialises every linked package in every run, and these (the docker
// CLI's command package and plugin framework, with its API client and
// OpenTelemetry export) cost the metadata command, --help, completion and
// every verification most of their start-up (docs/performance.md).
// internal/cli/plugin keeps the docker CLI's plugin contract without them.
var heavyForStartUp = []string{
	"github.com/docker/cli/cli",         // exactly: cli/config, cli/streams and cli-plugins/metadata, socket are light
	"github.com/docker/cli/cli/command", // and below
	"github.com/docker/cli/cli/flags",
	"github.com/docker/cli/cli-plugins/plugin",
	"github.com/docker/cli/cli-plugins/manager",
	"github.com/moby/moby/client",
	"go.opentelemetry.io/",
	"github.com/distribution/reference",
}

func TestPluginBinaryStartUpDeps(t *testing.T) {
	const bin = "github.com/docker-trustcache/docker-trustcache/cmd/docker-trustcache"
	out, err := exec.Command("go", "list", "-deps", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", bin, err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, h := range heavyForStartUp {
			exact := h == "github.com/docker/cli/cli"
			if (exact && dep == h) || (!exact && (dep == h || strings.HasPrefix(dep, strings.TrimSuffix(h, "/")+"/") || strings.HasSuffix(h, "/") && strings.HasPrefix(dep, h))) {
				t.Errorf("%s links %s: it must not link %s (start-up cost; see internal/cli/plugin)", bin, dep, h)
			}
		}
	}
}

// TestOneConcernPackages: the small packages moved out of the commands
// (issue 17) stay leaves — none imports the commands, the trust decision or
// the CLI framework — and the trust decision imports none of the command
// layer's helpers.
func TestOneConcernPackages(t *testing.T) {
	const m = "github.com/docker-trustcache/docker-trustcache/"
	leaves := map[string][]string{
		m + "internal/cli/plugin":   {m + "plugin", m + "verify", m + "keys", m + "internal/signature", m + "internal/registry", m + "internal/app/gateway"},
		m + "internal/dockerconfig": {m + "plugin", m + "verify", m + "internal/cli", "github.com/spf13/cobra"},
		m + "internal/cicontext":    {m, "github.com/spf13/cobra"},
		m + "internal/atomicfile":   {m, "github.com/"},
		m + "internal/termtext":     {m + "plugin", m + "verify", m + "keys", m + "internal/app", "github.com/spf13/"},
		// The build and bake pipeline takes its environment, streams and
		// buildx as values: no command framework, no docker CLI.
		m + "internal/app/pipeline": {m + "plugin", m + "internal/cli", m + "internal/dockerconfig", "github.com/spf13/cobra", "github.com/spf13/pflag", "github.com/docker/cli/cli/command", "github.com/docker/cli/cli-plugins"},
		m + "verify":                {"github.com/spf13/cobra", m + "internal/cli", m + "internal/dockerconfig", m + "internal/cicontext", m + "internal/app/gateway", m + "internal/endpoint"},
	}
	for pkg, forbiddenHere := range leaves {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbiddenHere {
				if dep != pkg && (dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/")) {
					t.Errorf("%s imports %s; it must not import %s", pkg, dep, f)
				}
			}
		}
	}
}

// TestStorageApartFromDecision: the trust ledger's store (internal/ledger)
// and the trust decision (verify) are apart. verify imports no storage
// internals (bbolt, flock) itself; it reaches the file only through
// internal/ledger. The store imports neither the decision nor the
// registry code (it stores what it is given), and the registry transport
// (internal/registry, whose ping store lives in the ledger file) does not
// import the decision.
func TestStorageApartFromDecision(t *testing.T) {
	const m = "github.com/docker-trustcache/docker-trustcache/"
	direct := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -f .Imports %s: %v\n%s", pkg, err, out)
		}
		return strings.Fields(string(out))
	}
	for _, imp := range direct(m + "verify") {
		for _, f := range []string{"go.etcd.io/bbolt", "github.com/gofrs/flock", "github.com/google/go-containerregistry/pkg/v1/remote/transport"} {
			if imp == f || strings.HasPrefix(imp, f+"/") {
				t.Errorf("verify imports %s; storage and transport internals belong to internal/ledger and internal/registry", imp)
			}
		}
	}
	for pkg, forbiddenHere := range map[string][]string{
		m + "internal/ledger":   {m + "verify", m + "keys", m + "internal/registry", m + "internal/signature", "github.com/google/go-containerregistry", "github.com/sigstore/"},
		m + "internal/registry": {m + "verify", m + "keys", m + "internal/signature"},
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbiddenHere {
				if dep != pkg && (dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/")) {
					t.Errorf("%s imports %s; it must not import %s", pkg, dep, f)
				}
			}
		}
	}
}
