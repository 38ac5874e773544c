package gateway

import (
	"context"
	"log/slog"
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
)

// healthOf asks the gateway's health service.
func healthOf(t *testing.T, client *grpc.ClientConn) uint64 {
	t.Helper()
	req, resp := frame{}, frame{}
	if err := client.Invoke(t.Context(), healthCheck, &req, &resp); err != nil {
		t.Fatal(err)
	}
	_, _, n := protowire.ConsumeTag(resp)
	v, _ := protowire.ConsumeVarint(resp[n:])
	return v
}

// A client that goes away in the middle of a build: the call is ended
// upstream too, the build's endpoint scope is closed, and the gateway
// serves the next client.
func TestClientGoesAway(t *testing.T) {
	be := startBackend(t)
	be.hold = make(chan struct{})
	defer close(be.hold)
	cc, err := Dial(be.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	scopes := &countingEndpoint{}
	s := New(cc, NewDecider(testVerifier(t), scopes, discard()), discard())
	l, err := Listen("unix://" + filepath.Join(t.TempDir(), "gw.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer s.Shutdown(context.Background())
	client := dialGateway(t, l.Addr().String())

	ctx, cancel := context.WithCancel(t.Context())
	cs, err := client.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Solve")
	if err != nil {
		t.Fatal(err)
	}
	req := frame(cat(tagBytes(1, []byte("build-gone")), tagBytes(8, tagBytes(5, entry("registry", "ref", "reg.example/team/cache:signed")))))
	if err := cs.SendMsg(&req); err != nil {
		t.Fatal(err)
	}
	var got frame
	if err := cs.RecvMsg(&got); err != nil {
		t.Fatal(err)
	}
	if s.scopes.open() != 1 || scopes.opened() != 1 {
		t.Fatalf("open build scopes %d, endpoint scopes %d; want the build's", s.scopes.open(), scopes.opened())
	}
	cancel() // the client goes away mid-build
	eventually(t, "the build's scope to close", func() bool { return s.scopes.open() == 0 && scopes.closedCount() == 1 })

	// The next client is served.
	req2, resp := frame("x"), frame{}
	if err := client.Invoke(metadata.AppendToOutgoingContext(t.Context(), "x-fail", "1"), "/moby.buildkit.v1.Control/Info", &req2, &resp); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("the next call = %v; want the backend's answer", err)
	}
	if got := healthOf(t, client); got != healthServing {
		t.Errorf("health after a client went away = %d; want SERVING", got)
	}
}

// buildkitd goes away under the gateway and comes back on the same
// socket: health goes NOT_SERVING then SERVING; calls during the outage
// fail with Unavailable and reach nothing; afterwards Solve requests are
// decided and forwarded again, never passed on unverified.
func TestBackendRestarts(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "buildkitd.sock")
	be := startBackendAt(t, sock)
	client, _ := gateway(t, be)
	if got := healthOf(t, client); got != healthServing {
		t.Fatalf("health = %d; want SERVING", got)
	}
	be.srv.Stop()
	if got := healthOf(t, client); got != healthNotServing {
		t.Errorf("health with buildkitd gone = %d; want NOT_SERVING", got)
	}
	solve := frame(mapField(7, "cache-from", "reg.example/team/cache:signed,reg.example/team/cache:evil"))
	var resp frame
	err := client.Invoke(t.Context(), "/moby.buildkit.v1.Control/Solve", &solve, &resp)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Solve with buildkitd gone = %v; want Unavailable", err)
	}
	cs, err := client.NewStream(sessionCtx(t.Context(), "session-1"), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Session")
	if err == nil {
		var f frame
		err = cs.RecvMsg(&f)
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Session with buildkitd gone = %v; want Unavailable", err)
	}

	// buildkitd comes back after an outage longer than grpc's first
	// backoff steps.
	time.Sleep(3 * time.Second)
	be2 := startBackendAt(t, sock)
	start := time.Now()
	eventually(t, "health SERVING after buildkitd came back", func() bool { return healthOf(t, client) == healthServing })
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("the gateway took %s to see buildkitd back", d)
	}
	if err := client.Invoke(t.Context(), "/moby.buildkit.v1.Control/Solve", &solve, &resp); err != nil {
		t.Fatal(err)
	}
	calls := be2.recorded()
	var solves []call
	for _, c := range calls {
		if c.method == "/moby.buildkit.v1.Control/Solve" {
			solves = append(solves, c)
		}
	}
	if len(solves) != 1 || len(solves[0].msgs) != 1 {
		t.Fatalf("buildkitd got %+v; want the one Solve after it came back", solves)
	}
	imps, err := controlSolve.imports(solves[0].msgs[0])
	if err != nil || len(imps) != 1 || !strings.HasPrefix(imps[0].Ref(), "127.0.0.1:1/token/") {
		t.Errorf("buildkitd got imports %v, %v; want only the signed cache, through the endpoint", summarize(imps), err)
	}
}

// countingEndpoint counts the scopes opened and closed.
type countingEndpoint struct {
	mu             sync.Mutex
	opens, closeds int
}

func (e *countingEndpoint) NewScope() (Scope, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.opens++
	return countingScope{e}, nil
}

func (e *countingEndpoint) opened() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opens
}

func (e *countingEndpoint) closedCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closeds
}

type countingScope struct{ e *countingEndpoint }

func (s countingScope) Add(repo name.Repository, d v1.Hash) (string, error) {
	return fakeEndpoint{}.Add(repo, d)
}

func (s countingScope) Close() {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.e.closeds++
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// dialGateway is a raw client of the gateway on socket path.
func dialGateway(t *testing.T, path string) *grpc.ClientConn {
	t.Helper()
	client, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}
