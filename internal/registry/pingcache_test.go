package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// memStore is a PingStore in memory.
type memStore struct {
	mu      sync.Mutex
	m       map[string]map[string]PingOutcome
	loadErr error // returned (once) with the next load
	saves   int
}

func newMemStore() *memStore { return &memStore{m: map[string]map[string]PingOutcome{}} }

func (s *memStore) LoadPings(_ context.Context, host string) (map[string]PingOutcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.loadErr
	s.loadErr = nil
	out := map[string]PingOutcome{}
	for k, v := range s.m[host] {
		out[k] = v
	}
	return out, err
}

func (s *memStore) SavePings(_ context.Context, host string, o map[string]PingOutcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if len(o) == 0 {
		delete(s.m, host)
		return nil
	}
	s.m[host] = map[string]PingOutcome{}
	for k, v := range o {
		s.m[host][k] = v
	}
	return nil
}

func (s *memStore) get(host string) map[string]PingOutcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[host]
}

// statuses summarises stored outcomes as scheme → status.
func statuses(m map[string]PingOutcome) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = v.Status
	}
	return out
}

// netLog is a base transport that records every request that reaches the
// network, as "SCHEME METHOD PATH".
type netLog struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (n *netLog) RoundTrip(req *http.Request) (*http.Response, error) {
	n.mu.Lock()
	n.reqs = append(n.reqs, req.URL.Scheme+" "+req.Method+" "+req.URL.Path)
	n.mu.Unlock()
	return n.base.RoundTrip(req)
}

func (n *netLog) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.reqs
	n.reqs = nil
	return r
}

func (n *netLog) pings() int {
	c := 0
	for _, r := range n.take() {
		if strings.HasSuffix(r, " GET /v2/") {
			c++
		}
	}
	return c
}

// testReg is testreg's in-memory registry (over TLS or not) that can be
// switched to require a Bearer token, handed out anonymously by its /token
// endpoint.
type testReg struct {
	*testreg.Registry
	srv    *httptest.Server
	host   string
	bearer atomic.Bool
	repo   name.Repository
}

const testToken = "t0ken"

func newTestReg(t *testing.T, tls bool) *testReg {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // anonymous: no credentials of the machine
	tr := &testReg{Registry: testreg.New(t, testreg.TLS(tls))}
	tr.srv, tr.host = tr.Server, tr.Host
	auth := testreg.Bearer(testToken)
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		return (r.URL.Path == "/token" || tr.bearer.Load()) && auth(w, r)
	})
	var err error
	if tr.repo, err = name.NewRepository(tr.host + "/team/app"); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tr.repo.Tag("main"), img, remote.WithTransport(tr.srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	tr.Reset()
	return tr
}

// requests is how many requests the registry saw since Reset.
func (tr *testReg) requests() int { return len(tr.Requests()) }

// head is one new process's HEAD of the tag through a session of c: a
// new puller, so a new ping.
func head(t *testing.T, c *PingCache, base http.RoundTripper, ref name.Reference) (*PingSession, error) {
	t.Helper()
	s := c.Session(base)
	_, err := remote.Head(ref, Options(context.Background(), s, 5*time.Second)...)
	return s, err
}

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func clock(at *time.Time) func() time.Time { return func() time.Time { return *at } }

