package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMetadataFastPath: the metadata the fast path prints is byte for byte
// what the plugin framework prints.
func TestMetadataFastPath(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "docker-trustcache")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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
