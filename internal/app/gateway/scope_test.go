package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/docker-trustcache/docker-trustcache/internal/endpoint"
)

// endpointScopes serves through a real verified content endpoint.
func endpointScopes(t *testing.T) Endpoint {
	t.Helper()
	ep := endpoint.New()
	if err := ep.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return EndpointFunc(func() (Scope, error) {
		sc, err := ep.NewScope()
		if err != nil {
			return nil, err
		}
		return sc, nil
	})
}

// endpointCode asks the endpoint for a tag of the name ref (HOST/TOKEN/N@D)
// and returns the registry error code of its 404: MANIFEST_UNKNOWN while
// the name is served (tags never are), NAME_UNKNOWN once it is not.
func endpointCode(t *testing.T, ref string) string {
	t.Helper()
	repo, _, _ := strings.Cut(ref, "@")
	host, path, _ := strings.Cut(repo, "/")
	resp, err := http.Get("http://" + host + "/v2/" + path + "/manifests/latest")
	if err != nil {
		return "connection refused: " + err.Error()
	}
	defer resp.Body.Close()
	var body struct{ Errors []struct{ Code string } }
	b, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(b, &body) != nil || len(body.Errors) != 1 || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("endpoint answered %d %s", resp.StatusCode, b)
	}
	return body.Errors[0].Code
}

// rewrittenRef is the endpoint reference buildkitd was given in the i-th
// call's request.
func rewrittenRef(t *testing.T, be *backend, i int, sh shape) string {
	t.Helper()
	calls := be.recorded()
	if len(calls) <= i || len(calls[i].msgs) != 1 {
		t.Fatalf("backend got %+v", calls)
	}
	imps, err := sh.imports(calls[i].msgs[0])
	if err != nil || len(imps) != 1 || !strings.HasPrefix(imps[0].Ref(), "127.0.0.1:") {
		t.Fatalf("backend got imports %v, %v; want one rewritten to the endpoint", summarize(imps), err)
	}
	return imps[0].Ref()
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSolveScopeEndsWithBuild: each build's trusted imports are served
// under a scope of their own, which ends with the build's Solve: a client
// that saw the reference can no longer read through it. A client-side
// frontend's LLBBridge.Solve (same build ID) shares its build's scope,
// which outlives it until the Control.Solve ends.
func TestSolveScopeEndsWithBuild(t *testing.T) {
	be := startBackend(t)
	be.hold = make(chan struct{})
	client, _ := gatewayWith(t, be, endpointScopes(t))
	imports := tagBytes(8, tagBytes(5, entry("registry", "ref", "reg.example/team/cache:signed")))

	// Build 1: its Control.Solve runs until the backend lets it go.
	solve1, err := client.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Solve")
	if err != nil {
		t.Fatal(err)
	}
	req := frame(cat(tagBytes(1, []byte("build-1")), imports))
	if err := solve1.SendMsg(&req); err != nil {
		t.Fatal(err)
	}
	solve1.CloseSend()
	var echo frame
	if err := solve1.RecvMsg(&echo); err != nil {
		t.Fatal(err)
	}
	ref1 := rewrittenRef(t, be, 0, controlSolve)
	if got := endpointCode(t, ref1); got != "MANIFEST_UNKNOWN" {
		t.Fatalf("build 1's endpoint name while it runs: %s; want served", got)
	}

	// Its frontend's LLBBridge.Solve: the same scope; it ends first.
	bctx := metadata.AppendToOutgoingContext(t.Context(), buildIDKey, "build-1")
	bridge, err := client.NewStream(bctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.frontend.LLBBridge/Solve")
	if err != nil {
		t.Fatal(err)
	}
	breq := frame(tagBytes(12, entry("registry", "ref", "reg.example/team/cache:signed")))
	if err := bridge.SendMsg(&breq); err != nil {
		t.Fatal(err)
	}
	bridge.CloseSend()
	if err := bridge.RecvMsg(&echo); err != nil {
		t.Fatal(err)
	}
	if got := rewrittenRef(t, be, 1, bridgeSolve); got != ref1 {
		t.Errorf("the frontend's Solve got %s; want its build's %s", got, ref1)
	}

	// Build 2, concurrent: a scope of its own.
	solve2, err := client.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Solve")
	if err != nil {
		t.Fatal(err)
	}
	req2 := frame(cat(tagBytes(1, []byte("build-2")), imports))
	if err := solve2.SendMsg(&req2); err != nil {
		t.Fatal(err)
	}
	solve2.CloseSend()
	if err := solve2.RecvMsg(&echo); err != nil {
		t.Fatal(err)
	}
	ref2 := rewrittenRef(t, be, 2, controlSolve)
	tok := func(ref string) string { return strings.Split(ref, "/")[1] }
	if tok(ref1) == tok(ref2) {
		t.Fatalf("two builds share the endpoint token: %s, %s", ref1, ref2)
	}

	// Every call ends: every scope closes.
	close(be.hold)
	for _, cs := range []grpc.ClientStream{solve1, bridge, solve2} {
		for cs.RecvMsg(&echo) == nil {
		}
	}
	for _, ref := range []string{ref1, ref2} {
		eventually(t, "the scope of "+ref+" to close", func() bool { return endpointCode(t, ref) == "NAME_UNKNOWN" })
	}
}

// The scope of a build still running (its Control.Solve) survives the end
// of its frontend's Solve; calls that name no build get one each.
func TestBridgeSolveKeepsBuildScope(t *testing.T) {
	scopes := &buildScopes{ep: fakeEndpoint{}}
	ctl := scopes.acquire("b")
	br := scopes.acquire("b")
	if ctl != br {
		t.Fatal("a build's calls got different scopes")
	}
	scopes.release(br)
	if scopes.open() != 1 {
		t.Fatal("the build's scope closed with its Control.Solve running")
	}
	scopes.release(ctl)
	if scopes.open() != 0 {
		t.Fatal("the build's scope outlived its calls")
	}
	if _, err := ctl.Add(name.Repository{}, v1.Hash{}); err != errScopeClosed {
		t.Errorf("Add after the build = %v; want errScopeClosed", err)
	}
	if a, b := scopes.acquire(""), scopes.acquire(""); a == b {
		t.Error("two calls naming no build share a scope")
	}
}