// A plain-http loopback registry: go-containerregistry pings https, then
// http. The first process pings both and remembers http (200) and that
// https failed; the next makes no ping at all, not even the https one.
func TestPingCacheLoopbackHTTP(t *testing.T) {
	reg := newTestReg(t, false)
	store := newMemStore()
	now := t0
	net := &netLog{base: remote.DefaultTransport}
	ref := reg.repo.Tag("main")

	if _, err := head(t, NewPingCache(store, clock(&now)), net, ref); err != nil {
		t.Fatal(err)
	}
	got := net.take()
	if diff := cmp.Diff([]string{"https GET /v2/", "http GET /v2/", "http HEAD /v2/team/app/manifests/main"}, got); diff != "" {
		t.Errorf("cold requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"http": 200, "https": 0}, statuses(store.get(reg.host))); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	if o := store.get(reg.host)["http"]; !o.RecordedAt.Equal(now) || !o.Expires.Equal(now.Add(PingTTL)) {
		t.Errorf("stored http outcome %v–%v; want %v + PingTTL", o.RecordedAt, o.Expires, now)
	}

	now = now.Add(PingTTL - time.Second)
	reg.Reset()
	s, err := head(t, NewPingCache(store, clock(&now)), net, ref)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"http HEAD /v2/team/app/manifests/main"}, net.take()); diff != "" {
		t.Errorf("warm requests on the network (-want +got):\n%s", diff)
	}
	if n := reg.requests(); n != 1 {
		t.Errorf("warm: the registry served %d requests; want 1", n)
	}
	if !s.Served(reg.host) {
		t.Errorf("Served(%s) = false after a remembered ping", reg.host)
	}

	// At expiry: pinged again, and remembered again.
	now = now.Add(time.Second)
	s, err = head(t, NewPingCache(store, clock(&now)), net, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := net.take(); len(got) != 3 {
		t.Errorf("requests at expiry: %v; want the two pings and the HEAD", got)
	}
	if s.Served(reg.host) {
		t.Errorf("Served(%s) = true after a real ping", reg.host)
	}
	if o := store.get(reg.host)["http"]; !o.RecordedAt.Equal(now) {
		t.Errorf("the ping at expiry was not remembered: recorded %v", o.RecordedAt)
	}
}

// A TLS loopback registry: https answers first, and is the one remembered.
func TestPingCacheLoopbackHTTPS(t *testing.T) {
	reg := newTestReg(t, true)
	store := newMemStore()
	now := t0
	net := &netLog{base: reg.srv.Client().Transport}
	ref := reg.repo.Tag("main")
	for i, want := range []int{1, 0} {
		if _, err := head(t, NewPingCache(store, clock(&now)), net, ref); err != nil {
			t.Fatal(err)
		}
		if n := net.pings(); n != want {
			t.Errorf("run %d: %d pings; want %d", i, n, want)
		}
	}
	if diff := cmp.Diff(map[string]int{"https": 200}, statuses(store.get(reg.host))); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}

// One process, several repositories of one registry: one ping.
func TestPingCacheOneProcess(t *testing.T) {
	reg := newTestReg(t, false)
	now := t0
	c := NewPingCache(newMemStore(), clock(&now))
	net := &netLog{base: remote.DefaultTransport}
	for _, repo := range []string{"team/app", "team/other"} {
		// A new puller per repository, as go-containerregistry makes one
		// authenticated transport per repository.
		head(t, c, net, reg.repo.Registry.Repo(repo).Tag("main"))
	}
	if n := net.pings(); n != 2 {
		t.Errorf("%d ping requests; want 2 (one ping: https, then http)", n)
	}
}

