//go:build e2e

// Package e2e holds black-box tests of the installed docker-trustcache plugin against a real
// dockerd, buildkitd (through a buildx remote builder), a real registry and the real cosign CLI.
//
// Start the services with `bash e2e/setup.sh`, then:
//
//	source "${TRUSTCACHE_E2E_DIR:-/tmp/trustcache-e2e}/env" && go test -tags e2e ./e2e/...
//
// E2E_PLUGIN_BIN, when set, names a prebuilt plugin binary to test instead of building
// ../cmd/docker-trustcache.
package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keyPassword is the password the tests use for every encrypted private key; cosign and
// cosign3 run with it as COSIGN_PASSWORD.
const keyPassword = "trustcache-e2e"

// cmdTimeout bounds every command a test runs.
const cmdTimeout = 10 * time.Minute

// deadProxy makes any HTTP(S) request that is not for loopback fail at once on a closed port,
// so a stray call to a public sigstore service shows up as an error instead of leaving the host.
var deadProxy = map[string]string{
	"HTTPS_PROXY": "http://127.0.0.1:9",
	"HTTP_PROXY":  "http://127.0.0.1:9",
	"NO_PROXY":    "127.0.0.1,localhost",
	"https_proxy": "http://127.0.0.1:9",
	"http_proxy":  "http://127.0.0.1:9",
	"no_proxy":    "127.0.0.1,localhost",
}

// config is what e2e/setup.sh wrote into $TRUSTCACHE_E2E_DIR/env. Set once by TestMain.
type config struct {
	stateDir     string // TRUSTCACHE_E2E_DIR
	dockerHost   string // DOCKER_HOST: setup.sh's dockerd
	docker       string // E2E_DOCKER: the docker CLI (28.x), default "docker" from PATH
	registry     string // E2E_REGISTRY: host:port of the loopback registry
	buildkitAddr string // E2E_BUILDKIT_ADDR: unix:// address of buildkitd
	builder      string // E2E_BUILDER: name of the buildx remote builder
	baseImage    string // E2E_BASE_IMAGE: offline busybox image in the registry
	network      string // E2E_NETWORK: --network value for every build with RUN steps
	buildx       string // E2E_BUILDX
	cosign       string // E2E_COSIGN: cosign v2
	cosign3      string // E2E_COSIGN3: cosign v3
	crane        string // E2E_CRANE
	trustedRoot  string // E2E_TRUSTED_ROOT: minimal trusted root for offline cosign verify
}

var (
	cfg       config
	pluginBin string // the docker-trustcache binary under test
	// builderTemplate is a docker config dir in which `docker buildx create` made the remote
	// builder once; newEnv copies its buildx/instances instead of running buildx per test.
	builderTemplate string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	c, err := loadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 2
	}
	cfg = c
	tmp, err := os.MkdirTemp("", "trustcache-e2e-plugin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 2
	}
	defer os.RemoveAll(tmp)
	if pluginBin, err = buildPlugin(tmp); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 2
	}
	builderTemplate = filepath.Join(tmp, "builder-template")
	if err := createBuilder(builderTemplate); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 2
	}
	return m.Run()
}

