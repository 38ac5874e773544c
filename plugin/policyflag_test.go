package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestPolicyFlagEverywhere: every command that takes a policy takes it as
// --trust-policy, with --policy as a synonym (build and bake parse their
// own flags: buildx owns --policy there).
func TestPolicyFlagEverywhere(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	for _, args := range [][]string{
		{"verify", "FLAG", "r.example/team/cache:main"},
		{"policy", "explain", "FLAG", "r.example/team/cache:main"},
		{"policy", "lint", "FLAG"},
		{"provenance", "FLAG", "r.example/team/cache:main"},
		{"serve", "--buildkit", "unix:///nonexistent.sock", "FLAG"},
	} {
		for _, flag := range []string{"--trust-policy", "--policy", "--trust-policy=", "--policy="} {
			file := "no-such-policy.yaml"
			var line []string
			for _, a := range args {
				switch {
				case a != "FLAG":
					line = append(line, a)
				case strings.HasSuffix(flag, "="):
					line = append(line, flag+file)
				default:
					line = append(line, flag, file)
				}
			}
			res := te.run(line...)
			if res.code != ExitUsage || !strings.Contains(res.stderr, file) {
				t.Errorf("%q = exit %d, %q; want exit %d naming %s", line, res.code, res.stderr, ExitUsage, file)
			}
		}
	}
	// sign needs no policy, but one named must exist.
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	for _, flag := range []string{"--trust-policy", "--policy"} {
		if res := te.run("sign", "--key", te.path("ci.key"), flag, "no-such-policy.yaml", "127.0.0.1:1/x:y"); res.code != ExitUsage || !strings.Contains(res.stderr, "no-such-policy.yaml") {
			t.Errorf("sign %s = exit %d, %q; want exit %d naming the file", flag, res.code, res.stderr, ExitUsage)
		}
	}

	// One name in every command's flags: a command with a flag of its own
	// called "policy" would be a second name.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if f := c.Flags().Lookup("policy"); f != nil && f.Name != flagTrustPolicy {
			t.Errorf("%s has a --%s flag; want --%s with --policy as its synonym", c.CommandPath(), f.Name, flagTrustPolicy)
		}
	}
	walk(NewRootCommand(nil, "test"))
	for _, args := range [][]string{{"verify"}, {"sign"}, {"serve"}, {"policy", "explain"}, {"policy", "lint"}, {"provenance"}} {
		help := te.run(append(args, "--help")...).stdout
		if !strings.Contains(help, "--trust-policy string") || !strings.Contains(help, "--policy is a synonym") {
			t.Errorf("%s --help lacks --trust-policy and its synonym:\n%s", args, help)
		}
	}
}

// TestNoPolicyMessages: the advice for a missing policy fits the command:
// lint takes FILE; serve never reads .trustcache.yaml.
func TestNoPolicyMessages(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	for _, tc := range []struct {
		args    []string
		want    string
		notWant string
	}{
		{[]string{"verify", "r.example/team/cache:main"}, "no policy: pass --trust-policy FILE, set TRUSTCACHE_POLICY, add .trustcache.yaml at the root of your repository", ""},
		{[]string{"policy", "lint"}, "no policy: pass the policy FILE, set TRUSTCACHE_POLICY, add .trustcache.yaml", "--policy"},
		{[]string{"serve", "--buildkit", "unix:///nonexistent.sock"}, "no policy: pass --trust-policy FILE, set TRUSTCACHE_POLICY, or put one at ", ".trustcache.yaml"},
	} {
		res := te.run(tc.args...)
		if res.code != ExitUsage || !strings.Contains(res.stderr, tc.want) || tc.notWant != "" && strings.Contains(res.stderr, tc.notWant) {
			t.Errorf("%q = exit %d, %q; want exit %d with %q and without %q", tc.args, res.code, res.stderr, ExitUsage, tc.want, tc.notWant)
		}
	}
}

