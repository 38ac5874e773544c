package endpoint

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Option configures a Server.
//
// The Server makes its own registry requests, over go-containerregistry's
// authenticating transport (it must see and hash every byte, and stream
// large blobs under a per-read rather than a whole-body timeout), so it
// takes a keychain and a transport rather than remote.Options.
type Option func(*Server)

// WithKeychain sets where the credentials for upstream registries come
// from. Default: authn.DefaultKeychain (the docker config and its
// credential helpers).
func WithKeychain(k authn.Keychain) Option {
	return func(s *Server) { s.keychain = k }
}

// WithTransport sets the HTTP transport upstream requests go through
// (under go-containerregistry's auth, retry and user-agent transports, and
// this package's body and time bounds). Default: a clone of
// remote.DefaultTransport owned by the Server, whose idle connections
// Close closes.
func WithTransport(t http.RoundTripper) Option {
	return func(s *Server) { s.base = t }
}

// WithRequestTimeout bounds each upstream request. A manifest or small
// blob request must complete, body included, within d; a streamed blob
// must answer within d and then never go d without sending a byte (a
// whole-body bound would fail large layers on slow links). Default:
// registry.DefaultTimeout (30s).
func WithRequestTimeout(d time.Duration) Option {
	return func(s *Server) { s.timeout = d }
}

// WithLogger sets where the Server logs its decisions (served, refused,
// aborted), with the keys cache, digest, action and reason. Credentials,
// tokens and the Server's name token are never logged. Default: no
// logging.
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) { s.log = l }
}
