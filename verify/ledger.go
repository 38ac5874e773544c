package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker-trustcache/docker-trustcache/internal/ledger"
	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// The verifier's hooks into the trust ledger (internal/ledger, the store):
// what an entry holds (LedgerEntry), when it may stand in for a
// verification (validEntry), when it expires (ledgerExpiry), and where the
// verifier consults and feeds it (fromLedger, remember).

// DefaultLedgerTTL is how long a ledger entry stays valid when the scope
// sets no maxAge: a digest is verified against the registry again at least
// this often.
const DefaultLedgerTTL = 24 * time.Hour

// Ledger is the on-disk store of digests this host verified as trusted,
// with the Signers that counted for each (the store itself is
// internal/ledger: one bbolt file, locked per operation, never trusted when
// corrupt). Several processes may use one ledger file at once.
type Ledger struct {
	store *ledger.Store[Signer]
}

// LedgerEntry is one digest this host verified as trusted.
type LedgerEntry struct {
	Repository string   `json:"repository"` // canonical
	Digest     string   `json:"digest"`
	Signers    []Signer `json:"signers"` // the signatures that counted
	// Policy is the fingerprint of the policy and scope the digest was
	// verified under (trustpolicy.Policy.Fingerprint); the entry serves
	// only verifications under the same fingerprint.
	Policy string `json:"policy"`
	// PolicyDigest is the digest of the policy file, for display.
	PolicyDigest string    `json:"policyDigest,omitempty"`
	VerifiedAt   time.Time `json:"verifiedAt"`
	Expires      time.Time `json:"expires"`
}

// Pinned returns REPOSITORY@DIGEST, the entry's key.
func (e *LedgerEntry) Pinned() string { return (*ledger.Entry[Signer])(e).Pinned() }

// Expired reports whether the entry has expired at now.
func (e *LedgerEntry) Expired(now time.Time) bool { return (*ledger.Entry[Signer])(e).Expired(now) }

// LedgerCorruptError reports a ledger file that was not a valid store: not
// a ledger, truncated, or holding an entry that does not decode or whose
// checksum does not match. Nothing in it was trusted; it was moved aside to
// MovedTo and an empty ledger took its place.
type LedgerCorruptError struct {
	Path    string
	MovedTo string // "" when moving it aside failed too
	Err     error
}

func (e *LedgerCorruptError) Error() string {
	return (&ledger.CorruptError{Path: e.Path, MovedTo: e.MovedTo, Err: e.Err}).Error()
}

func (e *LedgerCorruptError) Unwrap() error { return e.Err }

// ErrLedgerClosed is returned by the methods of a closed Ledger.
var ErrLedgerClosed = errors.New("ledger is closed")

// ledgerError turns the store's corruption report into a
// *LedgerCorruptError and its closed error into ErrLedgerClosed; other
// errors are returned as they are.
func ledgerError(err error) error {
	var c *ledger.CorruptError
	switch {
	case errors.As(err, &c):
		return &LedgerCorruptError{Path: c.Path, MovedTo: c.MovedTo, Err: c.Err}
	case errors.Is(err, ledger.ErrClosed):
		return ErrLedgerClosed
	}
	return err
}

// OpenLedger returns the ledger at path, creating its directory (0700) if
// needed; the file itself is created (0600) by the first write. Its Prune
// also removes the expired registry pings remembered in it, and the tag
// records of the fallback not updated for TagRecordTTL (fallback_ledger.go).
func OpenLedger(path string) (*Ledger, error) {
	return openLedger(path)
}

func openLedger(path string, opts ...ledger.Option) (*Ledger, error) {
	s, err := ledger.Open[Signer](path, append([]ledger.Option{ledger.WithSweep(registry.PingBucket, registry.SweepPings), ledger.WithSweep(tagBucket, sweepTags)}, opts...)...)
	if err != nil {
		return nil, ledgerError(err)
	}
	return &Ledger{store: s}, nil
}

// Path returns the ledger file's path.
func (l *Ledger) Path() string { return l.store.Path() }

// Close closes the ledger; its methods then return ErrLedgerClosed.
func (l *Ledger) Close() error { return ledgerError(l.store.Close()) }

// Lookup returns the entry for repository@digest, or nil when there is
// none. It does not judge the entry (expiry, policy): the verifier does. A
// corrupt ledger is a *LedgerCorruptError.
func (l *Ledger) Lookup(ctx context.Context, repository, digest string) (*LedgerEntry, error) {
	e, err := l.store.Lookup(ctx, repository, digest)
	if e == nil || err != nil {
		return nil, ledgerError(err)
	}
	return (*LedgerEntry)(e), nil
}

// Entries returns every entry, sorted by repository and digest. A corrupt
// ledger is a *LedgerCorruptError (and no entries).
func (l *Ledger) Entries(ctx context.Context) ([]LedgerEntry, error) {
	es, err := l.store.Entries(ctx)
	if err != nil {
		return nil, ledgerError(err)
	}
	out := make([]LedgerEntry, len(es))
	for i, e := range es {
		out[i] = LedgerEntry(e)
	}
	return out, nil
}

// Record stores e, replacing the entry for the same repository@digest.
// The verifier records what it verified itself; an entry recorded by
// hand is trusted as if it had (under its Policy fingerprint, until it
// Expires), so record only what was verified.
func (l *Ledger) Record(ctx context.Context, e LedgerEntry) error {
	return ledgerError(l.store.Record(ctx, ledger.Entry[Signer](e)))
}

