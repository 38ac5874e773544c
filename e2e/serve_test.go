//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// gatewayProc is a running `docker-trustcache trustcache serve`.
type gatewayProc struct {
	cmd  *exec.Cmd
	sock string // the socket it serves on
	log  *testreg.Buffer
	done chan error
}

// startGateway runs the plugin binary under test directly (as systemd
// would: argv[1] is the plugin's name) in front of the e2e buildkitd, on
// a socket in e's directory, and stops it with SIGTERM when t ends.
func (e *env) startGateway(t *testing.T, policy string) *gatewayProc {
	t.Helper()
	return e.startGatewayOn(t, policy, cfg.buildkitAddr, "gw")
}

// startGatewayOn is startGateway in front of the buildkitd at buildkit, on
// a socket in e's directory dir, with further flags extra (a later
// --listen wins).
func (e *env) startGatewayOn(t *testing.T, policy, buildkit, dir string, extra ...string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{sock: filepath.Join(e.dir, dir, "buildkitd.sock"), log: &testreg.Buffer{}, done: make(chan error, 1)}
	args := []string{"trustcache", "serve", "--buildkit", buildkit,
		"--listen", "unix://" + g.sock, "--policy", policy, "--log-format", "json", "--no-ledger", "--drain-timeout", "30s"}
	g.cmd = exec.Command(pluginBin, append(args, extra...)...)
	g.cmd.Env = e.environ(nil)
	g.cmd.Dir = e.dir
	g.cmd.Stdout = g.log
	g.cmd.Stderr = g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() {
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(time.Minute):
			g.cmd.Process.Kill()
			<-g.done
		}
		t.Logf("gateway log:\n%s", g.log)
	})
	g.waitLog(t, `"msg":"serving"`)
	return g
}

