package policyfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// write writes a file (and its directories) with mode.
func write(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("version: 1\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// tempDir is t.TempDir with its symbolic links resolved (discovery
// returns paths under the absolute start directory).
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func envOf(vars map[string]string, configDir string) Env {
	return Env{Lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, ConfigDir: configDir}
}

// TestFindOrder: the flag, then TRUSTCACHE_POLICY, then a discovered
// .trustcache.yaml, then the config dir's policy; none is a
// *NoPolicyError naming where the config dir's would be.
func TestFindOrder(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	repo := filepath.Join(dir, "repo")
	sub := filepath.Join(repo, "sub")
	if err := os.MkdirAll(filepath.Join(repo, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	configDir := filepath.Join(dir, "config")
	vars := map[string]string{"HOME": dir}

	none, err := Find(envOf(vars, configDir), "", sub, nil)
	var npe *NoPolicyError
	if !errors.As(err, &npe) || none != "" || npe.ConfigPolicy != ConfigPolicy(configDir) || !npe.Discovers {
		t.Fatalf("Find with no policy = %q, %v; want a *NoPolicyError naming %s", none, err, ConfigPolicy(configDir))
	}
	if !strings.Contains(err.Error(), EnvPolicy) || !strings.Contains(err.Error(), FileName) {
		t.Errorf("no policy error %q does not name %s and %s", err, EnvPolicy, FileName)
	}
	inConfig := write(t, ConfigPolicy(configDir), 0o644)
	inRepo := write(t, filepath.Join(repo, FileName), 0o644)
	for _, tc := range []struct {
		name, given, env, start, want string
	}{
		{"flag first", "given.yaml", "env.yaml", sub, "given.yaml"},
		{"then the environment", "", "env.yaml", sub, "env.yaml"},
		{"then the repository", "", "", sub, inRepo},
		{"a server discovers nothing", "", "", "", inConfig},
		{"outside the repository, the config dir", "", "", dir, inConfig},
	} {
		v := map[string]string{"HOME": dir}
		if tc.env != "" {
			v[EnvPolicy] = tc.env
		}
		got, err := Find(envOf(v, configDir), tc.given, tc.start, nil)
		if err != nil || got != tc.want {
			t.Errorf("%s: Find = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestDiscoverBounds: the walk stops at the repository root, at HOME and
// never takes a file others could have written.
func TestDiscoverBounds(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	home := filepath.Join(dir, "home")
	start := filepath.Join(home, "a", "b")
	if err := os.MkdirAll(start, 0o755); err != nil {
		t.Fatal(err)
	}
	above := write(t, filepath.Join(dir, FileName), 0o644) // above HOME
	if got, err := Discover(start, home, nil); got != "" || err != nil {
		t.Errorf("Discover = %q, %v; want nothing (%s is above HOME)", got, err, above)
	}
	if got, _ := Discover(start, "", nil); got != above {
		t.Errorf("Discover without HOME = %q; want %q", got, above)
	}
	inA := write(t, filepath.Join(home, "a", FileName), 0o644)
	if err := os.Mkdir(filepath.Join(start, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, _ := Discover(start, home, nil); got != "" {
		t.Errorf("Discover = %q; want nothing above the repository root", got)
	}
	os.Remove(filepath.Join(start, ".git"))
	if got, _ := Discover(start, home, nil); got != inA {
		t.Errorf("Discover = %q; want %q", got, inA)
	}

	// Another's to write: skipped with a warning, the walk goes on.
	writable := write(t, filepath.Join(start, FileName), 0o666)
	var warn bytes.Buffer
	if got, _ := Discover(start, home, &warn); got != inA || !strings.Contains(warn.String(), "not using "+writable+": the file is writable by others") {
		t.Errorf("Discover past a world-writable file = %q, warning %q; want %q and a warning", got, warn.String(), inA)
	}
}

// TestDiscoverSymlinks: a discovered link is followed within its directory
// only; one out of it is a *RefusedError naming the link.
func TestDiscoverSymlinks(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(filepath.Join(repo, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	outside := write(t, filepath.Join(dir, "secret.yaml"), 0o644)
	link := filepath.Join(repo, FileName)
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	got, err := Discover(repo, "", nil)
	var re *RefusedError
	if !errors.As(err, &re) || re.Path != link || got != "" || strings.Contains(err.Error(), "version") {
		t.Fatalf("Discover of a link out of its directory = %q, %v; want a *RefusedError naming %s", got, err, link)
	}
	os.Remove(link)
	write(t, filepath.Join(repo, "policy.yaml"), 0o644)
	if err := os.Symlink("policy.yaml", link); err != nil {
		t.Fatal(err)
	}
	if got, err := Discover(repo, "", nil); got != link || err != nil {
		t.Errorf("Discover of a link within its directory = %q, %v; want %q", got, err, link)
	}
	os.Remove(link)
	if err := os.Mkdir(link, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Discover(repo, "", nil); !errors.As(err, &re) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Discover of a directory = %v; want a *RefusedError, not a regular file", err)
	}
}
