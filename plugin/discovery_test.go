package plugin

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// discoveryLayout is a test's filesystem for policy discovery:
//
//	DIR/outside/.trustcache.yaml        beyond the repository root: never found
//	DIR/outside/repo/.git               the repository root
//	DIR/outside/repo/.trustcache.yaml
//	DIR/outside/repo/sub/deeper/        the working directory
//	DIR/flag.yaml, DIR/env.yaml
//	$DOCKER_CONFIG/trustcache/policy.yaml
//
// Every one is a valid policy; which one was used shows in the
// "PATH: ok" of policy lint.
type discoveryLayout struct {
	te                                  *testEnv
	dir, outside, repo, deeper          string
	flag, env, repoPolicy, configPolicy string
}

// discoveryPolicy is a valid policy whose builder key is the absolute path
// pub, so it loads from wherever it is.
func discoveryPolicy(pub string) string {
	return "version: 1\nbuilders:\n  - name: ci\n    key: " + pub +
		"\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n"
}

func writeDiscoveryKey(t *testing.T, path string) {
	t.Helper()
	k := testreg.Key(t)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeDiscoveryFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newDiscoveryLayout gives the test (run in parallel) a testEnv, writes
// every policy of the layout (all but none, when none) and starts
// discovery in the deeper directory.
func newDiscoveryLayout(t *testing.T, none bool) discoveryLayout {
	t.Helper()
	t.Parallel()
	te := newTestEnv(t, nil)
	// The temp dir may resolve through symbolic links; discovery prints
	// absolute paths from the working directory as the OS reports it.
	dir, err := filepath.EvalSymlinks(te.dir)
	if err != nil {
		t.Fatal(err)
	}
	l := discoveryLayout{
		te:           te,
		dir:          dir,
		outside:      filepath.Join(dir, "outside"),
		repo:         filepath.Join(dir, "outside", "repo"),
		deeper:       filepath.Join(dir, "outside", "repo", "sub", "deeper"),
		flag:         filepath.Join(dir, "flag.yaml"),
		env:          filepath.Join(dir, "env.yaml"),
		repoPolicy:   filepath.Join(dir, "outside", "repo", ".trustcache.yaml"),
		configPolicy: filepath.Join(te.env.ConfigDir, "trustcache", "policy.yaml"),
	}
	if err := os.MkdirAll(filepath.Join(l.repo, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.deeper, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test dir is a repository root too, so that nothing above it (a
	// stray /tmp/.trustcache.yaml) is ever found.
	if err := os.MkdirAll(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "ci.pub")
	writeDiscoveryKey(t, pub)
	if !none {
		for _, p := range []string{l.flag, l.env, l.repoPolicy, l.configPolicy, filepath.Join(l.outside, ".trustcache.yaml")} {
			writeDiscoveryFile(t, p, discoveryPolicy(pub))
		}
	}
	te.env.WorkDir = l.deeper
	return l
}

func wantDiscoveryLint(t *testing.T, res cmdResult, path string) {
	t.Helper()
	if want := path + ": ok\n"; res.code != 0 || res.stdout != want {
		t.Errorf("policy lint = exit %d, stdout %q, stderr %q; want exit 0 and %q", res.code, res.stdout, res.stderr, want)
	}
}

// TestDiscoveryOrder: the --policy flag (here lint's FILE argument), then
// TRUSTCACHE_POLICY, then .trustcache.yaml from the working directory up to
// the repository root, then $DOCKER_CONFIG/trustcache/policy.yaml.
func TestDiscoveryOrder(t *testing.T) {
	t.Parallel()
	t.Run("flag beats everything", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		l.te.vars["TRUSTCACHE_POLICY"] = l.env
		wantDiscoveryLint(t, l.te.run("policy", "lint", l.flag), l.flag)
	})
	t.Run("TRUSTCACHE_POLICY beats .trustcache.yaml", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		l.te.vars["TRUSTCACHE_POLICY"] = l.env
		wantDiscoveryLint(t, l.te.run("policy", "lint"), l.env)
	})
	t.Run(".trustcache.yaml at the repository root, from a subdirectory", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		wantDiscoveryLint(t, l.te.run("policy", "lint"), l.repoPolicy)
	})
	t.Run("the nearest .trustcache.yaml wins", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		nearer := filepath.Join(l.repo, "sub", ".trustcache.yaml")
		data, err := os.ReadFile(l.repoPolicy)
		if err != nil {
			t.Fatal(err)
		}
		writeDiscoveryFile(t, nearer, string(data))
		wantDiscoveryLint(t, l.te.run("policy", "lint"), nearer)
	})
	t.Run("not beyond the directory holding .git", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		if err := os.Remove(l.repoPolicy); err != nil {
			t.Fatal(err)
		}
		// outside/.trustcache.yaml is one level above the repository root.
		wantDiscoveryLint(t, l.te.run("policy", "lint"), l.configPolicy)
	})
	t.Run("a .git file (worktree, submodule) marks the root too", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		if err := os.Remove(l.repoPolicy); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(l.repo, ".git")); err != nil {
			t.Fatal(err)
		}
		writeDiscoveryFile(t, filepath.Join(l.repo, ".git"), "gitdir: /elsewhere/.git/worktrees/repo\n")
		wantDiscoveryLint(t, l.te.run("policy", "lint"), l.configPolicy)
	})
	t.Run("without a repository, up to the filesystem root", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		if err := os.Remove(l.repoPolicy); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(l.repo, ".git")); err != nil {
			t.Fatal(err)
		}
		wantDiscoveryLint(t, l.te.run("policy", "lint"), filepath.Join(l.outside, ".trustcache.yaml"))
	})
	t.Run("the docker config dir last", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		for _, p := range []string{l.repoPolicy, filepath.Join(l.outside, ".trustcache.yaml")} {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		wantDiscoveryLint(t, l.te.run("policy", "lint"), l.configPolicy)
		// verify finds the same one: a policy, so it goes on to the
		// registry (none here: inconclusive), not a configuration error.
		res := l.te.run("verify", "--no-ledger", "127.0.0.1:1/team/cache:main")
		if res.code != ExitInconclusive {
			t.Errorf("verify with the docker config dir's policy = %d %q; want %d", res.code, res.stderr, ExitInconclusive)
		}
		if want := "  policy:  " + l.configPolicy + "\n"; !strings.Contains(res.stdout, want) {
			t.Errorf("verify's text output %q does not name the policy used (%q)", res.stdout, want)
		}
	})
}

