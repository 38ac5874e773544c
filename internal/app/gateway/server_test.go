package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// backend is a fake buildkitd: a gRPC server that records every call and
// answers by echoing each message, prefixed with "echo:". A call with the
// metadata x-fail fails with codes.ResourceExhausted.
type backend struct {
	mu    sync.Mutex
	calls []call
	addr  string
	srv   *grpc.Server
	// hold, when set, keeps every Solve call open after the client's
	// last message until it is closed (a build running).
	hold chan struct{}
	// history is what ListenBuildHistory streams: BuildHistoryEvents.
	history [][]byte
}

type call struct {
	method string
	md     metadata.MD
	msgs   [][]byte
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	return startBackendAt(t, filepath.Join(t.TempDir(), "buildkitd.sock"))
}

// startBackendAt starts a backend on the unix socket sock.
func startBackendAt(t *testing.T, sock string) *backend {
	t.Helper()
	b := &backend{}
	b.srv = grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}), grpc.UnknownServiceHandler(b.handle))
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	b.addr = "unix://" + sock
	go b.srv.Serve(l)
	t.Cleanup(b.srv.Stop)
	return b
}

func (b *backend) handle(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	md, _ := metadata.FromIncomingContext(ss.Context())
	b.mu.Lock()
	i := len(b.calls)
	b.calls = append(b.calls, call{method: method, md: md})
	b.mu.Unlock()
	if err := ss.SetHeader(metadata.Pairs("x-backend-header", "h")); err != nil {
		return err
	}
	ss.SetTrailer(metadata.Pairs("x-backend-trailer", "t"))
	for {
		var f frame
		err := ss.RecvMsg(&f)
		if errors.Is(err, io.EOF) {
			if b.hold != nil && strings.HasSuffix(method, "/Solve") {
				<-b.hold
			}
			break
		}
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.calls[i].msgs = append(b.calls[i].msgs, f)
		b.mu.Unlock()
		if method == mListenBuildHistory {
			for _, ev := range b.history {
				m := frame(ev)
				if err := ss.SendMsg(&m); err != nil {
					return err
				}
			}
			return nil
		}
		if md.Get("x-fail") != nil {
			return status.Error(codes.ResourceExhausted, "backend says no")
		}
		out := frame(append([]byte("echo:"), f...))
		if err := ss.SendMsg(&out); err != nil {
			return err
		}
	}
	return nil
}

// solveCalls are the Solve calls be got.
func solveCalls(be *backend) []call {
	var out []call
	for _, c := range be.recorded() {
		if strings.HasSuffix(c.method, "/Solve") {
			out = append(out, c)
		}
	}
	return out
}

// openBuild opens build id through the gateway for the client of ctx: a
// Control.Status call, as buildx makes first.
func openBuild(t *testing.T, client *grpc.ClientConn, ctx context.Context, id string) {
	t.Helper()
	req, resp := frame(tagBytes(1, []byte(id))), frame{}
	if err := client.Invoke(ctx, mStatus, &req, &resp); err != nil {
		t.Fatalf("opening build %s: %v", id, err)
	}
}

func (b *backend) recorded() []call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]call(nil), b.calls...)
}

// fakeVerifier returns a fixed result per reference.
type fakeVerifier struct {
	policy  *trustpolicy.Policy
	results map[string]*verify.Result
}

func (v fakeVerifier) Verify(_ context.Context, ref string) (*verify.Result, error) {
	if r, ok := v.results[ref]; ok {
		return r, nil
	}
	return &verify.Result{Reference: ref, Verdict: verify.VerdictUntrusted, Level: trustpolicy.LevelStrict, OnUntrusted: trustpolicy.Drop, Reasons: []string{"no signatures found"}}, nil
}

func (v fakeVerifier) Policy() *trustpolicy.Policy { return v.policy }

// fakeEndpoint hands out references as the verified content endpoint does,
// one scope (itself) for every build.
type fakeEndpoint struct{}

func (fakeEndpoint) NewScope() (Scope, error) { return fakeEndpoint{}, nil }
func (fakeEndpoint) Close()                   {}

func (fakeEndpoint) Add(repo name.Repository, d v1.Hash) (string, error) {
	return "127.0.0.1:1/token/" + repo.RepositoryStr() + "@" + d.String(), nil
}

