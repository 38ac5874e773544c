//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// gatewayHealth asks the gateway on sock for its health.
func gatewayHealth(t *testing.T, sock string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	return hc.GetStatus()
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// TestServeClientGoesAway: a buildx process killed in the middle of a
// build through the gateway (with a signed cache imported) leaves the
// gateway serving: the build's endpoint scope ends, health stays SERVING,
// and the next build works.
func TestServeClientGoesAway(t *testing.T) {
	e := trustEnv(t)
	ctx := e.serveProject(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	signed := repo + ":cache"
	builders := []builder{{"builder-a", []string{filepath.Join(e.dir, "builder-a.pub")}}}
	policy := e.writePolicy(t, "drop.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--sign", "--key", "builder-a.key",
		"--cache-to", "type=registry,ref="+signed+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-a"), ctx)
	e.trustcache(t, args...).must(t)

	gw := e.startGateway(t, policy)
	gwBuilder := "gw-" + randomHex(t, 4)
	e.docker(t, "buildx", "create", "--name", gwBuilder, "--driver", "remote", "unix://"+gw.sock).must(t)

	slow := e.nonceProject(t, "slow-project", "FROM %BASE%\nRUN echo %NONCE% && sleep 120 && echo done > /out.txt\n")
	cmd := exec.Command(cfg.docker, "buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false",
		"--cache-from", signed, "-o", "type=local,dest="+filepath.Join(e.dir, "out-slow"), slow)
	cmd.Env = e.environ(nil)
	cmd.Dir = e.dir
	progress := &testreg.Buffer{}
	cmd.Stdout, cmd.Stderr = progress, progress
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	if !waitFor(time.Minute, func() bool {
		return strings.Contains(progress.String(), "sleep 120") && endpointRefs.MatchString(progress.String())
	}) {
		t.Fatalf("the slow build did not start its RUN step with the signed cache imported:\n%s", progress)
	}
	ref := endpointRefs.FindString(progress.String())
	time.Sleep(time.Second) // the step runs
	cmd.Process.Kill()
	<-done
	done <- nil // for the cleanup

	if !waitFor(30*time.Second, func() bool { c := endpointStatus(t, ref); return c == 404 || c == 0 }) {
		t.Errorf("after the client went away, %s still answers %d; want 404", ref, endpointStatus(t, ref))
	}
	select {
	case err := <-gw.done:
		t.Fatalf("the gateway exited (%v) when a client went away:\n%s", err, gw.log)
	default:
	}
	if st := gatewayHealth(t, gw.sock); st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after a client went away = %v; want SERVING", st)
	}
	// The next build, through the same gateway, works and imports the
	// signed cache.
	r := e.docker(t, "buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false",
		"--cache-from", signed, "-o", "type=local,dest="+filepath.Join(e.dir, "out-next"), ctx).must(t)
	if got, want := readResult(t, filepath.Join(e.dir, "out-next")), readResult(t, filepath.Join(e.dir, "out-a")); got != want {
		t.Errorf("the next build built %q; want builder A's %q\n%s", got, want, r.stderr)
	}
}

// ownBuildkitd is a buildkitd of the test's own (its root and socket in a
// temporary directory, the e2e flags otherwise), which it may stop and
// start again without disturbing the other tests.
type ownBuildkitd struct {
	config string
	sock   string
	log    *testreg.Buffer
	cmd    *exec.Cmd
	done   chan error
}

func startOwnBuildkitd(t *testing.T) *ownBuildkitd {
	t.Helper()
	bin := filepath.Join(filepath.Dir(cfg.buildx), "buildkitd")
	runc, err := exec.LookPath("runc")
	if _, serr := os.Stat(bin); serr != nil || err != nil {
		t.Skipf("no buildkitd (%v) or runc (%v)", serr, err)
	}
	dir, err := os.MkdirTemp("", "tc-bk-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := &ownBuildkitd{config: filepath.Join(dir, "buildkitd.toml"), sock: filepath.Join(dir, "buildkitd.sock"), log: &testreg.Buffer{}}
	toml := `root = "` + filepath.Join(dir, "root") + `"
insecure-entitlements = ["network.host"]

[grpc]
  address = ["unix://` + b.sock + `"]

[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  binary = "` + runc + `"
  networkMode = "host"
  gc = true

[worker.containerd]
  enabled = false

[registry."` + cfg.registry + `"]
  http = true
  insecure = true
`
	if err := os.WriteFile(b.config, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	t.Cleanup(func() {
		b.stop(t)
		t.Logf("own buildkitd log:\n%s", b.log)
	})
	return b
}

func (b *ownBuildkitd) start(t *testing.T) {
	t.Helper()
	bin := filepath.Join(filepath.Dir(cfg.buildx), "buildkitd")
	b.cmd = exec.Command(bin, "--config", b.config)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.done = make(chan error, 1)
	go func() { b.done <- b.cmd.Wait() }()
	buildctl := filepath.Join(filepath.Dir(cfg.buildx), "buildctl")
	if !waitFor(time.Minute, func() bool {
		return exec.Command(buildctl, "--addr", "unix://"+b.sock, "debug", "workers").Run() == nil
	}) {
		t.Fatalf("own buildkitd not ready:\n%s", b.log)
	}
}

func (b *ownBuildkitd) stop(t *testing.T) {
	t.Helper()
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		b.cmd.Process.Kill()
		<-b.done
	}
	b.cmd = nil
}

// TestServeBuildkitdRestarts: buildkitd (the test's own) stops under the
// gateway and starts again: health goes NOT_SERVING then SERVING, builds
// fail during the outage and work afterwards, and the gateway keeps
// running.
func TestServeBuildkitdRestarts(t *testing.T) {
	e := trustEnv(t)
	ctx := e.serveProject(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	builders := []builder{{"builder-a", []string{filepath.Join(e.dir, "builder-a.pub")}}}
	policy := e.writePolicy(t, "drop.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	bk := startOwnBuildkitd(t)
	gw := e.startGatewayOn(t, policy, "unix://"+bk.sock, "gw-own")
	buildctl := filepath.Join(filepath.Dir(cfg.buildx), "buildctl")
	build := func(out string) result {
		return e.run(t, nil, buildctl, "--addr", "unix://"+gw.sock, "build", "--frontend", "dockerfile.v0",
			"--local", "context="+ctx, "--local", "dockerfile="+ctx, "--opt", "force-network-mode="+cfg.network,
			"--import-cache", "type=registry,ref="+repo+":unsigned",
			"--output", "type=local,dest="+filepath.Join(e.dir, out))
	}
	if st := gatewayHealth(t, gw.sock); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v; want SERVING", st)
	}
	build("out-before").must(t)

	bk.stop(t)
	if st := gatewayHealth(t, gw.sock); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health with buildkitd stopped = %v; want NOT_SERVING", st)
	}
	if r := build("out-during"); r.code == 0 {
		t.Errorf("a build with buildkitd stopped succeeded: %v", r)
	} else if !strings.Contains(r.stderr, "Unavailable") && !strings.Contains(r.stderr, "connection") {
		t.Errorf("a build with buildkitd stopped failed without saying buildkitd is unavailable: %v", r)
	}

	bk.start(t)
	start := time.Now()
	if !waitFor(30*time.Second, func() bool { return gatewayHealth(t, gw.sock) == healthpb.HealthCheckResponse_SERVING }) {
		t.Fatalf("health did not return to SERVING after buildkitd came back")
	}
	t.Logf("the gateway saw buildkitd back after %s", time.Since(start).Round(time.Millisecond))
	build("out-after").must(t)
	select {
	case err := <-gw.done:
		t.Fatalf("the gateway exited (%v):\n%s", err, gw.log)
	default:
	}
	if lines := gw.decisionLines(repo + ":unsigned"); len(lines) < 2 {
		t.Errorf("decision lines for the unsigned cache: %q; want one per build that reached the gateway's decision", lines)
	}
	for _, l := range gw.decisionLines(repo + ":unsigned") {
		if !strings.Contains(l, `"action":"dropped"`) {
			t.Errorf("decision %s; want dropped", l)
		}
	}
}
