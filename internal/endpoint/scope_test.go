package endpoint

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// TestScope: a scope's names answer while it is open and 404 once it is
// closed; another scope (and the Server's own names) are not affected, and
// no scope's token opens another's caches.
func TestScope(t *testing.T) {
	tr := newTestRegistry(t)
	a := seedCacheManifest(t, tr, "team/app-cache", 1<<10, 1)
	b := seedCacheManifest(t, tr, "team/other-cache", 1<<10, 2)
	s := startServer(t)
	if _, err := New().NewScope(); !errors.Is(err, ErrNotStarted) {
		t.Errorf("NewScope before Start = %v; want ErrNotStarted", err)
	}
	one, err := s.NewScope()
	if err != nil {
		t.Fatal(err)
	}
	two, err := s.NewScope()
	if err != nil {
		t.Fatal(err)
	}
	refA, err := one.Add(a.repo, a.root)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := one.Add(a.repo, a.root); again != refA {
		t.Errorf("Add again = %q; want %q", again, refA)
	}
	refB, err := two.Add(b.repo, b.root)
	if err != nil {
		t.Fatal(err)
	}
	refRoot := mustAdd(t, s, a)
	tokOf := func(ref string) string { return strings.Split(ref, "/")[1] }
	if tokOf(refA) == tokOf(refB) || tokOf(refA) == s.token || tokOf(refB) == s.token {
		t.Fatalf("scopes share a token: %q, %q, server %q", refA, refB, s.token)
	}
	client := newClient(t)
	get := func(ref string, c *testCache) int {
		t.Helper()
		return do(t, client, "GET", endpointURL(ref, "manifests", c.root), nil).status
	}
	if got := get(refA, a); got != http.StatusOK {
		t.Errorf("scope one's cache = %d; want 200", got)
	}
	// Scope two's token does not open scope one's names.
	crossed := strings.Replace(refA, tokOf(refA), tokOf(refB), 1)
	if got := get(crossed, a); got != http.StatusNotFound {
		t.Errorf("scope one's name under scope two's token = %d; want 404", got)
	}

	one.Close()
	one.Close() // again: nothing
	if got := get(refA, a); got != http.StatusNotFound {
		t.Errorf("closed scope's cache = %d; want 404", got)
	}
	if got := do(t, client, "GET", endpointURL(refA, "blobs", a.config), nil).status; got != http.StatusNotFound {
		t.Errorf("closed scope's blob = %d; want 404", got)
	}
	if _, err := one.Add(a.repo, a.root); !errors.Is(err, ErrClosed) {
		t.Errorf("Add on a closed scope = %v; want ErrClosed", err)
	}
	if got := get(refB, b); got != http.StatusOK {
		t.Errorf("open scope two's cache after scope one closed = %d; want 200", got)
	}
	if got := get(refRoot, a); got != http.StatusOK {
		t.Errorf("the Server's own cache after scope one closed = %d; want 200", got)
	}
	s.Close()
	if _, err := s.NewScope(); !errors.Is(err, ErrClosed) {
		t.Errorf("NewScope after Close = %v; want ErrClosed", err)
	}
	if _, err := two.Add(a.repo, a.root); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after the Server closed = %v; want ErrClosed", err)
	}
}