// The registry starts requiring a Bearer token: the remembered 200 makes
// the HEAD fail with 401, which forgets the registry; Recheck pings for
// real, sees the challenge and reports the change; a new session fetches
// a token and succeeds. The next process uses the remembered challenge.
func TestPingCacheAnonymousToBearer(t *testing.T) {
	reg := newTestReg(t, false)
	store := newMemStore()
	now := t0
	ref := reg.repo.Tag("main")
	if _, err := head(t, NewPingCache(store, clock(&now)), nil, ref); err != nil {
		t.Fatal(err)
	}
	reg.bearer.Store(true)

	c := NewPingCache(store, clock(&now))
	s, err := head(t, c, nil, ref)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("HEAD with the stale ping = %v; want a 401", err)
	}
	if got := store.get(reg.host); got != nil {
		t.Errorf("after the 401 the store holds %v; want the registry forgotten", statuses(got))
	}
	if !s.Served(reg.host) || !s.Recheck(context.Background(), ref.Registry, 0) {
		t.Fatalf("Served, Recheck = %v, false; want true, true (the registry changed)", s.Served(reg.host))
	}
	if diff := cmp.Diff(map[string]int{"http": 401, "https": 0}, statuses(store.get(reg.host))); diff != "" {
		t.Errorf("stored after Recheck (-want +got):\n%s", diff)
	}
	if ch := store.get(reg.host)["http"].Challenges; len(ch) != 1 || !strings.HasPrefix(ch[0], `Bearer realm=`) {
		t.Errorf("stored challenges %q; want the Bearer challenge", ch)
	}
	reg.Reset()
	if _, err := head(t, c, nil, ref); err != nil {
		t.Fatalf("HEAD with a new session after Recheck: %v", err)
	}
	if n := reg.requests(); n != 2 {
		t.Errorf("HEAD after Recheck: %d requests; want 2 (token, HEAD: the ping is known)", n)
	}
	// Recheck is once per process.
	if s.Recheck(context.Background(), ref.Registry, 0) != true || reg.requests() != 2 {
		t.Errorf("a second Recheck pinged again or changed its answer")
	}

	// The next process: token and HEAD, no ping.
	reg.Reset()
	if _, err := head(t, NewPingCache(store, clock(&now)), nil, ref); err != nil {
		t.Fatal(err)
	}
	if n := reg.requests(); n != 2 {
		t.Errorf("next process: %d requests; want 2 (token, HEAD)", n)
	}
	for _, o := range store.get(reg.host) {
		for _, c := range o.Challenges {
			if strings.Contains(c, testToken) {
				t.Errorf("a token was stored: %q", c)
			}
		}
	}
}

// Recheck of a registry that did not change: no change reported, nothing
// written; and it does nothing for a registry the session pinged for real.
func TestPingCacheRecheckUnchanged(t *testing.T) {
	reg := newTestReg(t, false)
	store := newMemStore()
	now := t0
	ref := reg.repo.Tag("main")
	s, _ := head(t, NewPingCache(store, clock(&now)), nil, ref)
	if s.Served(reg.host) || s.Recheck(context.Background(), ref.Registry, 0) {
		t.Errorf("Served or Recheck true for a registry pinged for real")
	}
	saves := store.saves
	s, _ = head(t, NewPingCache(store, clock(&now)), nil, ref)
	reg.Reset()
	if !s.Served(reg.host) || s.Recheck(context.Background(), ref.Registry, 0) {
		t.Errorf("Served, Recheck = %v, true; want true, false", s.Served(reg.host))
	}
	if n := reg.requests(); n != 1 {
		t.Errorf("Recheck made %d requests; want 1 (the http ping)", n)
	}
	if store.saves != saves {
		t.Errorf("Recheck of an unchanged registry wrote the store")
	}
}

// A failure at the transport level on the remembered scheme forgets the
// registry.
func TestPingCacheTransportFailure(t *testing.T) {
	reg := newTestReg(t, false)
	store := newMemStore()
	now := t0
	ref := reg.repo.Tag("main")
	head(t, NewPingCache(store, clock(&now)), nil, ref)
	reg.srv.Close()
	if _, err := head(t, NewPingCache(store, clock(&now)), nil, ref); err == nil {
		t.Fatal("HEAD of a closed registry succeeded")
	}
	if got := store.get(reg.host); got != nil {
		t.Errorf("after a connection failure the store holds %v; want the registry forgotten", statuses(got))
	}
}

// fakeNet answers requests from a function, counting them.
type fakeNet struct {
	n  atomic.Int64
	fn func(req *http.Request) (*http.Response, error)
}

func (f *fakeNet) RoundTrip(req *http.Request) (*http.Response, error) {
	f.n.Add(1)
	return f.fn(req)
}