// loadConfig reads the variables setup.sh's env file exports and checks that the files and
// services they name are there, reporting everything missing at once.
func loadConfig(getenv func(string) string) (config, error) {
	var missing, problems []string
	need := func(key string) string {
		v := getenv(key)
		if v == "" {
			missing = append(missing, key)
		}
		return v
	}
	c := config{
		stateDir:     need("TRUSTCACHE_E2E_DIR"),
		dockerHost:   need("DOCKER_HOST"),
		docker:       getenv("E2E_DOCKER"),
		registry:     need("E2E_REGISTRY"),
		buildkitAddr: need("E2E_BUILDKIT_ADDR"),
		builder:      need("E2E_BUILDER"),
		baseImage:    need("E2E_BASE_IMAGE"),
		network:      getenv("E2E_NETWORK"),
		buildx:       need("E2E_BUILDX"),
		cosign:       need("E2E_COSIGN"),
		cosign3:      need("E2E_COSIGN3"),
		crane:        need("E2E_CRANE"),
		trustedRoot:  need("E2E_TRUSTED_ROOT"),
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("environment variables not set: %s\n"+
			"run `bash e2e/setup.sh` (as root), then `source ${TRUSTCACHE_E2E_DIR:-/tmp/trustcache-e2e}/env` before `go test -tags e2e ./e2e/...`",
			strings.Join(missing, ", "))
	}
	if c.docker == "" {
		c.docker = "docker"
	}
	if c.network == "" {
		c.network = "none"
	}
	if p, err := exec.LookPath(c.docker); err != nil {
		problems = append(problems, fmt.Sprintf("E2E_DOCKER: %v", err))
	} else {
		c.docker = p
	}
	for key, path := range map[string]string{
		"E2E_BUILDX": c.buildx, "E2E_COSIGN": c.cosign, "E2E_COSIGN3": c.cosign3, "E2E_CRANE": c.crane,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
			problems = append(problems, fmt.Sprintf("%s=%s is not an executable file", key, path))
		}
	}
	if _, err := os.Stat(c.trustedRoot); err != nil {
		problems = append(problems, fmt.Sprintf("E2E_TRUSTED_ROOT: %v", err))
	}
	for key, addr := range map[string]string{"DOCKER_HOST": c.dockerHost, "E2E_BUILDKIT_ADDR": c.buildkitAddr} {
		sock, ok := strings.CutPrefix(addr, "unix://")
		if !ok {
			problems = append(problems, fmt.Sprintf("%s=%s is not a unix:// address", key, addr))
			continue
		}
		if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			problems = append(problems, fmt.Sprintf("%s: no socket at %s (service not running?)", key, sock))
		}
	}
	client := http.Client{Timeout: 5 * time.Second}
	if resp, err := client.Get("http://" + c.registry + "/v2/"); err != nil {
		problems = append(problems, fmt.Sprintf("E2E_REGISTRY: %v (service not running?)", err))
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			problems = append(problems, fmt.Sprintf("E2E_REGISTRY: GET /v2/ = %s", resp.Status))
		}
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("e2e environment not ready (run `bash e2e/setup.sh`):\n  %s", strings.Join(problems, "\n  "))
	}
	return c, nil
}

// buildPlugin builds ../cmd/docker-trustcache into dir, or returns $E2E_PLUGIN_BIN.
func buildPlugin(dir string) (string, error) {
	if bin := os.Getenv("E2E_PLUGIN_BIN"); bin != "" {
		return filepath.Abs(bin)
	}
	bin := filepath.Join(dir, "docker-trustcache")
	// As the Makefile builds it: static.
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../cmd/docker-trustcache")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the plugin: %w", err)
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", bin, time.Since(start).Round(time.Millisecond))
	return bin, nil
}

// createBuilder makes dockerConfig a docker config dir with the buildx plugin and the remote
// builder cfg.builder in it.
func createBuilder(dockerConfig string) error {
	plugins := filepath.Join(dockerConfig, "cli-plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		return err
	}
	if err := os.Symlink(cfg.buildx, filepath.Join(plugins, "docker-buildx")); err != nil {
		return err
	}
	vars := cleanEnviron()
	vars["DOCKER_CONFIG"] = dockerConfig
	vars["DOCKER_HOST"] = cfg.dockerHost
	cmd := exec.Command(cfg.docker, "buildx", "create", "--driver", "remote", "--name", cfg.builder, cfg.buildkitAddr)
	cmd.Env = flatten(vars)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("creating the buildx builder: %s: %w\n%s", cmd, err, out)
	}
	return nil
}

// env is one test's isolated client side: its own HOME and DOCKER_CONFIG (holding the plugin
// under test, the buildx plugin and the remote builder), sharing the daemons from setup.sh.
type env struct {
	dir          string // the test's temp dir
	home         string // HOME for every command
	dockerConfig string // DOCKER_CONFIG for every command
	vars         map[string]string
	unset        map[string]bool
}