const (
	allowedFrontendDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digestA               = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

func testVerifier(t *testing.T) fakeVerifier {
	t.Helper()
	key := testreg.Key(t)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	text := "version: 1\nbuilders:\n  - name: ci-main\n    key: |\n      " +
		strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n      ") +
		"\nscopes:\n  - repositories: [\"reg.example/**\"]\n    builders: [ci-main]\nallowUnsignedTypes: [local]\nfrontends: [\"reg.example/fe/dockerfile@" + allowedFrontendDigest + "\"]\n"
	p, err := trustpolicy.Parse("policy.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return fakeVerifier{policy: p, results: map[string]*verify.Result{
		"reg.example/team/cache:signed": {
			Reference: "reg.example/team/cache:signed", Repository: "reg.example/team/cache", Digest: digestA,
			Trusted: true, Verdict: verify.VerdictTrusted, Level: trustpolicy.LevelStrict,
			Signers: []verify.Signer{{Builder: "ci-main"}},
		},
		"reg.example/team/cache:fail": {
			Reference: "reg.example/team/cache:fail", Repository: "reg.example/team/cache",
			Verdict: verify.VerdictUntrusted, Level: trustpolicy.LevelStrict, OnUntrusted: trustpolicy.Fail,
			Reasons: []string{"not signed by any key in the policy"},
		},
	}}
}

// gateway starts a gateway in front of be and returns a client connection
// to it and its log.
func gateway(t *testing.T, be *backend) (*grpc.ClientConn, *testreg.Buffer) {
	t.Helper()
	return gatewayWith(t, be, fakeEndpoint{})
}

// gatewayWith is gateway serving trusted caches through ep.
func gatewayWith(t *testing.T, be *backend, ep Endpoint, opts ...Option) (*grpc.ClientConn, *testreg.Buffer) {
	t.Helper()
	client, log, _ := gatewayServer(t, be, ep, opts...)
	return client, log
}