func response(req *http.Request, code int, hdr ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Add(hdr[i], hdr[i+1])
	}
	return &http.Response{StatusCode: code, Status: http.StatusText(code), Header: h, Body: io.NopCloser(strings.NewReader("{}")), Request: req}
}

// Only go-containerregistry's ping is answered from the cache.
func TestPingCacheOnlyThePing(t *testing.T) {
	store := newMemStore()
	now := t0
	store.m["registry.example"] = map[string]PingOutcome{"https": {Status: 200, RecordedAt: now, Expires: now.Add(PingTTL)}}
	f := &fakeNet{fn: func(req *http.Request) (*http.Response, error) { return response(req, 200), nil }}
	s := NewPingCache(store, clock(&now)).Session(f)
	for _, c := range []struct {
		method, url string
		auth        bool
		cached      bool
	}{
		{"GET", "https://registry.example/v2/", false, true},
		{"GET", "https://registry.example/v2/", true, false},
		{"HEAD", "https://registry.example/v2/", false, false},
		{"GET", "https://registry.example/v2/?x=1", false, false},
		{"GET", "https://registry.example/v2", false, false},
		{"GET", "https://registry.example/v2/team/app/manifests/main", false, false},
		{"GET", "https://other.example/v2/", false, false},
		{"GET", "http://registry.example/v2/", false, false},
	} {
		req, _ := http.NewRequest(c.method, c.url, nil)
		if c.auth {
			req.Header.Set("Authorization", "Basic eDp5")
		}
		before := f.n.Load()
		resp, err := s.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.url, err)
		}
		resp.Body.Close()
		if cached := f.n.Load() == before; cached != c.cached {
			t.Errorf("%s %s (auth %v): answered from the cache %v; want %v", c.method, c.url, c.auth, cached, c.cached)
		}
	}
}

