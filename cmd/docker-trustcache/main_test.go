package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// pluginBinary builds the plugin once for this package's tests.
func pluginBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "trustcache-main-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "docker-trustcache")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// TestMetadataFastPath: the metadata the fast path prints is byte for byte
// what the plugin framework prints.
func TestMetadataFastPath(t *testing.T) {
	bin := pluginBinary(t)
	fast, err := exec.Command(bin, "docker-cli-plugin-metadata").Output()
	if err != nil {
		t.Fatal(err)
	}
	// With a global flag before it, the fast path is not taken and the
	// plugin framework answers.
	cmd := exec.Command(bin, "--log-level", "error", "docker-cli-plugin-metadata")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	framework, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fast, framework) {
		t.Errorf("fast path metadata:\n%s\nframework metadata:\n%s", fast, framework)
	}
}

// TestStartupSetsUpNothing: metadata, help and completion set up no
// verification state: with a policy that does not parse, no reachable
// registry or proxy, and an empty docker config dir, they succeed and write
// nothing (no ledger, no config).
func TestStartupSetsUpNothing(t *testing.T) {
	bin := pluginBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "docker-config")
	policy := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(policy, []byte("version: ["), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"docker-cli-plugin-metadata"},
		{"trustcache", "--help"},
		{"trustcache", "verify", "--help"},
		{"trustcache", "ledger", "--help"},
		{"trustcache", "__complete", ""},
		{"trustcache", "__complete", "verify", ""},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg, "TRUSTCACHE_POLICY="+policy,
			"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	var written []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if path != dir && path != policy {
			written = append(written, path)
		}
		return nil
	})
	if len(written) > 0 {
		t.Errorf("metadata, help and completion wrote %v; want nothing", written)
	}
}
