//go:build e2e

package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The verified content endpoint's references (127.0.0.1:PORT/TOKEN/N@…)
// are on the docker-buildx command line of every build and bake that
// imports a verified cache, and /proc/PID/cmdline is readable by every
// local user. The endpoint fetches with the building user's registry
// credentials; another user who reads the reference must still get
// nothing through it. These tests run the attack: while a build runs, a
// spy as uid nobody scans /proc for the endpoint's address and token (in
// every cmdline, and in every environ it can read), and fetches the cache
// manifest and every layer through the endpoint, looking for a secret the
// cached layers hold.

// spyEnv switches the test binary into the spy (see init).
const spyEnv = "TRUSTCACHE_E2E_SPY"

// spyReport is what the spy found and fetched.
type spyReport struct {
	Refs        []string `json:"refs"`        // endpoint references seen in /proc/*/cmdline
	EnvironRefs []string `json:"environRefs"` // endpoint hosts seen in a readable /proc/*/environ
	Manifest    int      `json:"manifest"`    // status of the manifest fetch (0: not tried)
	Blobs       []int    `json:"blobs"`       // statuses of the layer fetches
	Leaked      bool     `json:"leaked"`      // a fetched layer holds the secret
	Errors      []string `json:"errors"`
}

var spyRef = regexp.MustCompile(`127\.0\.0\.1:(\d+)/([0-9a-f]{32})/(\d+)@(sha256:[0-9a-f]{64})`)

// init runs the spy when the test binary is started as one: before
// TestMain, which needs the e2e services and builds the plugin.
func init() {
	if os.Getenv(spyEnv) == "" {
		return
	}
	r := spy(os.Getenv("SPY_SECRET"), 90*time.Second)
	json.NewEncoder(os.Stdout).Encode(r)
	os.Exit(0)
}

