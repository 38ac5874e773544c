package endpoint

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
)

// ErrClosed is returned by Start and Add on a closed Server.
var ErrClosed = errors.New("verified content endpoint closed")

// ErrNotStarted is returned by Add before Start.
var ErrNotStarted = errors.New("verified content endpoint not started")

// Server is the verified content endpoint of one build. It is safe for
// concurrent use.
type Server struct {
	keychain authn.Keychain
	base     http.RoundTripper
	timeout  time.Duration
	log      *slog.Logger
	own      *http.Transport // the default base transport, owned: Close closes its idle connections
	rt       http.RoundTripper
	token    string // the first component of every name Add serves; never logged
	// requireCredential: every request must carry authz (RequireCredential).
	requireCredential bool
	password          string    // the credential's password; never logged
	authz             [32]byte  // SHA-256 of the Authorization header value it must send
	buffers           sync.Pool // *[]byte of streamBuffer+HoldBack bytes

	mu        sync.Mutex
	started   bool
	closed    bool
	addr      string // host:port listened on
	srv       *http.Server
	cancel    context.CancelFunc   // cancels every request's context
	stopWatch func() bool          // stops closing on Start's ctx
	served    chan struct{}        // closed when Serve returns
	active    sync.WaitGroup       // requests being answered
	root      *Scope               // what Add serves, under token
	scopes    map[[32]byte]*Scope  // open scopes (root too), by the SHA-256 of their token
	upstreams map[string]*upstream // by repository, shared by every scope
	problems  []Problem
	seen      map[Problem]bool
}

// New returns a stopped Server. Defaults: see the With… options.
func New(opts ...Option) *Server {
	var tok [16]byte // 128 bits
	rand.Read(tok[:])
	s := &Server{
		keychain:  authn.DefaultKeychain,
		timeout:   registry.DefaultTimeout,
		token:     hex.EncodeToString(tok[:]),
		scopes:    map[[32]byte]*Scope{},
		upstreams: map[string]*upstream{},
		seen:      map[Problem]bool{},
	}
	s.root = s.newScope(s.token)
	for _, o := range opts {
		o(s)
	}
	if s.requireCredential {
		var pw [32]byte // 256 bits
		rand.Read(pw[:])
		s.password = hex.EncodeToString(pw[:])
		s.authz = sha256.Sum256([]byte("Basic " + base64.StdEncoding.EncodeToString([]byte(CredentialUser+":"+s.password))))
	}
	if s.base == nil {
		def, ok := remote.DefaultTransport.(*http.Transport)
		if !ok {
			def = http.DefaultTransport.(*http.Transport)
		}
		s.own = def.Clone()
		s.own.ReadBufferSize, s.own.WriteBufferSize = 64<<10, 64<<10 // fewer reads of a large layer
		s.base = s.own
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.timeout <= 0 {
		s.timeout = registry.DefaultTimeout
	}
	s.rt = newRoundTripper(s.base, s.timeout)
	s.buffers.New = func() any {
		b := make([]byte, streamBuffer+HoldBack)
		return &b
	}
	return s
}

// Start listens on an ephemeral port of 127.0.0.1 and serves until Close
// is called or ctx is done.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return errors.New("verified content endpoint already started")
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the verified content endpoint: %w", err)
	}
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	s.started, s.addr, s.cancel = true, l.Addr().String(), cancel
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		s.srv.Serve(l)
	}()
	s.stopWatch = context.AfterFunc(ctx, func() { s.Close() })
	return nil
}

// CredentialUser is the user name of the credential RequireCredential
// makes the Server require.
const CredentialUser = "trustcache"

// Credential returns the user name and password every request must carry
// (HTTP Basic), or "", "" when the Server was made without
// RequireCredential. Hand it only to what may read the cache: never put it
// on a command line.
func (s *Server) Credential() (user, password string) {
	if !s.requireCredential {
		return "", ""
	}
	return CredentialUser, s.password
}

// authorized reports whether r may be answered: it carries the credential,
// or none is required. The header is compared by its hash, in constant
// time.
func (s *Server) authorized(r *http.Request) bool {
	if !s.requireCredential {
		return true
	}
	got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	return subtle.ConstantTimeCompare(got[:], s.authz[:]) == 1
}

// Addr is the host:port the Server listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Add registers a cache whose manifest digest trustcache verified, and
// returns the reference BuildKit should import instead:
// 127.0.0.1:PORT/<token>/<n>@<digest>. Adding the same repo and digest
// again returns the same reference. Only sha256 digests are served. What
// Add registers is served until Close; see NewScope for names that end
// sooner.
func (s *Server) Add(repo name.Repository, digest v1.Hash) (string, error) {
	return s.root.Add(repo, digest)
}

// Problems returns what the Server refused to pass on and why, each
// problem once, in the order they happened.
func (s *Server) Problems() []Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Problem(nil), s.problems...)
}

// Close stops the Server: it closes the listener and every connection,
// cancels the upstream requests in flight and waits for their handlers to
// return. Closing a closed Server does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	s.stopWatch()
	s.cancel()
	err := s.srv.Close()
	<-s.served
	s.active.Wait()
	if s.own != nil {
		s.own.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("closing the verified content endpoint: %w", err)
	}
	return nil
}

// enter counts a request in, unless the Server is closed.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.active.Add(1)
	return true
}

// source returns the cache rt names in sc, or nil.
func (s *Server) source(sc *Scope, rt route) *source {
	if sc == nil || rt.kind == routeNone {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return sc.sources[rt.name]
}

// record adds the Problem err is for content d of src, unless it was
// recorded already, and returns it.
func (s *Server) record(src *source, d v1.Hash, err error) Problem {
	r := classify(err)
	p := Problem{Cache: src.cache, Digest: d, Kind: r.kind, Reason: r.reason}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.seen[p] {
		s.seen[p] = true
		s.problems = append(s.problems, p)
	}
	return p
}
