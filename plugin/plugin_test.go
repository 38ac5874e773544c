package plugin

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/streams"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testdata is absolute: tests change their working directory.
var testdata, _ = filepath.Abs("testdata")

type cmdResult struct {
	stdout, stderr string
	code           int
}

// run runs "docker trustcache ARGS" in process and returns its output and
// the exit code the plugin framework would exit with.
func run(t *testing.T, args ...string) cmdResult {
	t.Helper()
	var out, errOut bytes.Buffer
	dockerCLI, err := command.NewDockerCli(
		command.WithInputStream(io.NopCloser(strings.NewReader(""))),
		command.WithOutputStream(&out),
		command.WithErrorStream(&errOut),
	)
	if err != nil {
		t.Fatal(err)
	}
	return execute(NewRootCommand(dockerCLI, "test"), args, &out, &errOut)
}

// execute runs root with args, its output to out and errOut, and returns
// what it wrote and the exit code the plugin framework would exit with.
func execute(root *cobra.Command, args []string, out, errOut *bytes.Buffer) cmdResult {
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errOut)
	err := root.ExecuteContext(context.Background())
	code := 0
	if err != nil {
		var st cli.StatusError
		if errors.As(err, &st) {
			code = st.StatusCode
		} else {
			code = 1
		}
		if msg := err.Error(); msg != "" {
			errOut.WriteString(msg + "\n")
		}
	}
	return cmdResult{out.String(), errOut.String(), code}
}

// testEnv is a test's own environment: an Env of variables from a map and
// a docker config dir of its own, and the streams a command runs with.
// Commands run in it read nothing of the process (no t.Setenv, no chdir,
// no global config dir), so the test may run in parallel (t.Parallel).
type testEnv struct {
	t    *testing.T
	env  *Env
	vars map[string]string
	dir  string // the test's temporary directory; the config dir is dir/docker-config
}

// newTestEnv returns a testEnv with the key password and vars set, and
// nothing else of the process.
func newTestEnv(t *testing.T, vars map[string]string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	te := &testEnv{t: t, dir: dir, vars: map[string]string{"TRUSTCACHE_PASSWORD": "test-password"}}
	for k, v := range vars {
		te.vars[k] = v
	}
	te.env = &Env{
		Lookup:    func(k string) (string, bool) { v, ok := te.vars[k]; return v, ok },
		ConfigDir: filepath.Join(dir, "docker-config"),
		WorkDir:   dir, // discovery starts in the test's directory, as under isolate
	}
	return te
}

// path returns name in the test's temporary directory.
func (te *testEnv) path(name string) string { return filepath.Join(te.dir, name) }

// run runs "docker trustcache ARGS" in process in te, as run does.
func (te *testEnv) run(args ...string) cmdResult {
	te.t.Helper()
	var out, errOut bytes.Buffer
	return execute(newRootCommand(te.cli(&out, &errOut), "test", te.env), args, &out, &errOut)
}

// cli returns a docker CLI in te writing to out and errOut, with empty
// standard input.
func (te *testEnv) cli(out, errOut io.Writer) *testCLI {
	return &testCLI{
		in:  streams.NewIn(io.NopCloser(strings.NewReader(""))),
		out: streams.NewOut(out), err: streams.NewOut(errOut),
		dir: te.env.ConfigDir,
	}
}

// testCLI is the docker CLI of a testEnv: buffers for streams, and the
// config file of the test's own config dir.
type testCLI struct {
	in       *streams.In
	out, err *streams.Out
	dir      string
	once     sync.Once
	cfg      *configfile.ConfigFile
}

func (c *testCLI) In() *streams.In   { return c.in }
func (c *testCLI) Out() *streams.Out { return c.out }
func (c *testCLI) Err() *streams.Out { return c.err }
func (c *testCLI) ConfigFile() *configfile.ConfigFile {
	c.once.Do(func() {
		var err error
		if c.cfg, err = config.Load(c.dir); err != nil {
			fmt.Fprintln(c.err, "WARNING: loading the docker config:", err)
		}
		if c.cfg == nil { // as config.LoadDefaultConfigFile: an empty one
			c.cfg = configfile.New(filepath.Join(c.dir, config.ConfigFileName))
		}
	})
	return c.cfg
}

