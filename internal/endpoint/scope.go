package endpoint

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Scope is a set of caches a Server serves under a random 128-bit name
// token of the set's own: one build's, when one Server serves many builds
// (the gateway of "docker trustcache serve"). A reference Add returns
// answers only until Close: then every name of the scope is unknown (404),
// and its verified manifests are let go. Scopes share the Server's
// listener, upstream connections and registry tokens, so one costs a few
// map entries. A Scope is safe for concurrent use.
type Scope struct {
	s     *Server
	token string
	key   [32]byte // SHA-256 of token: the scopes map's key

	// Guarded by s.mu.
	sources map[string]*source // by name component <n>
	refs    map[string]string  // REPO@sha256:… → the reference Add returned
	closed  bool
}

// newScope returns a scope with token, registered with s.
func (s *Server) newScope(token string) *Scope {
	sc := &Scope{s: s, token: token, key: sha256.Sum256([]byte(token)),
		sources: map[string]*source{}, refs: map[string]string{}}
	s.mu.Lock()
	s.scopes[sc.key] = sc
	s.mu.Unlock()
	return sc
}

// NewScope opens a Scope with a fresh token. It fails on a Server closed or
// not started.
func (s *Server) NewScope() (*Scope, error) {
	s.mu.Lock()
	closed, started := s.closed, s.started
	s.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case !started:
		return nil, ErrNotStarted
	}
	var tok [16]byte // 128 bits
	rand.Read(tok[:])
	return s.newScope(hex.EncodeToString(tok[:])), nil
}

// Add registers a cache whose manifest digest trustcache verified in the
// scope, and returns the reference BuildKit should import instead:
// 127.0.0.1:PORT/<token>/<n>@<digest>, served until the scope is closed.
// Adding the same repo and digest again returns the same reference. Only
// sha256 digests are served.
func (sc *Scope) Add(repo name.Repository, digest v1.Hash) (string, error) {
	if _, ok := parseDigest(digest.String()); !ok {
		return "", fmt.Errorf("adding %s@%s: only sha256 digests are served", repo, digest)
	}
	cache := repo.Name() + "@" + digest.String()
	s := sc.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed || sc.closed:
		return "", fmt.Errorf("adding %s: %w", cache, ErrClosed)
	case !s.started:
		return "", fmt.Errorf("adding %s: %w", cache, ErrNotStarted)
	}
	if ref, ok := sc.refs[cache]; ok {
		return ref, nil
	}
	u := s.upstreams[repo.Name()]
	if u == nil {
		u = &upstream{repo: repo, keychain: s.keychain, rt: s.rt}
		s.upstreams[repo.Name()] = u
	}
	n := strconv.Itoa(len(sc.sources) + 1)
	sc.sources[n] = newSource(cache, digest, u)
	ref := fmt.Sprintf("%s/%s/%s@%s", s.addr, sc.token, n, digest)
	sc.refs[cache] = ref
	return ref, nil
}

// Close ends the scope: from now on its names answer 404 and Add fails.
// Requests already being answered finish. Closing a closed scope does
// nothing.
func (sc *Scope) Close() {
	s := sc.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc.closed {
		return
	}
	sc.closed = true
	if s.scopes[sc.key] == sc {
		delete(s.scopes, sc.key)
	}
	sc.sources, sc.refs = map[string]*source{}, map[string]string{}
}

// scopeOf returns the open scope whose token is the first name component
// of path, or nil. Tokens are looked up by their hash, so the time taken
// tells nothing about how much of a token a guess got right.
func (s *Server) scopeOf(path string) *Scope {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return nil
	}
	tok, _, _ := strings.Cut(rest, "/")
	if tok == "" {
		return nil
	}
	key := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scopes[key]
}