// spy scans /proc until it sees an endpoint reference in a command line
// (or gives up at the deadline), then tries to read the cache through it.
func spy(secret string, timeout time.Duration) spyReport {
	var r spyReport
	deadline := time.Now().Add(timeout)
	var ref []string
	for ref == nil && time.Now().Before(deadline) {
		procs, _ := filepath.Glob("/proc/[0-9]*")
		for _, p := range procs {
			if b, err := os.ReadFile(p + "/cmdline"); err == nil {
				if m := spyRef.FindStringSubmatch(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))); m != nil {
					ref = m
					r.Refs = append(r.Refs, m[0])
				}
			}
			if b, err := os.ReadFile(p + "/environ"); err == nil && bytes.Contains(b, []byte("127.0.0.1:")) && bytes.Contains(b, []byte("DOCKER_AUTH_CONFIG")) {
				r.EnvironRefs = append(r.EnvironRefs, p)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ref == nil {
		return r
	}
	base := "http://127.0.0.1:" + ref[1] + "/v2/" + ref[2] + "/" + ref[3]
	get := func(url string, accept string) (int, []byte) {
		req, _ := http.NewRequest("GET", url, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		return resp.StatusCode, b
	}
	status, body := get(base+"/manifests/"+ref[4], "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")
	r.Manifest = status
	if status != http.StatusOK {
		return r
	}
	var m struct {
		Layers    []struct{ Digest string } `json:"layers"`
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	json.Unmarshal(body, &m)
	for _, l := range append(m.Layers, m.Manifests...) {
		status, blob := get(base+"/blobs/"+l.Digest, "")
		r.Blobs = append(r.Blobs, status)
		if zr, err := gzip.NewReader(bytes.NewReader(blob)); err == nil {
			if plain, err := io.ReadAll(zr); err == nil {
				blob = plain
			}
		}
		if secret != "" && bytes.Contains(blob, []byte(secret)) {
			r.Leaked = true
		}
	}
	return r
}

// startSpy copies the test binary where uid nobody can run it and starts
// it as nobody; wait returns its report.
func startSpy(t *testing.T, secret string) (wait func() spyReport) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the spy runs as uid nobody: the test needs root")
	}
	dir, err := os.MkdirTemp("", "trustcache-spy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "spy")
	if err := copyFile(self, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = "/"
	cmd.Env = []string{spyEnv + "=1", "SPY_SECRET=" + secret, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the spy as nobody: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return func() spyReport {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the spy: %v\n%s", err, errOut.String())
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("the spy did not finish")
		}
		var r spyReport
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("the spy's report %q: %v\n%s", out.String(), err, errOut.String())
		}
		return r
	}
}

// privateDockerfile: a cached step whose layer holds a secret (unique per
// real run), then a step that runs on every build (BUST changes) and
// keeps the build, and its endpoint, alive for a few seconds.
const privateDockerfile = `FROM %BASE%
RUN head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/secret-/' > /secret.txt
ARG BUST
RUN echo "$BUST" > /bust.txt && sleep 5
`

// privateProject writes the build context and signs nothing: it returns
// the context directory.
func (e *env) privateProject(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(e.dir, "private-project")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(privateDockerfile, "%BASE%", cfg.baseImage)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkSpy fails t when the spy read the cache, or saw no reference (the
// test then proves nothing).
func checkSpy(t *testing.T, r spyReport) {
	t.Helper()
	t.Logf("spy as nobody: %+v", r)
	if len(r.Refs) == 0 {
		t.Fatalf("the spy saw no endpoint reference on any command line: the test proves nothing")
	}
	if len(r.EnvironRefs) > 0 {
		t.Errorf("the spy (nobody) read the endpoint's credential in %v", r.EnvironRefs)
	}
	if r.Manifest == http.StatusOK || r.Leaked {
		t.Errorf("as uid nobody, the spy fetched the cache manifest (%d) and layers %v through the endpoint (secret leaked: %v); want 401", r.Manifest, r.Blobs, r.Leaked)
	}
	if r.Manifest != http.StatusUnauthorized {
		t.Errorf("the spy's manifest request got %d; want 401 (the endpoint requires its credential)", r.Manifest)
	}
}

// produce builds the project on a pruned builder, exports its cache to
// cache with mode=max, signs it with builder-a.key, and returns the
// secret the cached layer holds.
func (e *env) producePrivate(t *testing.T, ctx, policy, cache string) string {
	t.Helper()
	e.prune(t)
	out := filepath.Join(e.dir, "out-producer")
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--sign", "--key", "builder-a.key", "--build-arg", "BUST=producer",
		"--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+out, ctx)
	e.trustcache(t, args...).must(t)
	b, err := os.ReadFile(filepath.Join(out, "secret.txt"))
	if err != nil || !strings.HasPrefix(string(b), "secret-") {
		t.Fatalf("the producer's secret: %q, %v", b, err)
	}
	return strings.TrimSpace(string(b))
}

// privateEnv is the three tests' set-up: an env, the secret-bearing
// project, builder-a's key, a repository and a policy that trusts builder-a
// there.
func privateEnv(t *testing.T) (e *env, ctx, repo, policy string) {
	t.Helper()
	e = trustEnv(t)
	ctx = e.privateProject(t)
	e.genKey(t, "builder-a")
	repo = uniqueRepo(t)
	policy = e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	return e, ctx, repo, policy
}

// TestEndpointPrivateBuild: while `docker trustcache build` imports a
// verified cache through the endpoint, another user who reads the
// reference from /proc cannot fetch the cache through it; the build still
// imports it (the secret step CACHED, the producer's secret in the output).
func TestEndpointPrivateBuild(t *testing.T) {
	e, ctx, repo, policy := privateEnv(t)
	cache := repo + ":cache"
	secret := e.producePrivate(t, ctx, policy, cache)

	e.prune(t)
	wait := startSpy(t, secret)
	out := filepath.Join(e.dir, "out-consumer")
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--no-ledger", "--build-arg", "BUST="+fmt.Sprint(time.Now().UnixNano()),
		"--cache-from", cache, "-o", "type=local,dest="+out, ctx)
	r := e.trustcache(t, args...).must(t)
	checkSpy(t, wait())
	if got, _ := os.ReadFile(filepath.Join(out, "secret.txt")); strings.TrimSpace(string(got)) != secret {
		t.Errorf("the consumer built secret %q; want the producer's %q from the verified cache\n%s", got, secret, r.stderr)
	}
	// The secret step is realized from the imported cache (BuildKit
	// downloads its layers rather than printing CACHED, see
	// ENVIRONMENT.md): the secret matching the producer's is the hit.
	if !strings.Contains(r.stderr, "(verified bytes)") || !strings.Contains(r.stderr, "importing cache manifest from 127.0.0.1:") {
		t.Errorf("the build did not import the cache through the endpoint:\n%s", r.stderr)
	}
}

// TestEndpointPrivateBake: the same for `docker trustcache bake`, whose
// endpoint references travel in --set arguments.
func TestEndpointPrivateBake(t *testing.T) {
	e, ctx, repo, policy := privateEnv(t)
	cache := repo + ":cache"
	secret := e.producePrivate(t, ctx, policy, cache)

	out := filepath.Join(e.dir, "out-bake")
	bakeFile := filepath.Join(ctx, "docker-bake.hcl")
	hcl := "target \"app\" {\n" +
		"  context = \"" + ctx + "\"\n" +
		"  network = \"" + cfg.network + "\"\n" +
		"  args = { BUST = \"" + fmt.Sprint(time.Now().UnixNano()) + "\" }\n" +
		"  cache-from = [\"" + cache + "\"]\n" +
		"  output = [\"type=local,dest=" + out + "\"]\n" +
		"}\n"
	if err := os.WriteFile(bakeFile, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	e.prune(t)
	wait := startSpy(t, secret)
	args := append([]string{"bake"}, remoteBakeArgs()...)
	args = append(args, "--trust-policy", policy, "--no-ledger", "-f", bakeFile, "app")
	r := e.trustcache(t, args...).must(t)
	checkSpy(t, wait())
	if got, _ := os.ReadFile(filepath.Join(out, "secret.txt")); strings.TrimSpace(string(got)) != secret {
		t.Errorf("the bake built secret %q; want the producer's %q from the verified cache\n%s", got, secret, r.stderr)
	}
}

// TestEndpointPrivateDockerDriver: the same on the docker driver
// (dockerd 20.10's BuildKit), with an image carrying inline cache: its
// BuildKit answers the endpoint's challenge with the credential buildx
// gives it, and the spy still gets 401.
func TestEndpointPrivateDockerDriver(t *testing.T) {
	e, ctx, repo, policy := privateEnv(t)
	image := repo + ":main"
	flags := []string{"--builder", "default", "--network", cfg.network}
	fresh := func() {
		t.Helper()
		e.docker(t, "image", "rm", "-f", image) // may not be there
		e.docker(t, "buildx", "prune", "--builder", "default", "--all", "--force").must(t)
	}
	fresh()
	args := append([]string{"buildx", "build"}, flags...)
	args = append(args, "--build-arg", "BUILDKIT_INLINE_CACHE=1", "--build-arg", "BUST=producer", "-t", image, "--push", ctx)
	e.docker(t, args...).must(t)
	secret := strings.TrimSpace(e.docker(t, "run", "--rm", "--network", "none", image, "cat", "/secret.txt").must(t).stdout)
	if !strings.HasPrefix(secret, "secret-") {
		t.Fatalf("the producer's secret: %q", secret)
	}
	digest := strings.TrimSpace(e.crane(t, "digest", image).must(t).stdout)
	e.trustcache(t, "sign", "--key", "builder-a.key", repo+"@"+digest).must(t)

	fresh()
	wait := startSpy(t, secret)
	out := filepath.Join(e.dir, "out-docker-driver")
	args = append([]string{"build"}, flags...)
	args = append(args, "--trust-policy", policy, "--no-ledger", "--build-arg", "BUST="+fmt.Sprint(time.Now().UnixNano()),
		"--cache-from", image, "-o", "type=local,dest="+out, ctx)
	r := e.trustcache(t, args...).must(t)
	checkSpy(t, wait())
	if got, _ := os.ReadFile(filepath.Join(out, "secret.txt")); strings.TrimSpace(string(got)) != secret {
		t.Errorf("the consumer on the docker driver built secret %q; want the producer's %q from the verified cache\n%s", got, secret, r.stderr)
	}
}
