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

// RequireCredential makes the Server answer every request that does not
// carry its credential — HTTP Basic, user CredentialUser and a random
// 256-bit password of this Server (Credential) — with 401 and a Basic
// challenge, before it looks at the path. A registry client (BuildKit)
// answers the challenge with the credentials its session gives for the
// endpoint's host:port.
//
// A build's endpoint needs it: its references (127.0.0.1:PORT/TOKEN/N@…)
// travel on the docker-buildx command line, which every local user can
// read in /proc/PID/cmdline, and the endpoint fetches with the building
// user's registry credentials; the credential travels only in buildx's
// environment (DOCKER_AUTH_CONFIG), which only that user (and root) can
// read. Default: not required — the gateway's references travel only in
// its gRPC requests to buildkitd, whose session could not answer the
// challenge.
func RequireCredential() Option {
	return func(s *Server) { s.requireCredential = true }
}
