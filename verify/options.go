package verify

import (
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The Verifier's options, each with its default. WithLedger is in
// ledger.go.

// Option configures a Verifier.
type Option func(*Verifier)

// WithRemoteOptions adds go-containerregistry remote options to every
// registry request. Default: the user's docker credentials (the docker
// config and its credential helpers), trustcache's user agent, three tries.
// remote.WithAuthFromKeychain, WithUserAgent and WithRetryBackoff replace
// the defaults; remote.WithAuth conflicts with the default keychain (pass
// a keychain instead); remote.WithTransport is overridden — use
// WithTransport, which the body-size, time and request limits wrap.
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(v *Verifier) { v.remote = append(v.remote, opts...) }
}

// WithTransport sets the HTTP transport registry requests go through,
// wrapped in the body-size limit. Default: remote.DefaultTransport.
func WithTransport(t http.RoundTripper) Option {
	return func(v *Verifier) { v.transport = t }
}

// WithRequestTimeout bounds each registry request, body included.
// Default: 30s.
func WithRequestTimeout(d time.Duration) Option {
	return func(v *Verifier) { v.timeout = d }
}

// WithVerifyTimeout bounds one Verify or Explain call, all its registry
// requests and retries included. Default: DefaultVerifyTimeout.
func WithVerifyTimeout(d time.Duration) Option {
	return func(v *Verifier) { v.total = d }
}

// WithClock sets the clock maxAge is measured against. Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) { v.now = now }
}
