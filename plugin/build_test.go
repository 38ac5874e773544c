package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-cmp/cmp"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
)

// fakeDocker installs scripts as the docker CLI the plugin re-executes and as
// the docker-buildx plugin it runs builds with: both record their arguments
// (one per line) in argsFile and exit with code.
func fakeDocker(t *testing.T, dir string, code int) (argsFile string) {
	t.Helper()
	argsFile = filepath.Join(dir, "docker-args")
	body := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > " + argsFile + "\nexit " + strconv.Itoa(code) + "\n"
	script := filepath.Join(dir, "docker")
	buildx := filepath.Join(config.Dir(), "cli-plugins", "docker-buildx")
	if err := os.MkdirAll(filepath.Dir(buildx), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{script, buildx} {
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", script)
	return argsFile
}

// endpointRef matches a reference to the build's verified content
// endpoint: 127.0.0.1:PORT/TOKEN/N@.
var endpointRef = regexp.MustCompile(`127\.0\.0\.1:\d+/[0-9a-f]{32}/\d+@`)

// viaEndpoint writes the verified content endpoint's references in args as
// "ENDPOINT@DIGEST": the port and token change from run to run.
func viaEndpoint(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = endpointRef.ReplaceAllString(a, "ENDPOINT@")
	}
	return out
}

func readArgs(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("docker was not run: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func TestBuildRewritesCacheFrom(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	run(t, "keys", "generate", "--name", "attacker")
	policy := `version: 1
builders:
  - name: ci
    key: ci.pub
scopes:
  - repositories: ["` + host + `/team/*"]
    builders: [ci]
  - repositories: ["` + host + `/audit/*"]
    builders: [ci]
    level: audit
  - repositories: ["` + host + `/skip/*"]
    builders: [ci]
    level: skip
`
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o644)
	good := host + "/team/cache:main"
	bad := host + "/team/cache:poisoned"
	audited := host + "/audit/cache:main"
	dGood := pushRandom(t, good)
	pushRandom(t, bad)
	dAudit := pushRandom(t, audited)
	if res := run(t, "sign", "--key", "ci.key", good); res.code != 0 {
		t.Fatal(res.stderr)
	}
	if res := run(t, "sign", "--key", "attacker.key", bad); res.code != 0 {
		t.Fatal(res.stderr)
	}
	argsFile := fakeDocker(t, dir, 0)
	res := run(t, "build", "--trust-policy", "policy.yaml", "--trust-report", "report.json",
		"--cache-from", good,
		"--cache-from=type=registry,ref="+bad+",mode=max",
		"--cache-from", `type=registry,"ref=`+audited+`"`,
		"--cache-from", "type=registry,ref="+host+"/skip/cache:x",
		"--cache-from", "type=local,src=/tmp/cache",
		"-t", "app:dev", "--build-arg", "A=--cache-from", ".")
	if res.code != 0 {
		t.Fatalf("build = %d %s", res.code, res.stderr)
	}
	want := []string{"buildx", "build",
		"--cache-from", "type=registry,ref=ENDPOINT@" + dGood.String(),
		"--cache-from", "type=registry,ref=ENDPOINT@" + dAudit.String(),
		"--cache-from", "type=registry,ref=" + host + "/skip/cache:x",
		"-t", "app:dev", "--build-arg", "A=--cache-from", "."}
	if diff := cmp.Diff(want, viaEndpoint(readArgs(t, argsFile))); diff != "" {
		t.Errorf("buildx argv (-want +got):\n%s", diff)
	}
	for _, w := range []string{"  policy   policy.yaml\n", "dropped cache type=registry,ref=" + bad, "not signed by any key in the policy", "dropped cache type=local", "pinned to " + host + "/team/cache@" + dGood.String()} {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("build stderr lacks %q:\n%s", w, res.stderr)
		}
	}
	var rep pipeline.Report
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(data, &rep) != nil {
		t.Fatalf("trust report: %v %s", err, data)
	}
	var actions []string
	for _, c := range rep.Caches {
		actions = append(actions, c.Action.String())
	}
	if diff := cmp.Diff([]string{"used", "dropped", "used", "passed", "dropped"}, actions); diff != "" || !rep.Built {
		t.Errorf("report actions (-want +got):\n%s built=%v", diff, rep.Built)
	}
}

func TestBuildFailPolicyDoesNotBuild(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(`version: 1
builders:
  - name: ci
    key: ci.pub
scopes:
  - repositories: ["**"]
    builders: [ci]
    onUntrusted: fail
`), 0o644)
	unsigned := host + "/team/cache:main"
	pushRandom(t, unsigned)
	argsFile := fakeDocker(t, dir, 0)
	res := run(t, "build", "--cache-from", unsigned, ".")
	if res.code != ExitUntrusted || !strings.Contains(res.stderr, "not building") {
		t.Errorf("build with an untrusted cache under onUntrusted: fail = %d %q; want %d", res.code, res.stderr, ExitUntrusted)
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Errorf("docker buildx build ran; onUntrusted: fail must stop it")
	}
	// A registry that does not answer: inconclusive, and no build either.
	res = run(t, "build", "--cache-from", "127.0.0.1:1/team/cache:main", ".")
	if res.code != ExitInconclusive {
		t.Errorf("build with an unreachable cache registry = %d %q; want %d", res.code, res.stderr, ExitInconclusive)
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Errorf("docker buildx build ran with an inconclusive cache under onUntrusted: fail")
	}
}

