package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// The registry ping cache.
//
// Before its first request to a registry, go-containerregistry pings it:
// GET <scheme>://<registry>/v2/, unauthenticated (transport.Ping, called by
// transport.NewWithContext). The answer decides how it talks to the
// registry: over https or http (for registries it may reach over http, such
// as 127.0.0.1:5000, it tries https first and falls back to http), and
// anonymously (200), with Basic auth, or with a Bearer token from the realm
// the 401's WWW-Authenticate challenge names. A new process pays that
// request every time, although the answer rarely changes.
//
// A PingSession sits under go-containerregistry's transports (it is the
// base transport given to Options), recognises the ping and answers it
// from a PingStore when a fresh outcome is remembered: a response with the
// remembered status and challenges and an empty body, or, for a scheme that
// failed or lost to the other one, an error at once. Otherwise the ping
// goes to the registry and its outcome is remembered. Only the status and
// the WWW-Authenticate challenges are stored: the ping carries no
// credentials, and tokens are never stored.
//
// The cache changes how a registry is talked to, never what it says: a
// remembered outcome that turns out wrong costs requests, not a verdict.
// A request that fails at the transport level on the remembered scheme, or
// a 401 from a registry remembered as anonymous, forgets the registry; and
// a caller that reached no positive result after a remembered ping asks
// PingSession.Recheck whether a real ping answers differently.

// PingTTL is how long a remembered ping outcome stands in for the real
// ping. A registry's answer to the ping changes only when it is
// reconfigured (anonymous access turned off, another token realm, TLS
// turned on), and a stale answer is caught by the requests that fail on it
// and by Recheck; the expiry bounds how long a registry that still works
// the old way is talked to that way. An hour keeps the warm verifications
// of a CI fleet, many builds an hour, at one request while a ping per
// registry per host and hour costs nothing.
const PingTTL = time.Hour

// pingClockSkew is how far in the future a remembered outcome may have
// been recorded (the clock set back since) and still be used.
const pingClockSkew = 5 * time.Minute

// maxChallengeBytes bounds the WWW-Authenticate values remembered of one
// ping; a registry that sends more is pinged every time. Real challenges
// are a few hundred bytes.
const maxChallengeBytes = 8 << 10

// UserAgent is the User-Agent trustcache's registry requests carry
// (go-containerregistry appends its own).
const UserAgent = "docker-trustcache"

// PingOutcome is what is remembered of a registry ping over one scheme.
type PingOutcome struct {
	// Status is 200 (anonymous access) or 401 (authenticate as
	// Challenges say); 0 means the scheme failed, or another scheme
	// answered first, and the other scheme's outcome is used.
	Status int `json:"status,omitempty"`
	// Challenges are the WWW-Authenticate values of a 401, in order.
	Challenges []string  `json:"challenges,omitempty"`
	RecordedAt time.Time `json:"recordedAt"`
	Expires    time.Time `json:"expires"`
}

// valid reports whether o is an outcome the cache could have recorded;
// anything else read from the store is ignored.
func (o *PingOutcome) valid() bool {
	switch o.Status {
	case 0, http.StatusOK:
		if len(o.Challenges) != 0 {
			return false
		}
	case http.StatusUnauthorized:
		n := 0
		for _, c := range o.Challenges {
			n += len(c)
		}
		if n > maxChallengeBytes {
			return false
		}
	default:
		return false
	}
	return o.Expires.After(o.RecordedAt) && o.Expires.Sub(o.RecordedAt) <= PingTTL
}

// fresh reports whether o may answer a ping at now: not expired, and not
// recorded in the future.
func (o *PingOutcome) fresh(now time.Time) bool {
	return now.Before(o.Expires) && !o.RecordedAt.After(now.Add(pingClockSkew))
}

// same reports whether a and b tell go-containerregistry the same thing.
func (o *PingOutcome) same(p PingOutcome) bool {
	return o.Status == p.Status && slices.Equal(o.Challenges, p.Challenges)
}

func sameOutcomes(a, b map[string]PingOutcome) bool {
	return maps.EqualFunc(a, b, func(x, y PingOutcome) bool { return x.same(y) })
}

// PingStore keeps ping outcomes between processes. Keys are a registry's
// host[:port], as in the ping URL, and a scheme, "https" or "http".
type PingStore interface {
	// LoadPings returns the outcomes stored for host, by scheme. It
	// leaves out entries it cannot read, and then also returns an error,
	// so that they are written over.
	LoadPings(ctx context.Context, host string) (map[string]PingOutcome, error)
	// SavePings replaces the outcomes stored for host; none forgets it.
	SavePings(ctx context.Context, host string, outcomes map[string]PingOutcome) error
}

// PingCache remembers registry pings in a PingStore. It is safe for
// concurrent use; its transports are PingSessions.
type PingCache struct {
	store PingStore
	now   func() time.Time

	mu    sync.Mutex
	hosts map[string]*hostPings
}

// NewPingCache returns a cache over store; now is its clock (nil:
// time.Now).
func NewPingCache(store PingStore, now func() time.Time) *PingCache {
	if now == nil {
		now = time.Now
	}
	return &PingCache{store: store, now: now, hosts: map[string]*hostPings{}}
}

