package endpoint

// Tests of the security contract: only verified content, under the
// Server's token, read-only, and nothing of the client or the registry
// passes through but the content.

import (
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// TestServesOnlyVerifiedContent: the verified manifest by digest, the blobs
// it refers to, /v2/; nothing else, and nothing else is asked upstream.
func TestServesOnlyVerifiedContent(t *testing.T) {
	tr := newTestRegistry(t)
	a := seedCacheManifest(t, tr, "team/app-cache", 1<<10, 1)
	b := seedCacheManifest(t, tr, "team/app-cache", 1<<10, 3) // same repository, not verified
	if err := remote.Put(a.repo.Tag("latest"), a.manifests[a.root]); err != nil {
		t.Fatalf("remote.Put: %v", err)
	}
	s := startServer(t)
	ref := mustAdd(t, s, a)
	tr.reset()
	client := newClient(t)
	host := "http://" + s.Addr()
	name := host + "/v2/" + s.token + "/1"
	tests := []struct {
		method, url string
		want        int
		wantCode    string
	}{
		{"GET", host + "/v2/", 200, ""},
		{"HEAD", host + "/v2/", 200, ""},
		{"GET", endpointURL(ref, "manifests", a.root), 200, ""},
		{"HEAD", endpointURL(ref, "manifests", a.root), 200, ""},
		{"GET", endpointURL(ref, "blobs", a.config), 200, ""},
		{"GET", endpointURL(ref, "blobs", a.layers[0]), 200, ""},
		{"HEAD", endpointURL(ref, "blobs", a.layers[1]), 200, ""},
		{"GET", name + "/manifests/latest", 404, codeManifestUnknown},
		{"GET", endpointURL(ref, "manifests", b.root), 404, codeManifestUnknown},
		{"GET", name + "/manifests/" + strings.ToUpper(a.root.String()), 404, codeManifestUnknown},
		{"GET", name + "/manifests/sha512:" + strings.Repeat("a", 128), 404, codeManifestUnknown},
		{"GET", endpointURL(ref, "blobs", b.config), 404, codeBlobUnknown},
		{"HEAD", endpointURL(ref, "blobs", b.layers[0]), 404, codeBlobUnknown},
		{"GET", endpointURL(ref, "blobs", a.root), 404, codeBlobUnknown},
		{"GET", name + "/tags/list", 404, codeUnsupported},
		{"GET", name + "/referrers/" + a.root.String(), 404, codeUnsupported},
		{"GET", name + "/blobs/uploads/", 404, codeUnsupported},
		{"GET", host + "/v2/_catalog", 404, codeNameUnknown},
		{"GET", host + "/v2/" + s.token + "/2/manifests/" + a.root.String(), 404, codeNameUnknown},
		{"GET", host + "/", 404, codeNameUnknown},
		{"PUT", endpointURL(ref, "manifests", a.root), 405, codeUnsupported},
		{"DELETE", endpointURL(ref, "manifests", a.root), 405, codeUnsupported},
		{"POST", name + "/blobs/uploads/", 405, codeUnsupported},
		{"PATCH", name + "/blobs/uploads/1", 405, codeUnsupported},
		{"DELETE", endpointURL(ref, "blobs", a.config), 405, codeUnsupported},
		{"OPTIONS", host + "/v2/", 405, codeUnsupported},
	}
	for _, tc := range tests {
		got := do(t, client, tc.method, tc.url, nil)
		code := errorCode(got.body)
		if tc.method == "HEAD" {
			code = tc.wantCode // no body
		}
		if got.status != tc.want || code != tc.wantCode {
			t.Errorf("%s(%q) = %d %s; want %d %s", tc.method, tc.url, got.status, code, tc.want, tc.wantCode)
		}
	}
	allowed := []string{"GET /v2/team/app-cache/manifests/" + a.root.String()}
	for d := range a.blobs {
		allowed = append(allowed, "GET /v2/team/app-cache/blobs/"+d.String())
	}
	for _, r := range tr.requests() {
		if !slices.Contains(allowed, r) {
			t.Errorf("the registry was asked %q; want only GETs of the verified cache", r)
		}
	}
}

// TestReachableOnlyUnderItsName: a blob is served only under the name of
// the verified cache that refers to it.
func TestReachableOnlyUnderItsName(t *testing.T) {
	tr := newTestRegistry(t)
	a := seedCacheManifest(t, tr, "team/a", 1<<10, 1)
	b := seedCacheManifest(t, tr, "team/b", 1<<10, 3)
	s := startServer(t)
	refA, refB := mustAdd(t, s, a), mustAdd(t, s, b)
	client := newClient(t)
	tests := []struct {
		url  string
		want int
	}{
		{endpointURL(refA, "blobs", a.config), 200},
		{endpointURL(refB, "blobs", b.config), 200},
		{endpointURL(refA, "blobs", b.config), 404},
		{endpointURL(refB, "blobs", a.layers[0]), 404},
		{endpointURL(refA, "manifests", b.root), 404},
	}
	for _, tc := range tests {
		if got := do(t, client, "GET", tc.url, nil); got.status != tc.want {
			t.Errorf("Get(%q) = %d; want %d", tc.url, got.status, tc.want)
		}
	}
}

// TestNotAnOpenProxy: the Server listens on loopback only, behind a
// 128-bit token of its own; a client without the token reads nothing, and
// the registry is not contacted.
func TestNotAnOpenProxy(t *testing.T) {
	tr := newTestRegistry(t)
	a := seedCacheManifest(t, tr, "team/app-cache", 1<<10, 1)
	s := startServer(t)
	mustAdd(t, s, a)
	tr.reset()

	host, _, err := net.SplitHostPort(s.Addr())
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		t.Errorf("Addr() = %q; want a loopback address", s.Addr())
	}
	if !regexp.MustCompile(`^[0-9a-f]{32,}$`).MatchString(s.token) {
		t.Errorf("token = %q; want at least 128 bits of lowercase hex", s.token)
	}
	other := New().token
	if other == s.token {
		t.Errorf("two Servers have the token %q; want their own each", other)
	}

	client := newClient(t) // another local client, without the token
	tok := s.token
	for _, prefix := range []string{
		"/v2/1",
		"/v2/" + other + "/1",
		"/v2/" + strings.ToUpper(tok) + "/1",
		"/v2/" + tok[:len(tok)-1] + "/1",
		"/v2/" + tok + "0/1",
		"/v2/x/" + tok + "/1",
		"/v2/" + tok + "/../" + tok + "/1",
		"/v2/" + tok + "//1",
		"/v2/team/app-cache",
	} {
		for _, path := range []string{prefix + "/manifests/" + a.root.String(), prefix + "/blobs/" + a.config.String()} {
			for _, method := range []string{"GET", "HEAD"} {
				if got := do(t, client, method, "http://"+s.Addr()+path, nil); got.status != http.StatusNotFound {
					t.Errorf("%s(%q) = %d; want 404", method, path, got.status)
				}
			}
		}
	}
	if n := tr.count(); n != 0 {
		t.Errorf("the registry was contacted %d times (%q); want never", n, tr.requests())
	}
}

