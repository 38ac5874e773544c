//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// gatewayProc is a running `docker-trustcache trustcache serve`.
type gatewayProc struct {
	cmd  *exec.Cmd
	sock string // the socket it serves on
	log  *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startGateway runs the plugin binary under test directly (as systemd
// would: argv[1] is the plugin's name) in front of the e2e buildkitd, on
// a socket in e's directory, and stops it with SIGTERM when t ends.
func (e *env) startGateway(t *testing.T, policy string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{sock: filepath.Join(e.dir, "gw", "buildkitd.sock"), log: &lockedBuffer{}, done: make(chan error, 1)}
	g.cmd = exec.Command(pluginBin, "trustcache", "serve", "--buildkit", cfg.buildkitAddr,
		"--listen", "unix://"+g.sock, "--policy", policy, "--log-format", "json", "--no-ledger", "--drain-timeout", "30s")
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
	ctx := e.project(t)
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
