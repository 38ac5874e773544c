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