// newEnv makes a fresh env for t, with the plugin under test, the buildx plugin and the remote
// builder cfg.builder in its docker config; everything in it is removed when t ends.
func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{
		dir:          dir,
		home:         filepath.Join(dir, "home"),
		dockerConfig: filepath.Join(dir, "docker-config"),
		vars:         map[string]string{},
		unset:        map[string]bool{},
	}
	plugins := filepath.Join(e.dockerConfig, "cli-plugins")
	for _, d := range []string{e.home, plugins} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyFile(pluginBin, filepath.Join(plugins, "docker-trustcache"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cfg.buildx, filepath.Join(plugins, "docker-buildx")); err != nil {
		t.Fatal(err)
	}
	// What `docker buildx create` wrote in the template (the builder's definition), without
	// paying for a buildx process per test. TestHarness checks that buildx sees it.
	instances := filepath.Join("buildx", "instances")
	if err := os.CopyFS(filepath.Join(e.dockerConfig, instances), os.DirFS(filepath.Join(builderTemplate, instances))); err != nil {
		t.Fatalf("copying the buildx builder: %v", err)
	}
	return e
}

// setenv sets key=value for every later command of e (overriding the defaults).
func (e *env) setenv(key, value string) {
	delete(e.unset, key)
	e.vars[key] = value
}

// unsetenv removes key from the environment of every later command of e.
func (e *env) unsetenv(key string) {
	delete(e.vars, key)
	e.unset[key] = true
}

// leakyExact and leakyPrefixes name variables of the outer environment that would change what
// the commands under test do (docker, buildx, cosign, trustcache settings, proxies, CI
// detection); commands start without them.
var leakyExact = map[string]bool{
	"DOCKER_CONFIG": true, "DOCKER_CONTEXT": true, "DOCKER_CERT_PATH": true, "DOCKER_TLS_VERIFY": true,
	"BUILDKIT_HOST": true, "TUF_ROOT": true, "CI": true, "HOME": true, "DOCKER_HOST": true,
}
var leakyPrefixes = []string{
	"BUILDX_", "COSIGN_", "SIGSTORE_", "TRUSTCACHE_", "GITHUB_", "GITLAB_", "CI_", "RUNNER_", "ACTIONS_",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy",
}

// environ is the environment of a command run in e: the clean outer environment, e's
// defaults, then extra (per command), then what setenv and unsetenv said.
func (e *env) environ(extra map[string]string) []string {
	vars := cleanEnviron()
	vars["HOME"] = e.home
	vars["DOCKER_CONFIG"] = e.dockerConfig
	vars["DOCKER_HOST"] = cfg.dockerHost
	vars["BUILDKIT_PROGRESS"] = "plain"
	vars["DOCKER_CLI_HINTS"] = "false"
	for k, v := range extra {
		vars[k] = v
	}
	for k, v := range e.vars {
		vars[k] = v
	}
	for k := range e.unset {
		delete(vars, k)
	}
	return flatten(vars)
}

// cleanEnviron is the outer environment without the leaky variables.
func cleanEnviron() map[string]string {
	vars := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if leakyExact[k] || hasAnyPrefix(k, leakyPrefixes) {
			continue
		}
		vars[k] = v
	}
	return vars
}

func flatten(vars map[string]string) []string {
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// result is what a command did.
type result struct {
	cmd    string // the command line, for messages
	stdout string
	stderr string
	code   int // exit status; -1 when killed by a signal or the timeout
}

func (r result) String() string {
	return fmt.Sprintf("%s: exit %d\n--- stdout\n%s\n--- stderr\n%s", r.cmd, r.code, r.stdout, r.stderr)
}

// must fails t unless the command exited 0.
func (r result) must(t testing.TB) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	return r
}

// wantCode fails t unless the command exited with code.
func (r result) wantCode(t testing.TB, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d; got %v", code, r)
	}
	return r
}

// run runs name with args in e, feeding it stdin (nil: no input), and returns what it did.
// It fails t only when the command cannot be started.
func (e *env) run(t testing.TB, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	return e.runWith(t, nil, stdin, name, args...)
}