// isolate gives the test its own docker config dir, key password and
// working directory, in the process: commands run with run read the
// process environment. A test that calls it cannot run in parallel; one
// that needs no process state takes a newTestEnv instead.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker-config"))
	// config.Dir reads DOCKER_CONFIG once per process: set it per test.
	prev := config.Dir()
	config.SetDir(filepath.Join(dir, "docker-config"))
	t.Cleanup(func() { config.SetDir(prev) })
	// Never find this machine's docker-buildx: builds run the test's fake.
	prevDirs := systemPluginDirs
	systemPluginDirs = nil
	t.Cleanup(func() { systemPluginDirs = prevDirs })
	t.Setenv("TRUSTCACHE_PASSWORD", "test-password")
	t.Setenv("TRUSTCACHE_POLICY", "")
	// What the machine or the developer's shell may set (a sourced e2e env,
	// a CI runner's variables, a docker context) never reaches a test.
	for _, k := range hostEnv {
		t.Setenv(k, "")
	}
	t.Chdir(dir)
	return dir
}

// hostEnv are the variables that the plugin, the docker CLI or the signed
// CI context read and that a test does not choose: isolate clears them.
var hostEnv = []string{
	"TRUSTCACHE_KEY", "TRUSTCACHE_KEY_PEM", "COSIGN_PASSWORD", "TRUSTCACHE_PROVENANCE_ATTACH",
	"TRUSTCACHE_SOURCE_REPO", "TRUSTCACHE_SOURCE_REF", "TRUSTCACHE_SOURCE_COMMIT", "TRUSTCACHE_SOURCE_RUN",
	"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_BUILDKIT", "DOCKER_TLS", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
	"BUILDX_BUILDER", "BUILDKIT_PROGRESS", "SIGSTORE_ID_TOKEN",
	"CI", "GITHUB_ACTIONS", "GITHUB_REF", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_SERVER_URL", "GITHUB_SHA",
	"ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
	"GITLAB_CI", "CI_COMMIT_BRANCH", "CI_COMMIT_SHA", "CI_COMMIT_TAG", "CI_MERGE_REQUEST_IID",
	"CI_PIPELINE_URL", "CI_PROJECT_PATH", "CI_SERVER_HOST",
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(testdata, name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestHelpGolden(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	for _, args := range [][]string{
		{}, {"sign"}, {"verify"}, {"keys"}, {"keys", "generate"}, {"keys", "id"},
		{"policy"}, {"policy", "init"}, {"policy", "lint"}, {"policy", "explain"}, {"provenance"}, {"install"}, {"uninstall"}, {"ledger"}, {"ledger", "ls"}, {"ledger", "prune"}, {"serve"},
	} {
		name := "help/" + strings.Join(append([]string{"trustcache"}, args...), "-")
		t.Run(name, func(t *testing.T) {
			res := te.run(append(args, "--help")...)
			if res.code != 0 {
				t.Fatalf("--help exit %d: %s", res.code, res.stderr)
			}
			golden(t, name, res.stdout)
		})
	}
}

// newRegistry starts an in-memory registry and returns its host.
func newRegistry(t *testing.T) string {
	t.Helper()
	return testreg.New(t).Host
}

func pushRandom(t *testing.T, ref string) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

// scrub replaces what changes from run to run in output: the registry
// port, digests, key ids and times.
func scrub(s, host string) string {
	s = strings.ReplaceAll(s, host, "REGISTRY")
	s = regexp.MustCompile(`sha256([:-])[0-9a-f]{64}`).ReplaceAllString(s, "sha256${1}HEX")
	s = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).ReplaceAllString(s, "TIME")
	s = regexp.MustCompile(`signed [0-9hms]+ ago`).ReplaceAllString(s, "signed AGE ago")
	return s
}

func TestTrustLoop(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	te.vars[envPolicy] = te.path(".trustcache.yaml") // discovered from the working directory under isolate
	dir := te.dir
	host := newRegistry(t)
	for _, n := range []string{"ci-main", "attacker"} {
		if res := te.run("keys", "generate", "--name", n, "--dir", dir); res.code != 0 || !strings.HasPrefix(res.stdout, "sha256:") {
			t.Fatalf("keys generate %s = %d %q %q", n, res.code, res.stdout, res.stderr)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "ci-main.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ci-main.key: %v %v; want mode 0600", fi, err)
	}
	if res := te.run("keys", "generate", "--name", "ci-main", "--dir", dir); res.code != ExitUsage || !strings.Contains(res.stderr, "ci-main.key") {
		t.Errorf("keys generate over an existing key = %d %q; want exit %d naming the file", res.code, res.stderr, ExitUsage)
	}
	policy := "version: 1\nbuilders:\n  - name: ci-main\n    key: ci-main.pub\nscopes:\n  - repositories: [\"" + host + "/team/*\"]\n    builders: [ci-main]\n"
	if err := os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := te.run("policy", "lint"); res.code != 0 {
		t.Fatalf("policy lint = %d %q", res.code, res.stderr)
	}

	good := host + "/team/cache:main"
	bad := host + "/team/cache:pr"
	unsigned := host + "/team/cache:unsigned"
	dGood := pushRandom(t, good)
	pushRandom(t, bad)
	pushRandom(t, unsigned)

	res := te.run("sign", "--key", te.path("ci-main.key"), "-a", "ref=refs/heads/main", good)
	if want := host + "/team/cache@" + dGood.String() + "\n"; res.code != 0 || res.stdout != want {
		t.Fatalf("sign = %d %q %q; want %q", res.code, res.stdout, res.stderr, want)
	}
	// Signing again with the same key and annotations adds nothing.
	if res := te.run("sign", "--key", te.path("ci-main.key"), "-a", "ref=refs/heads/main", good); res.code != 0 || !strings.Contains(res.stderr, "already signed") {
		t.Errorf("sign again = %d %q", res.code, res.stderr)
	}
	if res := te.run("sign", "--key", te.path("attacker.key"), bad); res.code != 0 {
		t.Fatalf("sign (attacker) = %d %q", res.code, res.stderr)
	}

	res = te.run("verify", good)
	if res.code != 0 {
		t.Errorf("verify trusted = %d %q %q", res.code, res.stdout, res.stderr)
	}
	golden(t, "verify-trusted.txt", strings.ReplaceAll(scrub(res.stdout, host), dir, "DIR"))

	res = te.run("verify", "--format", "json", good, bad, unsigned)
	if res.code != ExitUntrusted {
		t.Errorf("verify mixed = %d; want %d", res.code, ExitUntrusted)
	}
	golden(t, "verify-mixed.json", scrub(res.stdout, host))

	res = te.run("verify", bad, unsigned)
	golden(t, "verify-untrusted.txt", strings.ReplaceAll(scrub(res.stdout, host), dir, "DIR"))

	res = te.run("policy", "explain", good)
	if res.code != 0 {
		t.Errorf("policy explain trusted = %d %q", res.code, res.stderr)
	}
	golden(t, "explain-trusted.txt", scrub(strings.ReplaceAll(res.stdout, dir, "DIR"), host))
	res = te.run("policy", "explain", bad)
	if res.code != ExitUntrusted {
		t.Errorf("policy explain untrusted = %d %q", res.code, res.stderr)
	}
	golden(t, "explain-untrusted.txt", scrub(strings.ReplaceAll(res.stdout, dir, "DIR"), host))
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	if res := te.run("keys", "generate", "--name", "ci", "--dir", dir); res.code != 0 {
		t.Fatal(res.stderr)
	}
	// A registry that is not there: no verdict.
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n"
	os.WriteFile(te.path("p.yaml"), []byte(policy), 0o644)
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"verify", "--policy", te.path("p.yaml"), "127.0.0.1:1/team/cache:main"}, ExitInconclusive, "inconclusive"},
		{[]string{"verify", "--policy", te.path("missing.yaml"), "127.0.0.1:1/x:y"}, ExitUsage, te.path("missing.yaml")},
		{[]string{"verify", "--policy", te.path("p.yaml"), "--format", "xml", "127.0.0.1:1/x:y"}, ExitUsage, "--format"},
		{[]string{"verify", "--policy", te.path("p.yaml"), "UPPER/Case:x"}, ExitUsage, "invalid reference"},
		{[]string{"verify"}, ExitUsage, "requires at least 1 argument"},
		{[]string{"verify", "--no-such-flag"}, ExitUsage, "unknown flag"},
		{[]string{"sign", "127.0.0.1:1/x:y"}, ExitUsage, "--key is required"},
		{[]string{"sign", "--key", te.path("nope.key"), "127.0.0.1:1/x:y"}, ExitUsage, te.path("nope.key")},
		{[]string{"sign", "--key", te.path("ci.key"), "-a", "novalue", "127.0.0.1:1/x:y"}, ExitUsage, "KEY=VALUE"},
		{[]string{"sign", "--key", te.path("ci.key"), "-a", "builder=me", "127.0.0.1:1/x:y"}, ExitUsage, "set by docker trustcache"},
		{[]string{"keys", "id", te.path("ci.key")}, ExitUsage, "PUBLIC KEY"},
		{[]string{"keys", "generate"}, ExitUsage, "--name is required"},
	}
	for _, tc := range tests {
		res := te.run(tc.args...)
		if res.code != tc.code || !strings.Contains(res.stdout+res.stderr, tc.msg) {
			t.Errorf("%v = exit %d, %q; want exit %d containing %q", tc.args, res.code, res.stdout+res.stderr, tc.code, tc.msg)
		}
	}
	te.vars["TRUSTCACHE_PASSWORD"] = "wrong"
	if res := te.run("sign", "--key", te.path("ci.key"), "127.0.0.1:1/x:y"); res.code != ExitUsage || !strings.Contains(res.stderr, "wrong password") {
		t.Errorf("sign with a wrong password = %d %q", res.code, res.stderr)
	}
}

