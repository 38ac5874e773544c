package plugin

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// rawFrames is a pass-through codec for the fake buildkitd.
type rawFrames struct{}

func (rawFrames) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawFrames) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawFrames) Name() string { return "proto" }

// fakeBuildkitd answers every method with an empty message, as
// buildkitd's ListWorkers does with no workers.
func fakeBuildkitd(t *testing.T) string {
	t.Helper()
	srv := grpc.NewServer(grpc.ForceServerCodecV2(rawFrames{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		var req []byte
		if err := ss.RecvMsg(&req); err != nil {
			return err
		}
		resp := []byte{}
		return ss.SendMsg(&resp)
	}))
	sock := filepath.Join(t.TempDir(), "buildkitd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return "unix://" + sock
}

func servePolicy(t *testing.T, dir string) string {
	t.Helper()
	pub := filepath.Join(dir, "ci.pub")
	writeDiscoveryKey(t, pub)
	p := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(p, []byte(discoveryPolicy(pub)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServeRefusesToStart(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	policy := servePolicy(t, dir)
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	backend := fakeBuildkitd(t)
	sock := "unix://" + filepath.Join(dir, "gw.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--policy", policy}, "--buildkit is required"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", sock, "--log-format", "xml"}, `--log-format: unknown format "xml"`},
		{[]string{"--policy", bad, "--buildkit", backend, "--listen", sock}, "policy: "},
		{[]string{"--policy", filepath.Join(dir, "missing.yaml"), "--buildkit", backend, "--listen", sock}, "missing.yaml"},
		{[]string{"--buildkit", backend, "--listen", sock}, "no policy"},
		{[]string{"--policy", policy, "--buildkit", "unix://" + filepath.Join(dir, "none.sock"), "--listen", sock}, "is unreachable"},
		{[]string{"--policy", policy, "--buildkit", "tcp://192.0.2.1:1234", "--listen", sock}, "buildkitd must run on this host"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", "tcp://127.0.0.1:0"}, "--listen tcp://127.0.0.1:0: tcp:// needs mutual TLS: --tls-cert, --tls-key and --tls-cacert"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", "tcp://127.0.0.1:0", "--tls-cert", policy, "--tls-key", policy}, "mutual TLS needs --tls-cert, --tls-key and --tls-cacert: [--tls-cacert] missing"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", "tcp://127.0.0.1:0", "--tls-cert", policy, "--tls-key", policy, "--tls-cacert", policy}, "--tls-cert " + policy},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", sock, "--buildkit-tls-cert", policy, "--buildkit-tls-key", policy}, "--buildkit-tls-cacert is required"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", sock, "--buildkit-tls-cacert", filepath.Join(dir, "none.pem")}, "--buildkit-tls-cacert: open "},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", "unix://" + policy}, "is not a socket"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", "tcp://127.0.0.1:0", "--allow-uid", "1000"}, "--allow-uid and --allow-gid admit unix socket clients"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", sock, "--allow-subject", "ci-*"}, "--allow-subject admits TLS client certificates"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", sock, "--allow-uid", "no-such-user-tc"}, "--allow-uid no-such-user-tc: not a number"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", sock, "--allow-gid", "no-such-group-tc"}, "--allow-gid no-such-group-tc: not a number"},
		{[]string{"--policy", policy, "--buildkit", backend, "--listen", sock, "--allow-uid", "99999999999"}, "--allow-uid 99999999999"},
	} {
		res := te.run(append([]string{"serve"}, tc.args...)...)
		if res.code != ExitUsage || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("serve %q: exit %d, stderr %q; want exit %d and %q", tc.args, res.code, res.stderr, ExitUsage, tc.want)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestServeReloadAndStop(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	policy := servePolicy(t, dir)
	good, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	dockerCLI := te.cli(io.Discard, io.Discard)
	var log testreg.Buffer
	sock := filepath.Join(dir, "run", "gw.sock")
	sigs := make(chan os.Signal)
	done := make(chan error, 1)
	go func() {
		done <- runServe(context.Background(), dockerCLI, te.env, &log, serveOptions{
			buildkit: fakeBuildkitd(t), listen: "unix://" + sock, policy: policy,
			logFormat: "json", drainTimeout: time.Second, noLedger: true,
		}, sigs)
	}()
	waitFor(t, "the serving log line", func() bool { return strings.Contains(log.String(), `"msg":"serving"`) })
	if want := fmt.Sprintf(`"allowUIDs":[%d`, os.Getuid()); !strings.Contains(log.String(), want) {
		t.Errorf("the serving line does not say who may build (%s):\n%s", want, log.String())
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %v, %v; want mode 0660", fi, err)
	}

	// A policy that does not load is not taken.
	if err := os.WriteFile(policy, []byte("version: 1\nscopes: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	waitFor(t, "the reload refusal", func() bool { return strings.Contains(log.String(), "policy not reloaded: keeping the policy in use") })
	if err := os.WriteFile(policy, good, 0o644); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	waitFor(t, "the reload", func() bool { return strings.Contains(log.String(), `"msg":"policy reloaded"`) })

	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runServe after SIGTERM = %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runServe did not stop on SIGTERM")
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("socket left behind")
	}
	if !strings.Contains(log.String(), `"msg":"stopped"`) {
		t.Errorf("log lacks the stop:\n%s", log.String())
	}
}