// hostPings is what the process knows of one registry's ping.
type hostPings struct {
	mu     sync.Mutex
	loaded bool                   // the store was read
	known  map[string]PingOutcome // by scheme: what a ping is answered with
	// stored: known was read from the store and no ping of this process
	// has confirmed it yet.
	stored bool
	saved  map[string]PingOutcome // what the store holds, as far as we know
	dirty  bool                   // the store holds entries that did not read
	// tried: schemes pinged for real since known was last decided, not
	// (yet) successfully; they lose to the scheme that answers.
	tried map[string]bool

	recheck sync.Once
	changed bool // Recheck's answer
}

func (c *PingCache) host(host string, create bool) *hostPings {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hosts[host]
	if h == nil && create {
		h = &hostPings{tried: map[string]bool{}}
		c.hosts[host] = h
	}
	return h
}

// load reads host's outcomes from the store once. An error is a miss. The
// caller holds h.mu.
func (h *hostPings) load(ctx context.Context, c *PingCache, host string) {
	if h.loaded {
		return
	}
	h.loaded = true
	got, err := c.store.LoadPings(ctx, host)
	h.dirty = err != nil
	h.known, h.saved = map[string]PingOutcome{}, map[string]PingOutcome{}
	for scheme, o := range got {
		if (scheme != "https" && scheme != "http") || !o.valid() {
			h.dirty = true // never trusted; written over by the next outcome
			continue
		}
		h.known[scheme] = o
		h.saved[scheme] = o
	}
	h.stored = len(h.known) > 0
}

// decide makes out what pings of host are answered with, and saves it
// unless the store already holds the same and it is fresh. The caller
// holds h.mu.
func (h *hostPings) decide(ctx context.Context, c *PingCache, host string, out map[string]PingOutcome) {
	h.known, h.stored, h.tried = out, false, map[string]bool{}
	if !h.dirty && sameOutcomes(out, h.saved) && allFresh(h.saved, c.now()) {
		return
	}
	if err := c.store.SavePings(ctx, host, out); err != nil {
		return // the next process pings again
	}
	h.saved, h.dirty = maps.Clone(out), false
}

// forget drops what is known of host (the store too): its next ping goes
// to the registry. The caller holds h.mu.
func (h *hostPings) forget(ctx context.Context, c *PingCache, host string) {
	h.known, h.stored, h.tried = map[string]PingOutcome{}, false, map[string]bool{}
	if len(h.saved) == 0 && !h.dirty {
		return
	}
	// A canceled ctx must not keep a stale entry: the forgetting is done
	// with its values but without its cancellation.
	if err := c.store.SavePings(context.WithoutCancel(ctx), host, nil); err == nil {
		h.saved, h.dirty = map[string]PingOutcome{}, false
	}
}

func allFresh(m map[string]PingOutcome, now time.Time) bool {
	for _, o := range m {
		if !o.fresh(now) {
			return false
		}
	}
	return len(m) > 0
}

// hasAnswer reports whether a scheme other than scheme ("": any) has a
// fresh answer.
func (h *hostPings) hasAnswer(scheme string, now time.Time) bool {
	for s, o := range h.known {
		if s != scheme && o.Status != 0 && o.fresh(now) {
			return true
		}
	}
	return false
}

// Session returns a transport over base (nil: remote.DefaultTransport)
// that answers registry pings from the cache. Give it to Options as the
// base transport, one session per remote.Puller: it records the
// registries whose ping it answered from the store, for Recheck.
func (c *PingCache) Session(base http.RoundTripper) *PingSession {
	if base == nil {
		base = remote.DefaultTransport
	}
	return &PingSession{c: c, base: base, served: map[string]map[string]PingOutcome{}}
}

// PingSession is a transport of a PingCache.
type PingSession struct {
	c    *PingCache
	base http.RoundTripper

	mu     sync.Mutex
	served map[string]map[string]PingOutcome // host → the stored outcomes a ping was answered with
}

// ErrPingSkipped is the error a ping over a scheme gets at once when the
// cache remembers that the scheme failed, or lost, and the other one
// answered.
var ErrPingSkipped = errors.New("not pinged: this scheme failed recently and the other one answered (remembered ping)")

// isPing reports whether req is go-containerregistry's registry ping:
// an unauthenticated GET of /v2/, nothing else.
func isPing(req *http.Request) bool {
	return req.Method == http.MethodGet && req.URL.Path == "/v2/" && req.URL.RawQuery == "" &&
		(req.URL.Scheme == "https" || req.URL.Scheme == "http") && req.Header.Get("Authorization") == "" &&
		(req.Body == nil || req.Body == http.NoBody)
}

// RoundTrip implements http.RoundTripper.
func (s *PingSession) RoundTrip(req *http.Request) (*http.Response, error) {
	if isPing(req) {
		return s.ping(req)
	}
	resp, err := s.base.RoundTrip(req)
	s.observe(req, resp, err)
	return resp, err
}

