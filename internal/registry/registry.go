// Package registry is the registry plumbing trustcache's packages share:
// remote options with the user's docker credentials, bounded response
// bodies, the line between "not there" and "could not tell", the puller a
// client keeps for its life (pullers.go), and the registry pings remembered
// between processes (pingcache.go) in the ledger file (pingstore.go).
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// MaxResponseBody bounds every response body read from a registry. The
// largest legitimate object trustcache reads is a signature manifest; real
// ones are a few KiB, and a few thousand signatures fit well below this.
const MaxResponseBody = 4 << 20

// DefaultTimeout bounds one registry request, headers and body.
const DefaultTimeout = 30 * time.Second

// RetryBackoff is how requests that fail with a transient error (a
// network error, 408, 429, 5xx) are retried: 3 tries, 250 ms then 500 ms
// apart. A verification should cost a build little even when the registry
// is down.
var RetryBackoff = remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}

// ErrBodyTooLarge reports a response body above MaxResponseBody.
var ErrBodyTooLarge = errors.New("registry response body exceeds the size limit")

// Options returns remote options for talking to registries as the user:
// credentials from the docker config and its credential helpers, and a
// transport that bounds body sizes and request times (see Transport). A
// zero timeout means DefaultTimeout. extra options come after the
// defaults (a keychain, user agent or backoff there replaces the default)
// but before the transport: a remote.WithTransport among them is
// overridden, so that no option drops the bounds — the base transport is
// base.
func Options(ctx context.Context, base http.RoundTripper, timeout time.Duration, extra ...remote.Option) []remote.Option {
	if base == nil {
		base = remote.DefaultTransport
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithUserAgent(UserAgent),
		remote.WithRetryBackoff(RetryBackoff),
	}
	opts = append(opts, extra...)
	return append(opts, remote.WithTransport(Transport(base, MaxResponseBody, timeout)))
}

// Transport wraps base so that no response body yields more than max bytes
// (a read past the limit fails with ErrBodyTooLarge instead of buffering
// whatever a hostile registry sends) and no request, body included, takes
// longer than timeout (a registry that trickles bytes or never answers
// fails with context.DeadlineExceeded).
func Transport(base http.RoundTripper, max int64, timeout time.Duration) http.RoundTripper {
	return &boundedTransport{base: base, max: max, timeout: timeout}
}

type boundedTransport struct {
	base    http.RoundTripper
	max     int64
	timeout time.Duration
}

func (t *boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return resp, err
	}
	if resp.Body == nil {
		cancel()
		return resp, nil
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("%s %s: %w (%d > %d bytes)", req.Method, req.URL.Redacted(), ErrBodyTooLarge, resp.ContentLength, t.max)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max, cancel: cancel}
	return resp, nil
}

// limitedBody yields at most left bytes and releases the request's timeout
// when closed.
type limitedBody struct {
	rc     io.ReadCloser
	left   int64
	cancel context.CancelFunc
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One more byte means the limit was crossed; EOF means it was not.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

// IsNotFound reports whether err is the registry saying that a manifest,
// blob or repository does not exist — an answer, not a failure.
func IsNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			return true
		}
	}
	return false
}
