package trustedbuilder

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Only credentials held in config.json itself are copied, with no other
// setting; helper-kept ones are named; the copy is the gateway's alone.
func TestCopyRegistryAuth(t *testing.T) {
	cfgDir, state := t.TempDir(), t.TempDir()
	cfg := `{"auths":{"ghcr.io":{"auth":"dXNlcjpwYXNz","email":"x"},"docker.io":{}},
	  "credHelpers":{"gcr.io":"gcloud"},"proxies":{"default":{"httpProxy":"http://p"}}}`
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	hosts, err := copyRegistryAuth(cfgDir, state, os.Getuid(), os.Getgid(), &progress)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hosts, []string{"ghcr.io"}) {
		t.Errorf("hosts = %v", hosts)
	}
	if !strings.Contains(progress.String(), "[docker.io gcr.io]") {
		t.Errorf("progress = %q; want the helper-kept registries named", progress.String())
	}
	path := filepath.Join(state, "config.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("copy: %v %v; want mode 0600", fi, err)
	}
	data, _ := os.ReadFile(path)
	var got map[string]map[string]map[string]string
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got["auths"]) != 1 || got["auths"]["ghcr.io"]["auth"] != "dXNlcjpwYXNz" || len(got["auths"]["ghcr.io"]) != 1 {
		t.Errorf("copied %s", data)
	}
	// No config.json: nothing to copy, no file.
	hosts, err = copyRegistryAuth(t.TempDir(), t.TempDir(), 0, 0, &progress)
	if err != nil || hosts != nil {
		t.Errorf("no config: %v %v", hosts, err)
	}
}
