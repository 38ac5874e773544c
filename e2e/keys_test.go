//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginInstalled: the docker CLI lists the plugin and its commands,
// and its metadata is valid.
func TestPluginInstalled(t *testing.T) {
	e := newEnv(t)
	r := e.docker(t, "--help").must(t)
	if !strings.Contains(r.stdout, "trustcache*") {
		t.Errorf("docker --help does not list trustcache:\n%s", r.stdout)
	}
	r = e.trustcache(t, "--help").must(t)
	for _, c := range []string{"build", "sign", "verify", "keys", "policy"} {
		if !strings.Contains(r.stdout, "\n  "+c+" ") {
			t.Errorf("docker trustcache --help does not list %q:\n%s", c, r.stdout)
		}
	}
	r = e.run(t, nil, filepath.Join(e.dockerConfig, "cli-plugins", "docker-trustcache"), "docker-cli-plugin-metadata").must(t)
	var md map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &md); err != nil || md["SchemaVersion"] != "0.1.0" || md["Vendor"] == "" {
		t.Errorf("metadata = %q (%v)", r.stdout, err)
	}
}

// TestKeysInterop: keys made by each tool load in the other; the key id is
// the contract's.
func TestKeysInterop(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "tc")
	fi, err := os.Stat(filepath.Join(e.dir, "tc.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tc.key mode = %v (%v); want 0600", fi.Mode().Perm(), err)
	}
	e.trustcache(t, "keys", "generate", "--name", "tc", "--dir", e.dir).wantCode(t, 2)

	// cosign reads our private key (it signs with it) …
	ref, digest := pushRandomImage(t, uniqueRepo(t))
	e.cosign(t, "sign", "--key", "tc.key", "--tlog-upload=false", "-y", repoOf(ref)+"@"+digest).must(t)
	e.cosign(t, cosignVerifyArgs("tc.pub", repoOf(ref)+"@"+digest)...).must(t)
	// … and cosign's public key has the id of the contract.
	e.cosign(t, "generate-key-pair").must(t)
	r := e.trustcache(t, "keys", "id", "cosign.pub").must(t)
	if id := strings.TrimSpace(r.stdout); !strings.HasPrefix(id, "sha256:") || len(id) != len("sha256:")+64 {
		t.Errorf("keys id = %q", id)
	}
}