// TestDiscoveryNone: no policy anywhere is a configuration error whose
// message lists every way to give one.
func TestDiscoveryNone(t *testing.T) {
	l := newDiscoveryLayout(t, true)
	for _, args := range [][]string{
		{"policy", "lint"},
		{"verify", "127.0.0.1:1/team/cache:main"},
		{"policy", "explain", "127.0.0.1:1/team/cache:main"},
	} {
		res := l.te.run(args...)
		if res.code != ExitUsage {
			t.Errorf("%s with no policy = exit %d %q; want %d", strings.Join(args, " "), res.code, res.stderr, ExitUsage)
		}
		for _, want := range []string{"no policy", "FILE", "TRUSTCACHE_POLICY", ".trustcache.yaml", l.configPolicy} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("%s with no policy: stderr %q does not mention %q", strings.Join(args, " "), res.stderr, want)
			}
		}
		if res.stdout != "" {
			t.Errorf("%s with no policy printed %q on stdout", strings.Join(args, " "), res.stdout)
		}
	}
}

// TestDiscoveryExplicitChoiceIsNotSkipped: a policy named by the flag or
// TRUSTCACHE_POLICY that is missing or invalid is an error naming it; the
// search does not go on to a policy the user did not choose.
func TestDiscoveryExplicitChoiceIsNotSkipped(t *testing.T) {
	t.Parallel()
	t.Run("flag names a missing file", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		missing := filepath.Join(l.dir, "missing.yaml")
		res := l.te.run("policy", "lint", missing)
		if res.code != ExitUsage || !strings.Contains(res.stderr, missing) || res.stdout != "" {
			t.Errorf("policy lint %s = exit %d %q %q; want exit %d naming it", missing, res.code, res.stdout, res.stderr, ExitUsage)
		}
	})
	t.Run("TRUSTCACHE_POLICY names a missing file", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		missing := filepath.Join(l.dir, "missing.yaml")
		l.te.vars["TRUSTCACHE_POLICY"] = missing
		res := l.te.run("policy", "lint")
		if res.code != ExitUsage || !strings.Contains(res.stderr, missing) || res.stdout != "" {
			t.Errorf("policy lint with TRUSTCACHE_POLICY=%s = exit %d %q %q; want exit %d naming it", missing, res.code, res.stdout, res.stderr, ExitUsage)
		}
	})
	t.Run("an invalid .trustcache.yaml is not skipped for the docker config dir's", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		writeDiscoveryFile(t, l.repoPolicy, "version: 1\nbuilders: []\nscopes:\n  - repositories: [\"**\"]\n    builders: [nobody]\n")
		res := l.te.run("policy", "lint")
		if res.code != ExitUsage || !strings.Contains(res.stderr, l.repoPolicy) || res.stdout != "" {
			t.Errorf("policy lint with an invalid %s = exit %d %q %q; want exit %d naming it", l.repoPolicy, res.code, res.stdout, res.stderr, ExitUsage)
		}
	})
}

