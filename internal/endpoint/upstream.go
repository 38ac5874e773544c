package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
)

// manifestAccept is the Accept header of upstream manifest requests:
// every manifest type whose digest is the hash of its bytes (signed
// schema 1 manifests are not).
const manifestAccept = string(types.OCIManifestSchema1) + ", " + string(types.OCIImageIndex) + ", " +
	string(types.DockerManifestSchema2) + ", " + string(types.DockerManifestList)

// upstream is one repository of a real registry, as the user reaches it.
type upstream struct {
	repo     name.Repository
	keychain authn.Keychain
	rt       http.RoundTripper // under the auth transport: retry, user agent, bounds

	mu     sync.Mutex
	client *http.Client // authenticated; nil until first used
}

// newRoundTripper returns what upstream requests go through under
// go-containerregistry's auth transport: retries of transient failures
// and the User-Agent, over boundedTransport.
func newRoundTripper(base http.RoundTripper, timeout time.Duration) http.RoundTripper {
	rt := boundedTransport{
		capped: registry.Transport(base, registry.MaxResponseBody, timeout),
		stream: &idleTransport{base: base, timeout: timeout},
	}
	retry := transport.NewRetry(rt,
		transport.WithRetryBackoff(registry.RetryBackoff),
		transport.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout))
	return transport.NewUserAgent(retry, registry.UserAgent)
}

// httpClient returns the authenticated client of u, making it (registry
// ping, credentials, token) on first use. A failure is not remembered: the
// next request tries again.
func (u *upstream) httpClient(ctx context.Context) (*http.Client, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.client != nil {
		return u.client, nil
	}
	auth, err := authn.Resolve(ctx, u.keychain, u.repo)
	if err != nil {
		return nil, fmt.Errorf("resolving credentials for %s: %w", u.repo.RegistryStr(), err)
	}
	tr, err := transport.NewWithContext(ctx, u.repo.Registry, auth, u.rt, []string{u.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("authenticating to %s: %w", u.repo.RegistryStr(), err)
	}
	u.client = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	return u.client, nil
}

// get sends GET /v2/<repo>/<kind>/<digest> upstream; stream marks a
// request whose body may exceed registry.MaxResponseBody. The response's
// status is 200.
func (u *upstream) get(ctx context.Context, kind string, d v1.Hash, stream bool) (*http.Response, error) {
	c, err := u.httpClient(ctx)
	if err != nil {
		return nil, err
	}
	if stream {
		ctx = context.WithValue(ctx, streamKey{}, true)
	}
	target := fmt.Sprintf("%s://%s/v2/%s/%s/%s", u.repo.Scheme(), u.repo.RegistryStr(), u.repo.RepositoryStr(), kind, d)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	if kind == "manifests" {
		req.Header.Set("Accept", manifestAccept)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// manifest fetches the manifest d and checks that its bytes hash to d. It
// returns them and the registry's Content-Type.
func (u *upstream) manifest(ctx context.Context, d v1.Hash) ([]byte, string, error) {
	resp, err := u.get(ctx, "manifests", d, false)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body) // bounded by registry.MaxResponseBody
	if err != nil {
		return nil, "", err
	}
	if got := digestOf(b); got != d {
		return nil, "", mismatch("the registry served bytes for %s that hash to %s", d, got)
	}
	return b, resp.Header.Get("Content-Type"), nil
}

// smallBlob fetches the blob desc names, whole, and checks its length and
// digest. desc.Size is at most SmallBlob.
func (u *upstream) smallBlob(ctx context.Context, desc v1.Descriptor) ([]byte, error) {
	resp, err := u.get(ctx, "blobs", desc.Digest, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, desc.Size+1))
	if errors.Is(err, registry.ErrBodyTooLarge) {
		return nil, lengthMismatch(desc, desc.Size+1) // desc.Size is at most the limit
	}
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != desc.Size {
		return nil, lengthMismatch(desc, int64(len(b)))
	}
	if got := digestOf(b); got != desc.Digest {
		return nil, mismatch("the registry served bytes for %s that hash to %s", desc.Digest, got)
	}
	return b, nil
}

func lengthMismatch(desc v1.Descriptor, got int64) *refusal {
	if got > desc.Size {
		return mismatch("the registry served more than the %d bytes of %s", desc.Size, desc.Digest)
	}
	return mismatch("the registry served %d bytes for %s, which has %d", got, desc.Digest, desc.Size)
}

// checkRedirect follows at most 10 redirects, and none from the registry
// to another host given as a loopback, private or link-local address (a
// registry must not make the Server reach into the user's network).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Hostname() == via[0].URL.Hostname() {
		return nil
	}
	if ip, err := netip.ParseAddr(req.URL.Hostname()); err == nil {
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() {
			return fmt.Errorf("redirect from %s to %s refused: a local address", via[0].URL.Hostname(), req.URL.Hostname())
		}
	}
	return nil
}

// streamKey marks the context of a request whose body is streamed.
type streamKey struct{}

// boundedTransport sends requests marked with streamKey through stream and
// every other one (manifests, small blobs, pings, tokens) through capped.
type boundedTransport struct {
	capped, stream http.RoundTripper
}

func (r boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Context().Value(streamKey{}) != nil {
		return r.stream.RoundTrip(req)
	}
	return r.capped.RoundTrip(req)
}

// idleTransport bounds the wait for a response's headers, and each wait
// for the next bytes of its body, by timeout; not the body as a whole, and
// not the time the reader takes between reads (a slow client of the
// Server is not a stalled registry). A body of any status but 200 is
// capped at registry.MaxResponseBody.
type idleTransport struct {
	base    http.RoundTripper
	timeout time.Duration
}

func (t *idleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(t.timeout, func() { cancel(errStalled) })
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	timer.Stop()
	if err != nil {
		cancel(nil)
		if context.Cause(ctx) == errStalled {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), errStalled)
		}
		return nil, err
	}
	var body io.ReadCloser = &idleBody{rc: resp.Body, ctx: ctx, timer: timer, timeout: t.timeout, cancel: cancel}
	if resp.StatusCode != http.StatusOK {
		body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(body, registry.MaxResponseBody), body}
	}
	resp.Body = body
	return resp, nil
}

// idleBody is a response body each of whose reads must make progress
// within timeout.
type idleBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	timer   *time.Timer // cancels ctx with errStalled when it fires
	timeout time.Duration
	cancel  context.CancelCauseFunc
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.timeout)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && context.Cause(b.ctx) == errStalled {
		return n, errStalled
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