// staticKeychain gives every registry the same credentials.
type staticKeychain struct{ user, pass string }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.pass}, nil
}

// TestHeadersAndCredentialsStayHere: the client's headers never go
// upstream, the registry's never come back, and the user's credentials
// appear in no response, log line or Problem.
func TestHeadersAndCredentialsStayHere(t *testing.T) {
	const user, pass = "builder", "s3cret-pass"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	tr := newTestRegistry(t)
	a := seedCacheManifest(t, tr, "team/app-cache", largeLayer, 1)
	broken := a.layers[0] // the registry fails on it, so that a Problem is logged
	tr.lie(func(*http.Request) bool { return true }, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Set-Cookie", "session="+pass)
		w.Header().Set("X-Upstream", "leak")
		w.Header().Set("Location", "http://169.254.169.254/")
		if path("blobs", broken)(r) {
			http.Error(w, "failed for "+r.Header.Get("Authorization"), http.StatusInternalServerError)
			return
		}
		tr.reg.ServeHTTP(w, r)
	})
	var logs testreg.Buffer
	s := startServer(t, WithKeychain(staticKeychain{user, pass}),
		WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	ref := mustAdd(t, s, a)
	tr.reset()

	client := newClient(t)
	clientHeaders := http.Header{
		"Authorization": {"Bearer client-secret"},
		"Cookie":        {"c=client-secret"},
		"X-Client":      {"client-secret"},
		"Range":         {"bytes=0-10"},
	}
	var allowed []string
	for _, k := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Docker-Distribution-API-Version", "Date"} {
		allowed = append(allowed, http.CanonicalHeaderKey(k))
	}
	var seen []string // what the client got
	for _, tc := range []struct {
		method, kind string
		d            v1.Hash
		want         int
	}{
		{"GET", "manifests", a.root, 200},
		{"GET", "blobs", a.config, 200},
		{"GET", "blobs", a.layers[1], 200},
		{"HEAD", "blobs", a.layers[1], 200},
		{"GET", "blobs", broken, 502},
	} {
		u := endpointURL(ref, tc.kind, tc.d)
		got := do(t, client, tc.method, u, clientHeaders)
		if got.status != tc.want {
			t.Errorf("%s(%q) = %d; want %d", tc.method, u, got.status, tc.want)
		}
		for k, v := range got.header {
			if !slices.Contains(allowed, http.CanonicalHeaderKey(k)) {
				t.Errorf("%s(%q) has header %s: %q; want only %q", tc.method, u, k, v, allowed)
			}
			seen = append(seen, v...)
		}
		seen = append(seen, string(got.body))
	}
	for _, h := range tr.requestHeaders() {
		for k, v := range h {
			if strings.Contains(strings.Join(v, " "), "client-secret") || k == "Cookie" || k == "X-Client" || k == "Range" {
				t.Errorf("the registry got the client's header %s: %q; want none of them", k, v)
			}
		}
	}
	for _, p := range s.Problems() {
		seen = append(seen, p.String())
	}
	if len(s.Problems()) != 1 {
		t.Errorf("Problems() = %v; want the one of the failing blob", s.Problems())
	}
	seen = append(seen, logs.String())
	for _, secret := range []string{pass, basic[len("Basic "):]} {
		for _, out := range seen {
			if strings.Contains(out, secret) {
				t.Errorf("the credentials %q reached the client or the log: %q", secret, out)
			}
		}
	}
	if strings.Contains(logs.String(), s.token) {
		t.Errorf("the log holds the Server's token: %s", logs.String())
	}
}
