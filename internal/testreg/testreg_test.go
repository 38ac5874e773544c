package testreg

import (
	"net/http"
	"testing"

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