// TestSignBuilderName: the builder recorded in a signature is the name the
// policy gives the key (not the key file's or variable's name), unless
// --builder-name says otherwise.
func TestSignBuilderName(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "k1")
	pem, err := os.ReadFile(filepath.Join(dir, "k1.key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRUSTCACHE_KEY_PEM", string(pem))
	os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte("version: 1\nbuilders:\n  - name: release\n    key: k1.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [release]\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--key", "env://TRUSTCACHE_KEY_PEM"}, "release"},
		{[]string{"--key", "k1.key"}, "release"},
		{[]string{"--key", "k1.key", "--builder-name", "nightly"}, "nightly"},
	} {
		ref := host + "/team/cache:" + tc.want
		pushRandom(t, ref)
		if res := run(t, append(append([]string{"sign"}, tc.args...), ref)...); res.code != 0 {
			t.Fatalf("sign %v: %s", tc.args, res.stderr)
		}
		res := run(t, "verify", "--format", "json", "--no-ledger", ref)
		if !strings.Contains(res.stdout, `"builder":"`+tc.want+`"`) {
			t.Errorf("sign %v recorded builder %s; want %q", tc.args, res.stdout, tc.want)
		}
	}
}

// isolatedEnv is the Env commands run by run see in a test that called
// isolate: the process's.
func isolatedEnv() *Env {
	env := processEnv()
	return &env
}

// fakeDocker is fakeDocker for a testEnv: the scripts go to te's config
// dir and te names the docker CLI the plugin re-executes; the process
// environment is left alone.
func (te *testEnv) fakeDocker(code int) (argsFile string) {
	t := te.t
	t.Helper()
	argsFile = te.path("docker-args")
	body := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > " + argsFile + "\nexit " + strconv.Itoa(code) + "\n"
	script := te.path("docker")
	buildx := filepath.Join(te.env.ConfigDir, "cli-plugins", "docker-buildx")
	if err := os.MkdirAll(filepath.Dir(buildx), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{script, buildx} {
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	te.vars["DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND"] = script
	return argsFile
}
