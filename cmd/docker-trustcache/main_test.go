package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// testVersion is the version the tests' plugin binary is stamped with, as
// "make build" stamps it.
const testVersion = "v9.9.9-test"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// pluginBinary builds the plugin once for this package's tests, stamped with
// testVersion.
func pluginBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "trustcache-main-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "docker-trustcache")
		if out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion, "-o", binPath, ".").CombinedOutput(); err != nil {
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

// TestVersionStamp: the version "-ldflags -X main.version=…" stamps reaches
// the plugin metadata (initialised from it at package init) and --version.
func TestVersionStamp(t *testing.T) {
	checkVersion(t, pluginBinary(t), testVersion)
}

func TestPluginVersion(t *testing.T) {
	for _, tt := range []struct{ stamped, module, want string }{
		{"v1.2.3", "v1.0.0", "v1.2.3"}, // make build, make release
		{"dev", "v1.0.0", "v1.0.0"},    // go install …@v1.0.0
		{"dev", "v0.0.0-20260101000000-0123456789ab+dirty", "v0.0.0-20260101000000-0123456789ab+dirty"},
		{"dev", "(devel)", "dev"}, // go build in a checkout without version control information
		{"dev", "", "dev"},
	} {
		if got := pluginVersion(tt.stamped, tt.module); got != tt.want {
			t.Errorf("pluginVersion(%q, %q) = %q; want %q", tt.stamped, tt.module, got, tt.want)
		}
	}
}

// checkVersion runs the plugin binary bin as the docker CLI does and checks
// that it reports version in its metadata, on the fast path and through the
// plugin framework, and in "docker trustcache --version".
func checkVersion(t *testing.T, bin, version string) {
	t.Helper()
	for _, args := range [][]string{
		{"docker-cli-plugin-metadata"},
		{"--log-level", "error", "docker-cli-plugin-metadata"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s %s: %v", bin, strings.Join(args, " "), err)
			continue
		}
		var meta struct{ SchemaVersion, Vendor, Version string }
		if err := json.Unmarshal(out, &meta); err != nil {
			t.Errorf("%s %s: %v in %s", bin, strings.Join(args, " "), err, out)
			continue
		}
		if meta.SchemaVersion == "" || meta.Vendor != "docker-trustcache" || meta.Version != version {
			t.Errorf("%s %s = %+v; want schema version set, vendor docker-trustcache, version %s",
				bin, strings.Join(args, " "), meta, version)
		}
	}

	cmd := exec.Command(bin, "trustcache", "--version")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s trustcache --version: %v", bin, err)
	}
	if got, want := string(out), "docker-trustcache "+version+"\n"; got != want {
		t.Errorf("%s trustcache --version = %q; want %q", bin, got, want)
	}
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
		// Completion as the docker CLI asks for it ("trustcache __complete"
		// was never completion: it printed the help, and is now an unknown
		// command).
		{"__complete", "trustcache", ""},
		{"__complete", "trustcache", "verify", ""},
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
