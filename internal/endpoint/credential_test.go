package endpoint

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestRequireCredential: an endpoint made with RequireCredential answers
// 401 with a Basic challenge to every request without its credential —
// knowing the reference (on the build's command line, readable by every
// local user) is not enough — and serves a registry client that answers
// the challenge with it, as BuildKit does with its session's credentials.
func TestRequireCredential(t *testing.T) {
	tr := newTestRegistry(t)
	c := seedCacheManifest(t, tr, "team/app-cache", 1<<10, 1)
	s := startServer(t, RequireCredential())
	ref := mustAdd(t, s, c)
	user, password := s.Credential()
	if user != CredentialUser || len(password) != 64 {
		t.Fatalf("Credential() = %q, %d characters; want %q and 256 bits in hex", user, len(password), CredentialUser)
	}
	if other := startServer(t, RequireCredential()); func() bool { _, p := other.Credential(); return p == password }() {
		t.Fatalf("two endpoints share a password")
	}
	tr.reset()
	client := newClient(t)
	basic := func(u, p string) http.Header {
		req, _ := http.NewRequest("GET", "http://x", nil)
		req.SetBasicAuth(u, p)
		return http.Header{"Authorization": req.Header["Authorization"]}
	}
	urls := []string{
		"http://" + s.Addr() + "/v2/",
		endpointURL(ref, "manifests", c.root),
		endpointURL(ref, "blobs", c.config),
		endpointURL(ref, "blobs", c.layers[0]),
		"http://" + s.Addr() + "/v2/" + s.token + "/2/manifests/" + c.root.String(),
	}
	for _, u := range urls {
		for _, hdr := range []http.Header{
			nil,
			basic(user, ""),
			basic(user, password[:63]),
			basic("other", password),
			basic(user, strings.ToUpper(password)),
			{"Authorization": {"Bearer " + password}},
			{"Authorization": {password}},
		} {
			for _, method := range []string{"GET", "HEAD"} {
				got := do(t, client, method, u, hdr)
				if got.status != http.StatusUnauthorized || !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("%s %s with %v = %d (WWW-Authenticate %q); want 401 with a Basic challenge", method, u, hdr, got.status, got.header.Get("WWW-Authenticate"))
				}
				if method == "GET" && errorCode(got.body) != codeUnauthorized {
					t.Errorf("%s %s: error code %q; want %s", method, u, errorCode(got.body), codeUnauthorized)
				}
			}
		}
	}
	if n := len(tr.requests()); n != 0 {
		t.Errorf("the registry was asked %d times for requests without the credential; want 0", n)
	}
	if got := do(t, client, "GET", endpointURL(ref, "manifests", c.root), basic(user, password)); got.status != http.StatusOK {
		t.Errorf("GET manifest with the credential = %d; want 200", got.status)
	}

	// A registry client: refused anonymously, served with the credential
	// after the challenge.
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(d, clientOptions()...); err == nil {
		t.Errorf("pulling %s anonymously succeeded; want 401", ref)
	}
	img, err := remote.Image(d, append(clientOptions(), remote.WithAuth(&authn.Basic{Username: user, Password: password}))...)
	if err != nil {
		t.Fatalf("pulling %s with the credential: %v", ref, err)
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Errorf("config through the endpoint with the credential: %v", err)
	}

	// Without RequireCredential nothing is asked for, as before.
	open := startServer(t)
	if u, p := open.Credential(); u != "" || p != "" {
		t.Errorf("Credential() of an endpoint that requires none = %q, %q", u, p)
	}
	if got := do(t, client, "GET", endpointURL(mustAdd(t, open, c), "manifests", c.root), nil); got.status != http.StatusOK {
		t.Errorf("GET manifest of an endpoint that requires no credential = %d; want 200", got.status)
	}
}
