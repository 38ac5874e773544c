package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/docker-trustcache/docker-trustcache/internal/ledger"
)

// The ping store: the outcome of go-containerregistry's GET /v2/ for each
// registry and scheme (pingcache.go), kept in the trust ledger's file
// (internal/ledger), in its own bucket, for the ledger's locking and
// corruption handling, so that a new process verifying a tag whose verdict
// is in the ledger makes one request (the HEAD), not two. Only a status
// code and the WWW-Authenticate challenges are stored, never credentials
// or tokens. They serve the verifier only when it has a ledger (not with
// --no-ledger).

// PingBucket is the ledger bucket of the stored pings: pingKey → a sealed
// pingEntry (ledger.Seal).
const PingBucket = "pings.v1"

// pingFile is what LedgerPings needs of a ledger: its other buckets.
type pingFile interface {
	View(ctx context.Context, bucket string, fn func(ledger.Bucket) error) error
	Update(ctx context.Context, bucket string, fn func(ledger.Bucket) error) error
}

// LedgerPings is a PingStore in a ledger file. Open the ledger with
// ledger.WithSweep(PingBucket, SweepPings), so that its Prune removes the
// expired pings too.
type LedgerPings struct {
	file pingFile
	now  func() time.Time
}

// NewLedgerPings returns the ping store in l (a *ledger.Store); now is its
// clock (nil: time.Now).
func NewLedgerPings(l pingFile, now func() time.Time) LedgerPings {
	if now == nil {
		now = time.Now
	}
	return LedgerPings{file: l, now: now}
}

// pingSchemes are the schemes a ping is stored under.
var pingSchemes = []string{"https", "http"}

// pingKey is the key of a stored ping: SCHEME://HOST.
func pingKey(scheme, host string) string { return scheme + "://" + host }

// pingEntry is a stored ping outcome and what it is for.
type pingEntry struct {
	Registry string `json:"registry"` // host[:port]
	Scheme   string `json:"scheme"`
	PingOutcome
}

// LoadPings returns the outcomes stored for host. An entry that does not
// decode is left out, and reported by the error (PingCache then
// writes over it): unlike a verdict entry, it does not make the file
// corrupt. A corrupt file is rebuilt as Lookup does.
func (p LedgerPings) LoadPings(ctx context.Context, host string) (map[string]PingOutcome, error) {
	out := map[string]PingOutcome{}
	var bad []error
	err := p.file.View(ctx, PingBucket, func(b ledger.Bucket) error {
		for _, scheme := range pingSchemes {
			key := pingKey(scheme, host)
			v := b.Get(key)
			if v == nil {
				continue
			}
			e, err := decodePingEntry(key, v)
			if err != nil {
				bad = append(bad, err)
				continue
			}
			out[scheme] = e.PingOutcome
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, errors.Join(bad...)
}

// SavePings replaces the outcomes stored for host, and removes the stored
// pings of every registry that have expired (or do not decode).
func (p LedgerPings) SavePings(ctx context.Context, host string, outcomes map[string]PingOutcome) error {
	vals := map[string][]byte{}
	for scheme, o := range outcomes {
		if !slices.Contains(pingSchemes, scheme) {
			return fmt.Errorf("storing a ping of %s: unknown scheme %q", host, scheme)
		}
		key := pingKey(scheme, host)
		v, err := encodePingEntry(key, &pingEntry{Registry: host, Scheme: scheme, PingOutcome: o})
		if err != nil {
			return fmt.Errorf("storing a ping of %s: %w", key, err)
		}
		vals[key] = v
	}
	return p.file.Update(ctx, PingBucket, func(b ledger.Bucket) error {
		for _, scheme := range pingSchemes {
			if err := b.Delete(pingKey(scheme, host)); err != nil {
				return err
			}
		}
		for k, v := range vals {
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return SweepPings(b, p.now(), false)
	})
}

// SweepPings removes the stored pings expired at now (all: every one) and
// those that do not decode from b, the PingBucket of a ledger update.
func SweepPings(b ledger.Bucket, now time.Time, all bool) error {
	var drop []string
	err := b.ForEach(func(k string, v []byte) error {
		if e, err := decodePingEntry(k, v); all || err != nil || !now.Before(e.Expires) {
			drop = append(drop, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// encodePingEntry returns the stored value of e, laid out as a ledger
// entry's (see ledger.Seal).
func encodePingEntry(key string, e *pingEntry) ([]byte, error) {
	return ledger.Seal(key, e)
}

// decodePingEntry checks and decodes a stored ping.
func decodePingEntry(key string, v []byte) (*pingEntry, error) {
	var e pingEntry
	if err := ledger.Unseal(key, v, &e); err != nil {
		return nil, fmt.Errorf("ping %s: %v", key, err)
	}
	if pingKey(e.Scheme, e.Registry) != key {
		return nil, fmt.Errorf("ping %s names %s", key, pingKey(e.Scheme, e.Registry))
	}
	return &e, nil
}