func (s *PingSession) ping(req *http.Request) (*http.Response, error) {
	c, host, scheme := s.c, req.URL.Host, req.URL.Scheme
	ctx := req.Context()
	h := c.host(host, true)

	h.mu.Lock()
	h.load(ctx, c, host)
	now := c.now()
	if o, ok := h.known[scheme]; ok && o.fresh(now) {
		switch {
		case o.Status != 0:
			s.markServed(host, h)
			h.mu.Unlock()
			return cachedResponse(req, o), nil
		case mayRace(host) && h.hasAnswer(scheme, now):
			// go-containerregistry pings https, then http: failing
			// https at once lets it go on to the remembered http.
			s.markServed(host, h)
			h.mu.Unlock()
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), ErrPingSkipped)
		}
	}
	h.tried[scheme] = true
	h.mu.Unlock()

	resp, err := s.base.RoundTrip(req)
	if err != nil || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized) {
		// A failure is remembered only as the loser of another scheme
		// that answers (h.tried); other statuses are not remembered.
		return resp, err
	}
	o := PingOutcome{Status: resp.StatusCode, RecordedAt: now, Expires: now.Add(PingTTL)}
	if resp.StatusCode == http.StatusUnauthorized {
		o.Challenges = slices.Clone(resp.Header.Values("WWW-Authenticate"))
	}
	if !o.valid() {
		return resp, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stored && h.hasAnswer("", now) {
		// A ping of this process answered first: over another scheme,
		// go-containerregistry uses that one, and so will the next
		// process; over this one, it was decided already.
		return resp, err
	}
	out := map[string]PingOutcome{scheme: o}
	for t := range h.tried {
		if t != scheme {
			out[t] = PingOutcome{RecordedAt: now, Expires: now.Add(PingTTL)}
		}
	}
	h.decide(ctx, c, host, out)
	return resp, err
}

// markServed records that the ping of host was answered from the store.
// The caller holds h.mu.
func (s *PingSession) markServed(host string, h *hostPings) {
	if !h.stored {
		return // confirmed by a ping of this process
	}
	s.mu.Lock()
	if s.served[host] == nil {
		s.served[host] = maps.Clone(h.known)
	}
	s.mu.Unlock()
}

// observe forgets a registry whose remembered outcome a request has just
// contradicted: a transport failure on the remembered scheme, or a 401
// from a registry remembered as anonymous. (A 401 from a registry
// remembered as requiring auth is the bearer token's business: it fetches
// another one.)
func (s *PingSession) observe(req *http.Request, resp *http.Response, err error) {
	if err != nil && errors.Is(err, context.Canceled) {
		return
	}
	h := s.c.host(req.URL.Host, false)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	o, ok := h.known[req.URL.Scheme]
	if !ok || o.Status == 0 {
		return
	}
	if err != nil || (resp.StatusCode == http.StatusUnauthorized && o.Status == http.StatusOK) {
		h.forget(req.Context(), s.c, req.URL.Host)
	}
}

// Served reports whether this session answered the ping of host (a
// registry's host[:port]) from the store.
func (s *PingSession) Served(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served[host] != nil
}

// Recheck pings reg for real, once per process, and reports whether its
// answer differs from the stored one this session answered with: then the
// registry has changed, the new answer is stored, and a new session (a new
// remote.Puller) talks to it the new way. Call it when a result that
// depends on reg is not positive and Served(reg) is true. A ping that fails
// forgets reg (the next process pings for real) and reports no change: the
// result stands. timeout bounds the ping as WithRequestTimeout does (0:
// DefaultTimeout).
func (s *PingSession) Recheck(ctx context.Context, reg name.Registry, timeout time.Duration) bool {
	host := reg.RegistryStr()
	s.mu.Lock()
	was := s.served[host]
	s.mu.Unlock()
	h := s.c.host(host, false)
	if was == nil || h == nil {
		return false
	}
	h.recheck.Do(func() {
		h.mu.Lock()
		h.known, h.stored, h.tried = map[string]PingOutcome{}, false, map[string]bool{}
		h.mu.Unlock()
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		rt := transport.NewUserAgent(Transport(s, MaxResponseBody, timeout), UserAgent)
		_, err := transport.Ping(ctx, reg, rt)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil {
			h.forget(ctx, s.c, host)
			return
		}
		h.changed = !sameOutcomes(h.known, was)
	})
	return h.changed
}

// cachedResponse is the response to req that o remembers.
func cachedResponse(req *http.Request, o PingOutcome) *http.Response {
	hdr := http.Header{}
	for _, c := range o.Challenges {
		hdr.Add("WWW-Authenticate", c)
	}
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", o.Status, http.StatusText(o.Status)),
		StatusCode: o.Status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Body:       http.NoBody,
		Request:    req,
	}
}

// mayRace reports whether go-containerregistry pings host over both
// https and http (its rule for local and private addresses): only there
// may a remembered failure of one scheme skip it.
func mayRace(host string) bool {
	reg, err := name.NewRegistry(host)
	return err == nil && reg.Scheme() == "http"
}
