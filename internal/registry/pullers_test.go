package registry

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// TestPullersLifecycle: one puller for the client's life; Renew replaces
// the one it is given only if it is still current, so that two callers
// that saw the same stale puller make one new one.
func TestPullersLifecycle(t *testing.T) {
	ps := NewPullers(nil, 0, nil)
	p := ps.Current()
	if ps.Current() != p {
		t.Fatal("Current made a second puller")
	}
	if _, err := p.Options(context.Background()); err != nil {
		t.Fatalf("Options: %v", err)
	}
	renewed := ps.Renew(p)
	if renewed == p {
		t.Fatal("Renew(current) kept it")
	}
	if ps.Renew(p) != renewed || ps.Current() != renewed {
		t.Error("Renew(stale) replaced the current puller again")
	}
	reg, _ := name.NewRegistry("registry.example")
	if p.session != nil || p.Recheck(context.Background(), reg) {
		t.Error("a puller without a ping cache has a session or rechecks")
	}
	withPings := NewPullers(nil, 0, NewPingCache(newMemStore(), nil))
	if withPings.Current().session == nil {
		t.Error("a puller with a ping cache has no session")
	}
}