// gatewayServer is gatewayWith, also returning the Server.
func gatewayServer(t *testing.T, be *backend, ep Endpoint, opts ...Option) (*grpc.ClientConn, *testreg.Buffer, *Server) {
	t.Helper()
	var logBuf testreg.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	cc, err := Dial(be.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	s := New(cc, NewDecider(testVerifier(t), ep, log), log, opts...)
	l, err := Listen("unix://" + filepath.Join(t.TempDir(), "run", "gw.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	client, err := grpc.NewClient("unix://"+l.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client, &logBuf, s
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func TestForwardUnary(t *testing.T) {
	be := startBackend(t)
	client, _ := gateway(t, be)
	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-client", "c1", "x-bin-bin", "\x00\x01")
	req := frame(cat(unknowns, tagBytes(1, []byte("anything"))))
	var resp frame
	var hdr, trl metadata.MD
	if err := client.Invoke(ctx, "/moby.buildkit.v1.Control/DiskUsage", &req, &resp, grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("echo:"), req...); !bytes.Equal(resp, want) {
		t.Errorf("response %q; want %q", resp, want)
	}
	calls := be.recorded()
	if len(calls) != 1 || calls[0].method != "/moby.buildkit.v1.Control/DiskUsage" || len(calls[0].msgs) != 1 || !bytes.Equal(calls[0].msgs[0], req) {
		t.Fatalf("backend got %+v; want the request byte for byte", calls)
	}
	if got := calls[0].md.Get("x-client"); len(got) != 1 || got[0] != "c1" {
		t.Errorf("backend metadata %v; want x-client: c1", calls[0].md)
	}
	if got := calls[0].md.Get("x-bin-bin"); len(got) != 1 || got[0] != "\x00\x01" {
		t.Errorf("backend metadata %v; want binary x-bin-bin", calls[0].md)
	}
	if hdr.Get("x-backend-header") == nil || trl.Get("x-backend-trailer") == nil {
		t.Errorf("header %v, trailer %v; want the backend's", hdr, trl)
	}
}

func TestForwardBidiStream(t *testing.T) {
	be := startBackend(t)
	client, _ := gateway(t, be)
	cs, err := client.NewStream(sessionCtx(t.Context(), "session-1"), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Session")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		msg := frame(bytes.Repeat([]byte{byte('a' + i)}, 1<<20)) // 1 MiB each
		if err := cs.SendMsg(&msg); err != nil {
			t.Fatal(err)
		}
		var got frame
		if err := cs.RecvMsg(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append([]byte("echo:"), msg...)) {
			t.Fatalf("message %d: echo of %d bytes wrong", i, len(got))
		}
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var f frame
	if err := cs.RecvMsg(&f); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseSend: %v; want io.EOF", err)
	}
	if cs.Trailer().Get("x-backend-trailer") == nil {
		t.Errorf("trailer %v; want the backend's", cs.Trailer())
	}
}

func TestForwardBackendError(t *testing.T) {
	be := startBackend(t)
	client, _ := gateway(t, be)
	req, resp := frame("x"), frame{}
	err := client.Invoke(metadata.AppendToOutgoingContext(t.Context(), "x-fail", "1"), "/moby.buildkit.v1.Control/Info", &req, &resp)
	if s := status.Convert(err); s.Code() != codes.ResourceExhausted || s.Message() != "backend says no" {
		t.Errorf("Invoke = %v; want the backend's ResourceExhausted", err)
	}
}

func TestSolveImportsDecided(t *testing.T) {
	be := startBackend(t)
	client, logBuf := gateway(t, be)
	req := frame(cat(
		tagBytes(2, llbDef),
		tagBytes(8, cat(
			tagBytes(5, entry("registry", "mode", "max", "ref", "reg.example/team/cache:signed")),
			tagBytes(5, entry("registry", "ref", "reg.example/team/cache:evil")),
			tagBytes(5, entry("local", "src", "/x")),
			tagBytes(5, entry("gha", "scope", "y")),
		)),
		unknowns,
	))
	var resp frame
	if err := client.Invoke(t.Context(), "/moby.buildkit.v1.Control/Solve", &req, &resp); err != nil {
		t.Fatal(err)
	}
	calls := be.recorded()
	if len(calls) != 1 || len(calls[0].msgs) != 1 {
		t.Fatalf("backend got %+v", calls)
	}
	imps, err := controlSolve.imports(calls[0].msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := []importSummary{
		{"Cache.Imports", "registry", "127.0.0.1:1/token/team/cache@" + digestA},
		{"Cache.Imports", "local", ""},
	}
	if got := summarize(imps); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("buildkitd got imports %+v; want %+v", got, want)
	}
	if got, want := otherFields(t, calls[0].msgs[0], 8), otherFields(t, req, 8); !bytes.Equal(got, want) {
		t.Errorf("other fields changed")
	}
	log := logBuf.String()
	for _, want := range []string{
		`"ref":"reg.example/team/cache:signed","digest":"` + digestA + `","verdict":"trusted","action":"used","signers":["ci-main"],"fallback":"","tagDigest":""`,
		`"ref":"reg.example/team/cache:evil","digest":"","verdict":"untrusted","action":"dropped"`,
		`"type":"gha","ref":"","digest":"","verdict":"","action":"dropped"`,
		`"type":"local","ref":"","digest":"","verdict":"","action":"passed"`,
		`"client":"pid=`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("decision log lacks %s:\n%s", want, log)
		}
	}
}

func TestSolveBlocked(t *testing.T) {
	be := startBackend(t)
	client, _ := gateway(t, be)
	openBuild(t, client, t.Context(), "build-1")
	req := frame(mapField(3, "cache-imports", `[{"Type":"registry","Attrs":{"ref":"reg.example/team/cache:fail"}}]`))
	var resp frame
	err := client.Invoke(buildCtx(t.Context(), "build-1"), "/moby.buildkit.v1.frontend.LLBBridge/Solve", &req, &resp)
	s := status.Convert(err)
	if s.Code() != codes.PermissionDenied || !strings.Contains(s.Message(), "reg.example/team/cache:fail is untrusted: not signed by any key in the policy (policy onUntrusted: fail)") {
		t.Errorf("Invoke = %v; want PermissionDenied naming the cache", err)
	}
	if calls := solveCalls(be); len(calls) != 0 {
		t.Errorf("buildkitd got %+v; want nothing", calls)
	}
}

func TestSolveMalformed(t *testing.T) {
	be := startBackend(t)
	client, logBuf := gateway(t, be)
	for _, req := range []frame{
		frame(tagVarint(8, 1)),
		frame(mapField(7, "cache-imports", "[")),
		frame(cat(tagBytes(2, make([]byte, MaxRequestSize)), mapField(7, "cache-from", "reg/x:1"))),
	} {
		var resp frame
		err := client.Invoke(t.Context(), "/moby.buildkit.v1.Control/Solve", &req, &resp)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("Invoke(%d bytes) = %v; want InvalidArgument", len(req), err)
		}
	}
	if calls := be.recorded(); len(calls) != 0 {
		t.Errorf("buildkitd got %d calls; want none", len(calls))
	}
	if !strings.Contains(logBuf.String(), `"msg":"request refused"`) {
		t.Errorf("no refusal logged:\n%s", logBuf)
	}
}

func TestHealth(t *testing.T) {
	be := startBackend(t)
	client, _ := gateway(t, be)
	check := func() uint64 {
		t.Helper()
		req, resp := frame{}, frame{}
		if err := client.Invoke(t.Context(), healthCheck, &req, &resp); err != nil {
			t.Fatal(err)
		}
		num, typ, n := protowire.ConsumeTag(resp)
		if n < 0 || num != 1 || typ != protowire.VarintType {
			t.Fatalf("health response %q", resp)
		}
		v, _ := protowire.ConsumeVarint(resp[n:])
		return v
	}
	if got := check(); got != healthServing {
		t.Errorf("health with buildkitd up = %d; want SERVING", got)
	}
	for _, c := range be.recorded() {
		if c.method == healthCheck {
			t.Errorf("the health check was forwarded")
		}
	}
	be.srv.Stop()
	if got := check(); got != healthNotServing {
		t.Errorf("health with buildkitd down = %d; want NOT_SERVING", got)
	}
}

func TestListen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "trustcache")
	sock := filepath.Join(dir, "gw.sock")
	l, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix://" + sock); err == nil || !strings.Contains(err.Error(), "already listens") {
		t.Errorf("second Listen = %v; want already listens", err)
	}
	st, err := statMode(sock)
	if err != nil || st != 0o660 {
		t.Errorf("socket mode %o, %v; want 660", st, err)
	}
	if st, err := statMode(dir); err != nil || st != 0o755 {
		t.Errorf("socket dir mode %o, %v; want 755", st, err)
	}
	l.Close()
	if _, err := statMode(sock); err == nil {
		t.Errorf("socket left behind after Close")
	}
	for _, addr := range []string{"tcp://", "tcp://127.0.0.1:0/x", "http://x", "unix://"} {
		if _, err := Listen(addr); err == nil {
			t.Errorf("Listen(%q) succeeded; want refused", addr)
		}
	}
}