func TestBuildExitCodePassesThrough(t *testing.T) {
	dir := isolate(t)
	run(t, "keys", "generate", "--name", "ci")
	os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte("version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n"), 0o644)
	fakeDocker(t, dir, 7)
	if res := run(t, "build", "."); res.code != 7 {
		t.Errorf("build exit = %d; want the build's 7", res.code)
	}
}

func TestBuildUsageErrors(t *testing.T) {
	dir := isolate(t)
	run(t, "keys", "generate", "--name", "ci")
	os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte("version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n"), 0o644)
	argsFile := fakeDocker(t, dir, 0)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"build"}, "context"},
		{[]string{"build", "--no-such-flag", "."}, "--no-such-flag"},
		{[]string{"build", "--sign", "."}, "exports nothing to sign"},
		{[]string{"build", "--sign", "--push", "."}, "--key is required"},
		{[]string{"build", "--key", "ci.key", "."}, "need --sign"},
		{[]string{"build", "--trust-policy", "nope.yaml", "."}, "nope.yaml"},
		{[]string{"build", "--cache-from", "type=registry,ref=\"unterminated", "."}, "cache-from"},
	} {
		res := run(t, tc.args...)
		if res.code != ExitUsage || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("%v = %d %q; want %d containing %q", tc.args, res.code, res.stderr, ExitUsage, tc.msg)
		}
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Errorf("docker buildx build ran despite a usage error")
	}
}

// TestBuildRedactsKeyMaterial: a private key pasted as a --cache-from value
// by mistake is not echoed in the build's warnings or trust report.
func TestBuildRedactsKeyMaterial(t *testing.T) {
	dir := isolate(t)
	run(t, "keys", "generate", "--name", "ci")
	os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte("version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n"), 0o644)
	key, err := os.ReadFile(filepath.Join(dir, "ci.key"))
	if err != nil {
		t.Fatal(err)
	}
	fakeDocker(t, dir, 0)
	res := run(t, "build", "--trust-report", "report.json", "--cache-from", "type=local,src="+string(key), ".")
	report, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	for _, out := range []string{res.stdout, res.stderr, string(report)} {
		if strings.Contains(out, "PRIVATE KEY") {
			t.Errorf("key material echoed (exit %d):\n%s", res.code, out)
		}
	}
}

// TestBuildWithoutPolicy: a build that imports no cache needs no policy:
// it runs buildx with its arguments unchanged and exits with its code
// (through the alias, a project without a policy builds exactly as with
// docker buildx build); --sign signs and says that no policy recorded the
// result. A build that does import a cache and finds no policy fails
// closed, naming the flag build takes (--trust-policy).
func TestBuildWithoutPolicy(t *testing.T) {
	t.Run("no cache, no policy", func(t *testing.T) {
		dir := isolate(t)
		os.MkdirAll(filepath.Join(dir, ".git"), 0o755) // nothing above the test dir
		for _, code := range []int{0, 7} {
			argsFile := fakeDocker(t, dir, code)
			res := run(t, "build", "-t", "app:dev", "--cache-to", "type=inline", ".")
			if res.code != code {
				t.Errorf("build without a policy, buildx exit %d = exit %d %q; want %d", code, res.code, res.stderr, code)
			}
			if res.stderr != "" || res.stdout != "" {
				t.Errorf("build without a policy printed %q %q; want only what buildx prints", res.stdout, res.stderr)
			}
			want := []string{"buildx", "build", "-t", "app:dev", "--cache-to", "type=inline", "."}
			if diff := cmp.Diff(want, readArgs(t, argsFile)); diff != "" {
				t.Errorf("buildx argv (-want +got):\n%s", diff)
			}
		}
	})
	t.Run("a cache to import, no policy", func(t *testing.T) {
		dir := isolate(t)
		os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
		argsFile := fakeDocker(t, dir, 0)
		res := run(t, "build", "--cache-from", "127.0.0.1:1/team/cache:main", ".")
		if res.code != ExitUsage || !strings.Contains(res.stderr, "--trust-policy FILE") || strings.Contains(res.stderr, "--policy FILE") {
			t.Errorf("build importing a cache without a policy = exit %d %q; want %d naming --trust-policy", res.code, res.stderr, ExitUsage)
		}
		if _, err := os.Stat(argsFile); err == nil {
			t.Errorf("the build ran without a policy to verify its cache")
		}
	})
	t.Run("--sign, no policy", func(t *testing.T) {
		dir := isolate(t)
		os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
		host := newRegistry(t)
		run(t, "keys", "generate", "--name", "ci")
		cache := host + "/team/cache:main"
		built := pushRandom(t, cache)
		script := filepath.Join(dir, "docker")
		body := "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = --metadata-file ]; then f=\"$2\"; fi; shift; done\n" +
			"printf '%s' '{\"cache.manifest\":{\"digest\":\"" + built.String() + "\"}}' > \"$f\"\n"
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", script)
		res := run(t, "build", "--sign", "--key", "ci.key", "--cache-to", "type=registry,ref="+cache+",mode=max", ".")
		if res.code != 0 {
			t.Fatalf("build --sign without a policy = %d %s", res.code, res.stderr)
		}
		if !strings.Contains(res.stderr, "signed   "+host+"/team/cache@"+built.String()) || !strings.Contains(res.stderr, "policy   none found") {
			t.Errorf("build --sign without a policy: stderr %q; want it signed and the missing policy said", res.stderr)
		}
	})
}