// TestPolicyLintFileOrFlag: policy lint takes FILE or --trust-policy FILE,
// not two different ones.
func TestPolicyLintFileOrFlag(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	te.run("keys", "generate", "--name", "ci", "--dir", dir)
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n"
	for _, f := range []string{"a.yaml", "b.yaml"} {
		os.WriteFile(filepath.Join(dir, f), []byte(policy), 0o644)
	}
	a := te.path("a.yaml")
	for _, args := range [][]string{{a}, {"--trust-policy", a}, {"--policy", a}, {a, "--trust-policy", a}} {
		if res := te.run(append([]string{"policy", "lint"}, args...)...); res.code != 0 || res.stdout != a+": ok\n" {
			t.Errorf("policy lint %q = exit %d, %q %q; want a.yaml: ok", args, res.code, res.stdout, res.stderr)
		}
	}
	if res := te.run("policy", "lint", a, "--trust-policy", te.path("b.yaml")); res.code != ExitUsage || !strings.Contains(res.stderr, "two policies") {
		t.Errorf("policy lint with two policies = exit %d, %q; want exit %d", res.code, res.stderr, ExitUsage)
	}
}

// TestBuildPolicyFlagGuard: build and bake stop, before buildx runs, at a
// --policy (buildx's flag) that names a trustcache policy, and say which
// flag was meant; buildx's own --policy values pass through.
func TestBuildPolicyFlagGuard(t *testing.T) {
	dir := isolate(t)
	run(t, "keys", "generate", "--name", "ci")
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n"
	os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644)
	os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("apiVersion: v1\nkind: Config\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bake.hcl"), []byte("target \"default\" {}\n"), 0o644)
	argsFile := fakeDocker(t, dir, 0)
	for _, cmd := range []string{"build", "bake"} {
		for _, value := range []string{".trustcache.yaml", "filename=.trustcache.yaml"} {
			os.Remove(argsFile)
			res := run(t, cmd, "--policy", value, ".")
			want := "did you mean --trust-policy .trustcache.yaml?"
			if res.code != ExitUsage || !strings.Contains(res.stderr, want) {
				t.Errorf("%s --policy %s = exit %d, %q; want exit %d with %q", cmd, value, res.code, res.stderr, ExitUsage, want)
			}
			if _, err := os.Stat(argsFile); err == nil {
				t.Errorf("%s --policy %s: buildx ran", cmd, value)
			}
		}
	}
	for _, value := range []string{"log-level=debug", "filename=Dockerfile.rego", "other.yaml"} {
		os.Remove(argsFile)
		if res := run(t, "build", "--policy", value, "."); res.code != 0 {
			t.Errorf("build --policy %s = exit %d, %q; want it passed to buildx", value, res.code, res.stderr)
		} else if got := strings.Join(readArgs(t, argsFile), " "); !strings.Contains(got, "--policy "+value) {
			t.Errorf("build --policy %s: buildx got %q", value, got)
		}
	}
}

// TestBuildSummaryWhenBuildFails: the summary says "used" only for a
// build that succeeded; for one that failed or never ran it says so, and
// what was decided.
func TestBuildSummaryWhenBuildFails(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"" + host + "/team/*\"]\n    builders: [ci]\n  - repositories: [\"" + host + "/strict/*\"]\n    builders: [ci]\n    onUntrusted: fail\n"
	os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644)
	good := host + "/team/cache:main"
	pushRandom(t, good)
	pushRandom(t, host+"/strict/cache:unsigned")
	if res := run(t, "sign", "--key", "ci.key", good); res.code != 0 {
		t.Fatal(res.stderr)
	}
	for _, tc := range []struct {
		name   string
		code   int // buildx's exit status
		args   []string
		header string
		label  string
	}{
		{"succeeded", 0, nil, "trustcache: summary\n", "  used     "},
		{"failed", 1, nil, "trustcache: summary: the build failed; what was decided for its caches:\n", "  verified "},
		{"did not run", 0, []string{"--cache-from", host + "/strict/cache:unsigned"}, "trustcache: summary: the build did not run; what was decided for its caches:\n", "  verified "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeDocker(t, dir, tc.code)
			res := run(t, append(append([]string{"build", "--cache-from", good}, tc.args...), ".")...)
			if !strings.Contains(res.stderr, tc.header) || !strings.Contains(res.stderr, tc.label+"type=registry,ref="+good) && !strings.Contains(res.stderr, tc.label+good) {
				t.Errorf("stderr:\n%s\nwant %q and %q", res.stderr, tc.header, tc.label+good)
			}
			if tc.code != 0 || tc.args != nil {
				if strings.Contains(res.stderr, "  used ") {
					t.Errorf("stderr says used for a build that did not succeed:\n%s", res.stderr)
				}
			}
		})
	}
}
