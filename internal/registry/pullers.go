package registry

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pullers keeps one go-containerregistry puller for a client's life: it
// keeps one authenticated transport per repository, so that a registry is
// pinged once, not once per request, and connections are kept alive across
// references. With a PingCache, the puller's transports go over a
// ping-cache session (pingcache.go), and the puller is replaced (Renew)
// when a remembered ping turned out stale. It is safe for concurrent use.
type Pullers struct {
	transport http.RoundTripper
	timeout   time.Duration
	extra     []remote.Option
	pings     *PingCache // nil: pings are not remembered

	mu  sync.Mutex
	cur *Puller
}

// NewPullers returns the pullers over transport (nil:
// remote.DefaultTransport), with Options' timeout and extra options; pings
// may be nil.
func NewPullers(transport http.RoundTripper, timeout time.Duration, pings *PingCache, extra ...remote.Option) *Pullers {
	return &Pullers{transport: transport, timeout: timeout, pings: pings, extra: extra}
}

// Puller is one puller and the ping-cache session (nil without a ping
// cache) under its transports.
type Puller struct {
	ps      *Pullers
	puller  *remote.Puller
	err     error
	session *PingSession
}

// Current returns the shared puller, making it on first use.
func (ps *Pullers) Current() *Puller {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.cur == nil {
		ps.cur = ps.newPuller()
	}
	return ps.cur
}

// Renew replaces old, unless another caller did already, and returns the
// current puller.
func (ps *Pullers) Renew(old *Puller) *Puller {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.cur == old {
		ps.cur = ps.newPuller()
	}
	return ps.cur
}

// newPuller makes a puller. With a ping cache, the base transport goes
// under a ping-cache session, inside the bounded transport, under
// go-containerregistry's retry and auth transports, where it sees the ping
// as the registry would. The caller holds mu.
func (ps *Pullers) newPuller() *Puller {
	p := &Puller{ps: ps}
	if ps.pings != nil {
		p.session = ps.pings.Session(ps.transport)
	}
	p.puller, p.err = remote.NewPuller(Options(context.Background(), p.base(), ps.timeout, ps.extra...)...)
	return p
}

// base is the transport p's requests go through: the ping-cache session,
// or the Pullers' transport (nil: remote.DefaultTransport).
func (p *Puller) base() http.RoundTripper {
	if p.session != nil {
		return p.session
	}
	return p.ps.transport
}

// Options returns the remote options for one call under ctx: Options'
// credentials and bounded transport, and p's puller.
func (p *Puller) Options(ctx context.Context) ([]remote.Option, error) {
	if p.err != nil {
		return nil, p.err
	}
	return append(Options(ctx, p.base(), p.ps.timeout, p.ps.extra...), remote.Reuse(p.puller)), nil
}

// Recheck reports whether a remembered ping of reg served p and the
// registry, pinged for real now (once per process), answers otherwise: a
// result reached through p may then be wrong for transport reasons, and a
// Renew-ed puller should try again (PingSession.Recheck).
func (p *Puller) Recheck(ctx context.Context, reg name.Registry) bool {
	return p.session != nil && p.session.Served(reg.RegistryStr()) && p.session.Recheck(ctx, reg, p.ps.timeout)
}
