package testreg

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The log records every request, a fault answers instead of the registry,
// and Reset forgets.
func TestRegistryLogAndFault(t *testing.T) {
	r := New(t)
	repo := r.Repo(t, "team/cache")
	d := PushRandom(t, repo.Tag("main"), 64, 1)
	if r.Count(http.MethodPut, "/manifests/main") != 1 {
		t.Fatalf("requests %v: want one manifest PUT", r.Requests())
	}
	r.Reset()
	r.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
		w.WriteHeader(http.StatusTeapot)
		return true
	})
	if _, err := remote.Head(repo.Digest(d.String())); err == nil {
		t.Fatal("HEAD through the fault succeeded")
	}
	if len(r.Requests()) == 0 || len(r.Headers()) != len(r.Requests()) {
		t.Fatalf("log %v, %d headers", r.Requests(), len(r.Headers()))
	}
	r.SetFault(nil)
	if _, err := remote.Head(repo.Digest(d.String())); err != nil {
		t.Fatalf("HEAD without the fault: %v", err)
	}
	r.SetFault(Bearer("t0ken"))
	if _, err := remote.Head(repo.Digest(d.String())); err != nil {
		t.Fatalf("HEAD through Bearer (anonymous token): %v", err)
	}
	if r.Count(http.MethodGet, "/token") != 1 {
		t.Fatalf("requests %v: want one token GET", r.Requests())
	}
	if k := Key(t); k.Curve.Params().Name != "P-256" {
		t.Fatalf("Key curve %s", k.Curve.Params().Name)
	}
}

// TLS serves over https with httptest's certificate: a client that trusts
// it through Server.Client() reads the registry, one that does not is
// refused.
func TestRegistryTLS(t *testing.T) {
	r := New(t, TLS(true))
	if !strings.HasPrefix(r.Server.URL, "https://") {
		t.Fatalf("Server.URL %s; want https", r.Server.URL)
	}
	repo := r.Repo(t, "team/cache")
	trusted := remote.WithTransport(r.Server.Client().Transport)
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag("main"), img, trusted); err != nil {
		t.Fatalf("Write over TLS: %v", err)
	}
	if _, err := remote.Head(repo.Tag("main"), trusted); err != nil {
		t.Fatalf("HEAD over TLS: %v", err)
	}
	if _, err := remote.Head(repo.Tag("main")); err == nil {
		t.Fatal("HEAD without trusting the test certificate succeeded")
	}
	if r.Count(http.MethodPut, "/manifests/main") != 1 {
		t.Fatalf("requests over TLS not logged: %v", r.Requests())
	}
}