// TestDiscoveryBounds: the search for .trustcache.yaml stops at the
// repository root, the user's home directory and a filesystem boundary;
// it never takes a policy that someone else could have written (a file
// owned by another user, or in a directory others can write, such as
// /tmp), and never follows a policy that is a symbolic link out of the
// directory it was found in. Skipped files are named on stderr.
func TestDiscoveryBounds(t *testing.T) {
	t.Parallel()
	noRepo := func(t *testing.T, l discoveryLayout) {
		t.Helper()
		for _, p := range []string{l.repoPolicy, filepath.Join(l.repo, ".git")} {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("not above the home directory", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		noRepo(t, l)
		l.te.vars["HOME"] = l.repo
		// outside/.trustcache.yaml is above $HOME.
		wantDiscoveryLint(t, l.te.run("policy", "lint"), l.configPolicy)
	})
	t.Run("the home directory itself is searched", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		noRepo(t, l)
		l.te.vars["HOME"] = l.outside
		wantDiscoveryLint(t, l.te.run("policy", "lint"), filepath.Join(l.outside, ".trustcache.yaml"))
	})
	t.Run("not in a directory others can write", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		noRepo(t, l)
		// A shared directory like /tmp: world-writable, sticky.
		if err := os.Chmod(l.outside, 0o1777); err != nil {
			t.Fatal(err)
		}
		res := l.te.run("policy", "lint")
		wantDiscoveryLint(t, res, l.configPolicy)
		if want := filepath.Join(l.outside, ".trustcache.yaml"); !strings.Contains(res.stderr, want) || !strings.Contains(res.stderr, "writable by others") {
			t.Errorf("stderr %q does not say why %s was skipped", res.stderr, want)
		}
	})
	t.Run("not a file owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a file to another user")
		}
		l := newDiscoveryLayout(t, false)
		noRepo(t, l)
		p := filepath.Join(l.outside, ".trustcache.yaml")
		if err := os.Chown(p, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		res := l.te.run("policy", "lint")
		wantDiscoveryLint(t, res, l.configPolicy)
		if !strings.Contains(res.stderr, p) || !strings.Contains(res.stderr, "owned by") {
			t.Errorf("stderr %q does not say why %s was skipped", res.stderr, p)
		}
	})
	t.Run("a symbolic link out of its directory is refused, its target never quoted", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		secret := filepath.Join(l.dir, "git-credentials")
		writeDiscoveryFile(t, secret, "https://user:s3cret-token@github.example\n")
		if err := os.Remove(l.repoPolicy); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(secret, l.repoPolicy); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"policy", "lint"}, {"verify", "127.0.0.1:1/team/cache:main"}} {
			res := l.te.run(args...)
			if res.code != ExitUsage || !strings.Contains(res.stderr, l.repoPolicy) || !strings.Contains(res.stderr, "symbolic link") {
				t.Errorf("%v with a symlinked policy = exit %d %q; want %d naming %s", args, res.code, res.stderr, ExitUsage, l.repoPolicy)
			}
			if strings.Contains(res.stdout+res.stderr, "s3cret") {
				t.Errorf("%v quoted the symlink's target: %q %q", args, res.stdout, res.stderr)
			}
		}
	})
	t.Run("a symbolic link within its directory is followed", func(t *testing.T) {
		l := newDiscoveryLayout(t, false)
		target := filepath.Join(l.repo, "policies", "ci.yaml")
		writeDiscoveryFile(t, target, string(mustRead(t, l.repoPolicy)))
		if err := os.Remove(l.repoPolicy); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("policies", "ci.yaml"), l.repoPolicy); err != nil {
			t.Fatal(err)
		}
		wantDiscoveryLint(t, l.te.run("policy", "lint"), l.repoPolicy)
	})
}

// TestPolicyErrorsQuoteNoContent: a file that is not a policy at all (a
// credentials file given or linked by mistake) gets an error naming the
// file, line and column and what was expected, never its content.
func TestPolicyErrorsQuoteNoContent(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	for name, content := range map[string]string{
		"scalar":      "https://user:s3cret-token@github.example\n",
		"list":        "- s3cret-token\n",
		"unknown key": "s3cret-token: 1\n",
		"odd key":     "\"https://user:s3cret-token@github.example\": 1\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		writeDiscoveryFile(t, p, content)
		res := te.run("policy", "lint", p)
		if res.code != ExitUsage || !strings.Contains(res.stderr, p+":1:") {
			t.Errorf("policy lint %s = exit %d %q; want %d naming %s:1:COLUMN", name, res.code, res.stderr, ExitUsage, p)
		}
		if strings.Contains(res.stdout+res.stderr, "s3cret") {
			t.Errorf("policy lint %s quoted the file's content: %q", name, res.stderr)
		}
	}
}