// waitLog waits until the gateway's log contains s.
func (g *gatewayProc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(g.log.String(), s) {
		select {
		case err := <-g.done:
			t.Fatalf("the gateway exited (%v) before logging %s:\n%s", err, s, g.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not log %s:\n%s", s, g.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// decisionLines returns the gateway's decision lines for ref.
func (g *gatewayProc) decisionLines(ref string) []string {
	var out []string
	for _, line := range strings.Split(g.log.String(), "\n") {
		if strings.Contains(line, `"msg":"cache import"`) && strings.Contains(line, `"ref":"`+ref+`"`) {
			out = append(out, line)
		}
	}
	return out
}

// TestServe: any client of a BuildKit behind the gateway (plain docker
// buildx build on a remote builder, buildctl) imports a signed cache and
// never an unsigned one.
func TestServe(t *testing.T) {
	e := trustEnv(t)
	ctx := e.serveProject(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	signed, evil := repo+":cache", repo+":evil"
	builders := []builder{{"builder-a", []string{filepath.Join(e.dir, "builder-a.pub")}}}
	drop := e.writePolicy(t, "drop.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	fail := e.writePolicy(t, "fail.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}, extra: "    onUntrusted: fail"}})

	// Builder A builds, exports its cache and signs it, as the other tests do.
	e.prune(t)
	report := filepath.Join(e.dir, "report-a.json")
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", drop, "--trust-report", report, "--sign", "--key", "builder-a.key",
		"--cache-to", "type=registry,ref="+signed+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-a"), ctx)
	e.trustcache(t, args...).must(t)
	honest := readResult(t, filepath.Join(e.dir, "out-a"))
	if rep := readReport(t, report); len(rep.Signed) != 1 {
		t.Fatalf("builder A signed %+v; want its cache", rep.Signed)
	}

	// The attacker pushes an unsigned cache to another tag.
	e.prune(t)
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+evil+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-x"), ctx)
	e.docker(t, args...).must(t)
	poison := readResult(t, filepath.Join(e.dir, "out-x"))

	// The gateway, with a policy file it reloads on SIGHUP.
	policy := filepath.Join(e.dir, "gateway.yaml")
	if err := copyFile(drop, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	gw := e.startGateway(t, policy)
	if fi, err := os.Stat(gw.sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("gateway socket: %v, %v; want mode 0660", fi, err)
	}
	gwBuilder := "gw-" + randomHex(t, 4)
	e.docker(t, "buildx", "create", "--name", gwBuilder, "--driver", "remote", "unix://"+gw.sock).must(t)
	gwArgs := func(out string, extra ...string) []string {
		a := []string{"buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false"}
		a = append(a, extra...)
		return append(a, "-o", "type=local,dest="+filepath.Join(e.dir, out), ctx)
	}

	// Plain buildx through the gateway: the signed cache is used.
	e.prune(t)
	r := e.docker(t, gwArgs("out-signed", "--cache-from", signed)...).must(t)
	signedProgress := r.stderr
	if got := readResult(t, filepath.Join(e.dir, "out-signed")); got != honest {
		t.Errorf("build through the gateway with the signed cache built %q; want builder A's %q\n%s", got, honest, r.stderr)
	}
	if lines := gw.decisionLines(signed); len(lines) == 0 || !strings.Contains(lines[0], `"action":"used"`) || !strings.Contains(lines[0], `"signers":["builder-a"]`) {
		t.Errorf("decision lines for %s: %q; want used, signed by builder-a", signed, lines)
	}

	// The unsigned cache is dropped: the build runs without it.
	e.prune(t)
	r = e.docker(t, gwArgs("out-evil", "--cache-from", evil)...).must(t)
	if got := readResult(t, filepath.Join(e.dir, "out-evil")); got == poison || got == honest {
		t.Errorf("build through the gateway with the unsigned cache built %q (poison %q, honest %q); want a fresh result", got, poison, honest)
	}
	if lines := gw.decisionLines(evil); len(lines) == 0 || !strings.Contains(lines[0], `"action":"dropped"`) || !strings.Contains(lines[0], `"verdict":"untrusted"`) {
		t.Errorf("decision lines for %s: %q; want dropped, untrusted", evil, lines)
	}

	// buildctl through the gateway: the signed cache is used.
	buildctl := filepath.Join(filepath.Dir(cfg.buildx), "buildctl")
	buildctlArgs := func(out, cache string) []string {
		return []string{"--addr", "unix://" + gw.sock, "build", "--frontend", "dockerfile.v0",
			"--local", "context=" + ctx, "--local", "dockerfile=" + ctx, "--opt", "force-network-mode=" + cfg.network,
			"--import-cache", "type=registry,ref=" + cache, "--output", "type=local,dest=" + filepath.Join(e.dir, out)}
	}
	if _, err := os.Stat(buildctl); err == nil {
		e.prune(t)
		e.run(t, nil, buildctl, buildctlArgs("out-buildctl", signed)...).must(t)
		if got := readResult(t, filepath.Join(e.dir, "out-buildctl")); got != honest {
			t.Errorf("buildctl through the gateway with the signed cache built %q; want %q", got, honest)
		}
	} else {
		t.Logf("no buildctl at %s: skipping the buildctl client", buildctl)
	}

	// The endpoint reference buildkitd imported the signed cache from (in
	// the build's progress) answers only while that build runs.
	t.Run("ScopeEndsWithBuild", func(t *testing.T) {
		refs := endpointRefs.FindAllString(signedProgress, -1)
		if len(refs) == 0 {
			t.Fatalf("no verified content endpoint reference in the build's progress:\n%s", signedProgress)
		}
		for _, ref := range refs {
			if code := endpointStatus(t, ref); code != http.StatusNotFound && code != 0 {
				t.Errorf("after the build, %s answers %d; want 404 or connection refused", ref, code)
			}
		}
	})

	t.Run("Bake", func(t *testing.T) { e.serveBake(t, gwBuilder, gw, ctx, signed, evil, honest, poison) })
	t.Run("CacheExportAndPush", func(t *testing.T) { e.serveExportPush(t, gwBuilder, ctx, signed, repo, honest) })
	t.Run("DockerExporter", func(t *testing.T) { e.serveDockerExporter(t, gwBuilder, ctx) })
	t.Run("Secret", func(t *testing.T) { e.serveSecret(t, gwBuilder) })
	t.Run("SSH", func(t *testing.T) { e.serveSSH(t, gwBuilder) })

	// onUntrusted: fail, loaded with SIGHUP: the client's build fails with
	// the gateway's message.
	if err := copyFile(fail, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	gw.cmd.Process.Signal(syscall.SIGHUP)
	gw.waitLog(t, `"msg":"policy reloaded"`)
	r = e.docker(t, gwArgs("out-fail", "--cache-from", evil)...)
	if r.code == 0 || !strings.Contains(r.stderr, "trustcache gateway: not building: cache "+evil+" is untrusted") {
		t.Errorf("want the build to fail with the gateway's message; got %v", r)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "out-fail", "result.txt")); err == nil {
		t.Errorf("onUntrusted: fail built anyway")
	}
	if _, err := os.Stat(buildctl); err == nil {
		r = e.run(t, nil, buildctl, buildctlArgs("out-buildctl-fail", evil)...)
		if r.code == 0 || !strings.Contains(r.stderr, "trustcache gateway: not building") {
			t.Errorf("want buildctl to fail with the gateway's message; got %v", r)
		}
	}

	// Health, answered by the gateway itself while buildkitd answers.
	cc, err := grpc.NewClient("unix://"+gw.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check through the gateway = %v, %v; want SERVING", hc, err)
	}

	// SIGTERM: a graceful stop, the socket removed.
	gw.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-gw.done:
		if err != nil {
			t.Errorf("gateway after SIGTERM: %v; want exit 0", err)
		}
		gw.done <- err // for the cleanup
	case <-time.After(time.Minute):
		t.Fatal("the gateway did not stop on SIGTERM")
	}
	if _, err := os.Stat(gw.sock); err == nil {
		t.Errorf("gateway socket left behind after SIGTERM")
	}
}

// serveDockerfile is the e2e Dockerfile with a nonce: the gateway tests'
// cache keys and layers are their own, whatever else the shared buildkitd
// builds meanwhile (another e2e run builds the plain Dockerfile, imports
// and prunes concurrently).
const serveDockerfile = `FROM %BASE%
RUN echo trustcache-e2e-serve-%NONCE% > /step1.txt
RUN sleep 2 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /expensive.txt
RUN cp /expensive.txt /result.txt
`

// serveProject is a build context with serveDockerfile.
func (e *env) serveProject(t *testing.T) string {
	t.Helper()
	return e.nonceProject(t, "project", serveDockerfile)
}

// endpointRefs matches the verified content endpoint's references in
// BuildKit's progress output.
var endpointRefs = regexp.MustCompile(`127\.0\.0\.1:[0-9]+/[0-9a-f]{32}/[0-9]+@sha256:[0-9a-f]{64}`)

// endpointStatus GETs the manifest an endpoint reference names and returns
// the status, 0 when nothing answers.
func endpointStatus(t *testing.T, ref string) int {
	t.Helper()
	repo, digest, _ := strings.Cut(ref, "@")
	host, path, _ := strings.Cut(repo, "/")
	resp, err := http.Get("http://" + host + "/v2/" + path + "/manifests/" + digest)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// serveBake: buildx bake through the gateway builder imports the signed
// cache and drops the unsigned one.
func (e *env) serveBake(t *testing.T, gwBuilder string, gw *gatewayProc, ctx, signed, evil, honest, poison string) {
	out := filepath.Join(e.dir, "bake-out")
	var b strings.Builder
	for _, tg := range []struct{ name, cache string }{{"good", signed}, {"bad", evil}} {
		fmt.Fprintf(&b, "target %q {\n  context = %q\n  network = %q\n  cache-from = [%q]\n  output = [\"type=local,dest=%s/%s\"]\n}\n",
			tg.name, ctx, cfg.network, tg.cache, out, tg.name)
	}
	b.WriteString("group \"default\" {\n  targets = [\"good\", \"bad\"]\n}\n")
	file := filepath.Join(e.dir, "gw-bake.hcl")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(gw.decisionLines(evil))
	e.prune(t)
	r := e.docker(t, "buildx", "bake", "--builder", gwBuilder, "--provenance=false", "-f", file).must(t)
	if got := readResult(t, filepath.Join(out, "good")); got != honest {
		t.Errorf("bake target with the signed cache built %q; want builder A's %q\n%s", got, honest, r.stderr)
	}
	if got := readResult(t, filepath.Join(out, "bad")); got == poison {
		t.Errorf("bake target with the unsigned cache built the poison %q\n%s", got, r.stderr)
	}
	lines := gw.decisionLines(evil)
	if len(lines) <= before {
		t.Fatalf("no decision on %s during the bake", evil)
	}
	for _, l := range lines[before:] {
		if !strings.Contains(l, `"action":"dropped"`) {
			t.Errorf("bake: decision on %s: %s; want dropped", evil, l)
		}
	}
	if lines := gw.decisionLines(signed); !strings.Contains(lines[len(lines)-1], `"action":"used"`) {
		t.Errorf("bake: last decision on %s: %s; want used", signed, lines[len(lines)-1])
	}
}

// serveExportPush: --cache-to type=registry and --push work through the
// gateway (the exports are not rewritten), with a signed cache imported.
func (e *env) serveExportPush(t *testing.T, gwBuilder, ctx, signed, repo, honest string) {
	exported, image := repo+":gw-export", repo+":gw-image"
	e.prune(t)
	r := e.docker(t, "buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false",
		"--cache-from", signed, "--cache-to", "type=registry,ref="+exported+",mode=max", "-t", image, "--push", ctx).must(t)
	if !strings.Contains(r.stderr, "CACHED") {
		t.Errorf("the build with the signed cache ran every step:\n%s", r.stderr)
	}
	e.crane(t, "manifest", exported).must(t)
	e.crane(t, "manifest", image).must(t)
	// The pushed image holds builder A's result.
	got := e.crane(t, "export", image, "-").must(t)
	if !strings.Contains(got.stdout, honest) {
		t.Errorf("the pushed image does not hold builder A's result %q", honest)
	}
}

// serveDockerExporter: the remote driver cannot --load into dockerd; the
// docker exporter to a file (what --load streams) works through the
// gateway.
func (e *env) serveDockerExporter(t *testing.T, gwBuilder, ctx string) {
	tar := filepath.Join(e.dir, "gw-image.tar")
	e.docker(t, "buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false",
		"-t", "gw-load:latest", "-o", "type=docker,dest="+tar, ctx).must(t)
	r := e.run(t, nil, "tar", "-tf", tar).must(t)
	if !strings.Contains(r.stdout, "manifest.json") {
		t.Errorf("the docker exporter's tar lacks manifest.json:\n%s", r.stdout)
	}
}

// nonceProject writes a build context whose Dockerfile is df (with %BASE%
// and a nonce, so that nothing is cached) and returns its directory.
func (e *env) nonceProject(t *testing.T, name, df string) string {
	t.Helper()
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	df = strings.NewReplacer("%BASE%", cfg.baseImage, "%NONCE%", randomHex(t, 8)).Replace(df)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveSecret: a build secret reaches the build through the gateway (the
// session stream).
func (e *env) serveSecret(t *testing.T, gwBuilder string) {
	dir := e.nonceProject(t, "secret-project", "FROM %BASE%\nRUN --mount=type=secret,id=s echo %NONCE% && cat /run/secrets/s > /out.txt\n")
	secret := "s3cret-" + randomHex(t, 8)
	src := filepath.Join(e.dir, "secret.txt")
	if err := os.WriteFile(src, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(e.dir, "secret-out")
	e.docker(t, "buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false",
		"--secret", "id=s,src="+src, "-o", "type=local,dest="+out, dir).must(t)
	if got, err := os.ReadFile(filepath.Join(out, "out.txt")); err != nil || string(got) != secret {
		t.Errorf("the build read the secret as %q, %v; want %q", got, err, secret)
	}
}

// serveSSH: SSH agent forwarding reaches the build through the gateway
// (the session stream).
func (e *env) serveSSH(t *testing.T, gwBuilder string) {
	agent, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Skip("no ssh-agent")
	}
	sock := filepath.Join(e.dir, "agent.sock")
	cmd := exec.Command(agent, "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent did not make its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	dir := e.nonceProject(t, "ssh-project", "FROM %BASE%\nRUN --mount=type=ssh echo %NONCE% && test -S \"$SSH_AUTH_SOCK\" && echo agent > /out.txt\n")
	out := filepath.Join(e.dir, "ssh-out")
	e.docker(t, "buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false",
		"--ssh", "default="+sock, "-o", "type=local,dest="+out, dir).must(t)
	if got, err := os.ReadFile(filepath.Join(out, "out.txt")); err != nil || string(got) != "agent\n" {
		t.Errorf("the build saw the agent as %q, %v; want a socket", got, err)
	}
}