func (e *env) runWith(t testing.TB, extra map[string]string, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	return runCmd(t, e.dir, e.environ(extra), stdin, name, args...)
}

// runCmd runs name with args in dir with exactly the environment environ.
func runCmd(t testing.TB, dir string, environ []string, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = environ
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	r := result{cmd: strings.Join(append([]string{filepath.Base(name)}, args...), " ")}
	start := time.Now()
	err := cmd.Run()
	r.stdout, r.stderr = stdout.String(), stderr.String()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("running %s: %v\n--- stderr\n%s", r.cmd, err, r.stderr)
	}
	if ctx.Err() != nil {
		r.code = -1
		r.stderr += fmt.Sprintf("\n[e2e harness: %v after %s]", ctx.Err(), cmdTimeout)
	}
	t.Logf("$ %s  # exit %d, %s", r.cmd, r.code, time.Since(start).Round(time.Millisecond))
	return r
}

// docker runs the docker CLI in e.
func (e *env) docker(t testing.TB, args ...string) result {
	t.Helper()
	return e.run(t, nil, cfg.docker, args...)
}

// trustcache runs `docker trustcache ARGS` in e.
func (e *env) trustcache(t testing.TB, args ...string) result {
	t.Helper()
	return e.run(t, nil, cfg.docker, append([]string{"trustcache"}, args...)...)
}

// cosign runs cosign v2 in e, with COSIGN_PASSWORD=keyPassword and the dead-proxy guard.
func (e *env) cosign(t testing.TB, args ...string) result {
	t.Helper()
	return e.runWith(t, cosignVars(), nil, cfg.cosign, args...)
}

// cosign3 runs cosign v3 in e, with COSIGN_PASSWORD=keyPassword and the dead-proxy guard.
func (e *env) cosign3(t testing.TB, args ...string) result {
	t.Helper()
	return e.runWith(t, cosignVars(), nil, cfg.cosign3, args...)
}

func cosignVars() map[string]string {
	vars := map[string]string{"COSIGN_PASSWORD": keyPassword}
	for k, v := range deadProxy {
		vars[k] = v
	}
	return vars
}

// crane runs crane in e.
func (e *env) crane(t testing.TB, args ...string) result {
	t.Helper()
	return e.run(t, nil, cfg.crane, args...)
}

// uniqueRepo returns a repository in the e2e registry that no other test (or run) uses:
// 127.0.0.1:5000/e2e/<sanitized test name>-<random>.
func uniqueRepo(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	name := b.String()
	if len(name) > 48 {
		name = name[:48]
	}
	name = strings.TrimRight(name, "-")
	if name == "" {
		name = "test"
	}
	return cfg.registry + "/e2e/" + name + "-" + randomHex(t, 4)
}

// pushRandomImage pushes to repo a new image (the base image plus one layer of random content)
// under a fresh tag, and returns the tag reference and the manifest digest.
func pushRandomImage(t testing.TB, repo string) (ref, digest string) {
	t.Helper()
	layer := filepath.Join(t.TempDir(), "layer.tar")
	if err := writeRandomLayer(layer, randomHex(t, 32)); err != nil {
		t.Fatal(err)
	}
	ref = repo + ":r-" + randomHex(t, 4)
	// crane talks to the loopback registry over plain http by itself; it needs no docker config.
	dir := filepath.Dir(layer)
	vars := cleanEnviron()
	vars["HOME"] = dir
	environ := flatten(vars)
	runCmd(t, dir, environ, nil, cfg.crane, "append", "--base", cfg.baseImage, "--new_layer", layer, "--new_tag", ref).must(t)
	digest = strings.TrimSpace(runCmd(t, dir, environ, nil, cfg.crane, "digest", ref).must(t).stdout)
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("crane digest %s = %q; want sha256:…", ref, digest)
	}
	return ref, digest
}

func writeRandomLayer(path, content string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = tw.WriteHeader(&tar.Header{
		Name: "e2e-random", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg,
	})
	if err == nil {
		_, err = io.WriteString(tw, content)
	}
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