// A client that sends a second request on a Solve: only the inspected
// first one reaches buildkitd.
func TestSolveSecondMessageNotRelayed(t *testing.T) {
	be := startBackend(t)
	client, _ := gateway(t, be)
	cs, err := client.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Solve")
	if err != nil {
		t.Fatal(err)
	}
	first := frame(mapField(7, "cache-from", "reg.example/team/cache:evil"))
	second := frame(mapField(7, "cache-from", "reg.example/team/cache:evil2"))
	if err := cs.SendMsg(&first); err != nil {
		t.Fatal(err)
	}
	cs.SendMsg(&second)
	cs.CloseSend()
	for {
		var f frame
		if err := cs.RecvMsg(&f); err != nil {
			break
		}
	}
	calls := be.recorded()
	if len(calls) != 1 || len(calls[0].msgs) != 1 {
		t.Fatalf("buildkitd got %+v; want one call with one message", calls)
	}
	if imps, err := controlSolve.imports(calls[0].msgs[0]); err != nil || len(imps) != 0 {
		t.Errorf("buildkitd got imports %v, %v; want none (the unsigned cache dropped)", summarize(imps), err)
	}
}

// Shutdown lets a running call finish (a build), refuses new ones, and
// ends what is still running when its context is done.
func TestShutdownDrains(t *testing.T) {
	be := startBackend(t)
	cc, err := Dial(be.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	log := slog.New(slog.DiscardHandler)
	s := New(cc, NewDecider(testVerifier(t), fakeEndpoint{}, log), log)
	l, err := Listen("unix://" + filepath.Join(t.TempDir(), "gw.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	client, err := grpc.NewClient("unix://"+l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cs, err := client.NewStream(sessionCtx(t.Context(), "session-1"), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Session")
	if err != nil {
		t.Fatal(err)
	}
	msg := frame("one")
	if err := cs.SendMsg(&msg); err != nil {
		t.Fatal(err)
	}
	var got frame
	if err := cs.RecvMsg(&got); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		s.Shutdown(context.Background())
		close(stopped)
	}()
	// The running call goes on while the server drains.
	msg = frame("two")
	if err := cs.SendMsg(&msg); err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(&got); err != nil || string(got) != "echo:two" {
		t.Fatalf("during the drain: %q, %v; want echo:two", got, err)
	}
	select {
	case <-stopped:
		t.Fatal("Shutdown returned with a call running")
	default:
	}
	cs.CloseSend()
	if err := cs.RecvMsg(&got); !errors.Is(err, io.EOF) {
		t.Fatalf("end of the call: %v; want io.EOF", err)
	}
	<-stopped

	// A drain that times out ends the calls still running.
	s2 := New(cc, NewDecider(testVerifier(t), fakeEndpoint{}, log), log)
	l2, err := Listen("unix://" + filepath.Join(t.TempDir(), "gw2.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go s2.Serve(l2)
	client2, err := grpc.NewClient("unix://"+l2.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer client2.Close()
	cs2, err := client2.NewStream(sessionCtx(t.Context(), "session-2"), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Session")
	if err != nil {
		t.Fatal(err)
	}
	if err := cs2.SendMsg(&msg); err != nil {
		t.Fatal(err)
	}
	if err := cs2.RecvMsg(&got); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s2.Shutdown(ctx)
	if err := cs2.RecvMsg(&got); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("after the drain timeout the call goes on: %v", err)
	}
}

func statMode(path string) (os.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Mode().Perm(), nil
}
