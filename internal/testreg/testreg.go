// Package testreg is the test harness of the module: a real in-memory
// registry (go-containerregistry's pkg/registry) over httptest that records
// every request and can be told to answer some of them with a fault, and
// P-256 keys for signing tests. Only _test.go files import it
// (internal/depcheck checks).
package testreg

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Fault answers a request instead of the registry when it returns true.
type Fault func(w http.ResponseWriter, r *http.Request) bool

// Option configures New.
type Option func(*config)

type config struct {
	referrers bool
	tls       bool
	blobs     ggcrregistry.BlobHandler
}

// Referrers turns the OCI 1.1 referrers API on or off (default off, as
// go-containerregistry's registry has it: clients fall back to the
// referrers tag).
func Referrers(on bool) Option { return func(c *config) { c.referrers = on } }

// TLS serves the registry over https with httptest's self-signed
// certificate (default off: plain http, as loopback registries are). Clients
// trust it through Server.Client().Transport.
func TLS(on bool) Option { return func(c *config) { c.tls = on } }

// Blobs stores blobs in h (a test may seed it directly).
func Blobs(h ggcrregistry.BlobHandler) Option { return func(c *config) { c.blobs = h } }

// Registry is an in-memory registry with a request log and a fault hook.
type Registry struct {
	// Server is the httptest server, closed when the test ends.
	Server *httptest.Server
	// Host is host:port of Server, for references.
	Host string
	// Handler is the registry itself, without the log and faults.
	Handler http.Handler

	mu       sync.Mutex
	requests []string // "METHOD /path" since Reset
	headers  []http.Header
	fault    Fault
}

// New starts a registry for the test t.
func New(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	ropts := []ggcrregistry.Option{
		ggcrregistry.Logger(log.New(io.Discard, "", 0)),
		ggcrregistry.WithReferrersSupport(c.referrers),
	}
	if c.blobs != nil {
		ropts = append(ropts, ggcrregistry.WithBlobHandler(c.blobs))
	}
	r := &Registry{Handler: ggcrregistry.New(ropts...)}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
		r.headers = append(r.headers, req.Header.Clone())
		fault := r.fault
		r.mu.Unlock()
		if fault != nil && fault(w, req) {
			return
		}
		r.Handler.ServeHTTP(w, req)
	}))
	if c.tls {
		r.Server.StartTLS()
	} else {
		r.Server.Start()
	}
	t.Cleanup(r.Server.Close)
	r.Host = strings.TrimPrefix(strings.TrimPrefix(r.Server.URL, "http://"), "https://")
	return r
}

// Bearer is a fault that makes the registry require the Bearer token
// token: its /token endpoint hands the token to anyone, and a request
// without it is answered 401 with a challenge naming that endpoint (https
// when the request came over TLS).
func Bearer(token string) Fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/token" {
			json.NewEncoder(w).Encode(map[string]string{"token": token})
			return true
		}
		if r.Header.Get("Authorization") == "Bearer "+token {
			return false
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s://%s/token",service="test"`, scheme, r.Host))
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
		return true
	}
}

// SetFault installs f (nil removes it) for the requests from now on.
func (r *Registry) SetFault(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// Reset forgets the requests recorded so far.
func (r *Registry) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests, r.headers = nil, nil
}

// Requests returns the "METHOD /path" of every request since Reset.
func (r *Registry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// Headers returns the headers of every request since Reset.
func (r *Registry) Headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

// Count returns how many requests since Reset have method and a path
// containing path.
func (r *Registry) Count(method, path string) int {
	n := 0
	for _, s := range r.Requests() {
		if strings.HasPrefix(s, method+" ") && strings.Contains(s, path) {
			n++
		}
	}
	return n
}

// Repo names the repository path on the registry.
func (r *Registry) Repo(t testing.TB, path string) name.Repository {
	t.Helper()
	repo, err := name.NewRepository(r.Host + "/" + path)
	if err != nil {
		t.Fatalf("name.NewRepository: %v", err)
	}
	return repo
}

// Seed stores a manifest straight into the registry (not through the log
// or faults, no referrers-tag upkeep): for large fixtures.
func (r *Registry) Seed(t testing.TB, repo name.Repository, ref string, mediaType types.MediaType, raw []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPut, "/v2/"+repo.RepositoryStr()+"/manifests/"+ref, bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(mediaType))
	rec := httptest.NewRecorder()
	r.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("seeding %s: %d %s", ref, rec.Code, rec.Body)
	}
}

// PushRandom writes a random image of layers layers of size bytes to ref
// and returns its digest.
func PushRandom(t testing.TB, ref name.Reference, size int64, layers int64) v1.Hash {
	t.Helper()
	img, err := random.Image(size, layers)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Key returns a new ECDSA P-256 key.
func Key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