// The synthetic answer carries the remembered status and challenges, and
// go-containerregistry reads it as it reads the registry's.
func TestPingCacheChallenge(t *testing.T) {
	store := newMemStore()
	now := t0
	challenge := `Bearer realm="https://auth.registry.example/token",service="registry.example"`
	f := &fakeNet{fn: func(req *http.Request) (*http.Response, error) {
		if req.URL.Path == "/v2/" {
			return response(req, 401, "WWW-Authenticate", challenge, "WWW-Authenticate", `Basic realm="x"`, "Set-Cookie", "session=secret"), nil
		}
		return nil, errors.New("unexpected " + req.URL.String())
	}}
	reg, _ := name.NewRegistry("registry.example")
	for i := range 2 {
		c := NewPingCache(store, clock(&now))
		pr, err := transportPing(c.Session(f), reg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(pr.Scheme, "bearer") || pr.Parameters["realm"] != "https://auth.registry.example/token" || pr.Insecure {
			t.Errorf("run %d: challenge %+v", i, pr)
		}
	}
	if n := f.n.Load(); n != 1 {
		t.Errorf("%d pings; want 1", n)
	}
	got := store.get("registry.example")["https"]
	if diff := cmp.Diff([]string{challenge, `Basic realm="x"`}, got.Challenges); diff != "" || got.Status != 401 {
		t.Errorf("stored %d %q; want 401 and only the challenges (-want +got):\n%s", got.Status, got.Challenges, diff)
	}
}

// What the store holds is never trusted: an entry that did not read, or
// that the cache could not have written, is a miss, and is written over.
func TestPingCacheCorruptEntry(t *testing.T) {
	now := t0
	f := &fakeNet{fn: func(req *http.Request) (*http.Response, error) { return response(req, 200), nil }}
	reg, _ := name.NewRegistry("registry.example")
	good := PingOutcome{Status: 200, RecordedAt: now, Expires: now.Add(PingTTL)}
	for _, c := range []struct {
		name    string
		entry   map[string]PingOutcome
		loadErr error
	}{
		{"unreadable entry (reported by the store)", nil, errors.New("ping https://registry.example: checksum mismatch")},
		{"unknown status", map[string]PingOutcome{"https": {Status: 302, RecordedAt: now, Expires: now.Add(PingTTL)}}, nil},
		{"challenges on a 200", map[string]PingOutcome{"https": {Status: 200, Challenges: []string{"Basic"}, RecordedAt: now, Expires: now.Add(PingTTL)}}, nil},
		{"expiry beyond PingTTL", map[string]PingOutcome{"https": {Status: 200, RecordedAt: now, Expires: now.Add(PingTTL + time.Second)}}, nil},
		{"expiry before the record", map[string]PingOutcome{"https": {Status: 200, RecordedAt: now, Expires: now.Add(-time.Second)}}, nil},
		{"oversized challenges", map[string]PingOutcome{"https": {Status: 401, Challenges: []string{strings.Repeat("x", maxChallengeBytes+1)}, RecordedAt: now, Expires: now.Add(PingTTL)}}, nil},
		{"unknown scheme", map[string]PingOutcome{"ftp": good}, nil},
		{"recorded in the future", map[string]PingOutcome{"https": {Status: 200, RecordedAt: now.Add(time.Hour), Expires: now.Add(time.Hour + PingTTL)}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := newMemStore()
			if c.entry != nil {
				store.m["registry.example"] = c.entry
			}
			store.loadErr = c.loadErr
			before := f.n.Load()
			if _, err := transportPing(NewPingCache(store, clock(&now)).Session(f), reg); err != nil {
				t.Fatal(err)
			}
			if f.n.Load() != before+1 {
				t.Errorf("the entry answered the ping; want a real ping")
			}
			if diff := cmp.Diff(map[string]PingOutcome{"https": good}, store.get("registry.example")); diff != "" {
				t.Errorf("stored after the ping (-want +got):\n%s", diff)
			}
		})
	}
}

// A remembered failure skips a scheme only where go-containerregistry
// tries two: for a registry it reaches over https only, a stored https
// failure (which the cache itself never writes alone) is not believed.
func TestPingCacheFailureOnlyWhereRacing(t *testing.T) {
	now := t0
	for _, host := range []string{"registry.example", "127.0.0.1:5000", "localhost:5000", "10.1.2.3:5000"} {
		if got, want := mayRace(host), host != "registry.example"; got != want {
			t.Errorf("mayRace(%q) = %v; want %v", host, got, want)
		}
	}
	store := newMemStore()
	store.m["registry.example"] = map[string]PingOutcome{
		"https": {RecordedAt: now, Expires: now.Add(PingTTL)},
		"http":  {Status: 200, RecordedAt: now, Expires: now.Add(PingTTL)},
	}
	f := &fakeNet{fn: func(req *http.Request) (*http.Response, error) { return response(req, 200), nil }}
	reg, _ := name.NewRegistry("registry.example")
	if _, err := transportPing(NewPingCache(store, clock(&now)).Session(f), reg); err != nil {
		t.Fatalf("ping of an https-only registry with a remembered https failure: %v", err)
	}
	if f.n.Load() != 1 {
		t.Errorf("%d requests; want the real https ping", f.n.Load())
	}
}

// transportPing is go-containerregistry's ping through s, as its
// transports send it.
func transportPing(s *PingSession, reg name.Registry) (*transport.Challenge, error) {
	return transport.Ping(context.Background(), reg, Transport(s, MaxResponseBody, 5*time.Second))
}

// Concurrent new pullers of one process share one real ping.
func TestPingCacheConcurrent(t *testing.T) {
	reg := newTestReg(t, false)
	store := newMemStore()
	now := t0
	c := NewPingCache(store, clock(&now))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := head(t, c, nil, reg.repo.Registry.Repo(fmt.Sprintf("team/r%d", i)).Tag("main")); err == nil {
				t.Errorf("HEAD of a missing tag succeeded")
			}
		}()
	}
	wg.Wait()
	if diff := cmp.Diff(map[string]int{"http": 200, "https": 0}, statuses(store.get(reg.host))); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}