// Prune removes the entries expired at now, or every entry when all is
// set, and returns how many it removed; it also prunes the remembered
// registry pings and the fallback's tag records. A corrupt ledger is a
// *LedgerCorruptError (moved aside: the new ledger is empty).
func (l *Ledger) Prune(ctx context.Context, now time.Time, all bool) (int, error) {
	n, err := l.store.Prune(ctx, now, all)
	return n, ledgerError(err)
}

// validEntry reports whether e may stand in for a verification at now
// under the policy fingerprint: same fingerprint, not expired, not
// recorded in the future (a clock set back), and with signers.
func validEntry(e *LedgerEntry, fingerprint string, now time.Time) bool {
	return e.Policy == fingerprint && !e.Expired(now) && !e.VerifiedAt.After(now.Add(ClockSkew)) && len(e.Signers) > 0
}

// WithLedger makes the verifier consult l before fetching signatures and
// record every fresh trusted result in it: a digest verified before under
// the same policy fingerprint, and not expired, is trusted again without
// its signatures (Result.FromLedger). Explain never takes a verdict from
// the ledger.
// The verifier also remembers each registry's answer to the /v2/ ping in l
// for an hour (never credentials or tokens), so that a new process's first
// request to a registry is not preceded by it. Default: no ledger.
func WithLedger(l *Ledger) Option {
	return func(v *Verifier) { v.ledger = l }
}

// fromLedger fills res from a valid ledger entry for its digest and
// reports whether there was one. res has its repository, digest and scope
// settings already.
func (v *Verifier) fromLedger(ctx context.Context, res *Result, scope *trustpolicy.Scope) bool {
	e, err := v.ledger.Lookup(ctx, res.Repository, res.Digest)
	plain, narrowed := ledgerScope(ctx, scope)
	if err != nil || e == nil || !validEntry(e, v.policy.Fingerprint(plain), v.now()) || len(e.Signers) < scope.Threshold {
		return false
	}
	if narrowed && countMatching(e.Signers, scope.Annotations) < scope.Threshold {
		return false // trusted, but not on signatures that name the tag (verify/fallback.go)
	}
	res.Trusted = true
	res.Verdict = VerdictTrusted
	res.Signers = e.Signers
	res.FromLedger = true
	res.addReason(fmt.Sprintf("verified before on this host (ledger), until %s", e.Expires.UTC().Format(time.RFC3339)))
	return true
}

// remember records a fresh trusted result in the ledger. A failure is
// ignored: the ledger only saves work, and a verdict never depends on it.
func (v *Verifier) remember(ctx context.Context, res *Result, scope *trustpolicy.Scope) {
	if !res.Trusted || res.Verdict != VerdictTrusted || res.FromLedger || res.Digest == "" {
		return
	}
	now := v.now()
	plain, _ := ledgerScope(ctx, scope)
	e := LedgerEntry{
		Repository:   res.Repository,
		Digest:       res.Digest,
		Signers:      res.Signers,
		Policy:       v.policy.Fingerprint(plain),
		PolicyDigest: v.policy.Digest,
		VerifiedAt:   now,
		Expires:      ledgerExpiry(scope, res.Signers, now),
	}
	if e.Expired(now) {
		return
	}
	_ = v.ledger.Record(ctx, e)
}

// ledgerExpiry is when a verdict reached at now stops standing in for a
// verification: when the first counted signature gets older than the
// scope's maxAge, or after DefaultLedgerTTL when the scope has none.
func ledgerExpiry(scope *trustpolicy.Scope, signers []Signer, now time.Time) time.Time {
	exp := now.Add(DefaultLedgerTTL).UTC()
	if scope.MaxAge <= 0 {
		return exp
	}
	first := true
	for _, s := range signers {
		t, err := time.Parse(time.RFC3339, s.SignedAt)
		if err != nil {
			// Cannot happen under maxAge (the signature would not count);
			// expire now rather than guess.
			return now
		}
		if at := t.Add(scope.MaxAge); first || at.Before(exp) {
			exp, first = at, false
		}
	}
	return exp.UTC()
}

// ledgerAsKey carries, in a verification's context, a scope narrowed for
// the fallback (scopeForTag) and the scope it narrows: the ledger entries
// of the narrowed verification are recorded and looked up under the
// plain scope's fingerprint — a digest trusted under the narrowed scope is
// trusted under the plain one, and one entry per digest serves both (a
// lookup under the narrowed scope also needs its signers to name the tag).
type ledgerAsKey struct{}

type ledgerAs struct{ narrowed, plain *trustpolicy.Scope }

// ledgerScope returns the scope whose fingerprint the ledger uses for a
// verification under scope, and whether scope is a narrowed one.
func ledgerScope(ctx context.Context, scope *trustpolicy.Scope) (*trustpolicy.Scope, bool) {
	if la, ok := ctx.Value(ledgerAsKey{}).(ledgerAs); ok && la.narrowed == scope {
		return la.plain, true
	}
	return scope, false
}

// countMatching counts the distinct builders among signers whose signed
// annotations match want.
func countMatching(signers []Signer, want map[string]string) int {
	builders := map[string]bool{}
	for _, s := range signers {
		if matchAnnotations(want, s.Annotations) == "" {
			builders[s.Builder] = true
		}
	}
	return len(builders)
}
