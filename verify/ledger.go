package verify

import (
	"context"
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

// Ledger is the on-disk store of digests this host verified as trusted
// (internal/ledger), holding the Signers that counted for each.
type Ledger = ledger.Store[Signer]

// LedgerEntry is one digest this host verified as trusted.
type LedgerEntry = ledger.Entry[Signer]

// LedgerCorruptError reports a ledger file that was not a valid store; it
// was moved aside and an empty ledger took its place (ledger.CorruptError).
type LedgerCorruptError = ledger.CorruptError

// ErrLedgerClosed is returned by the methods of a closed Ledger.
var ErrLedgerClosed = ledger.ErrClosed

// OpenLedger returns the ledger at path, creating its directory (0700) if
// needed; the file itself is created (0600) by the first write. Its Prune
// also removes the expired registry pings remembered in it, and the tag
// records of the fallback not updated for TagRecordTTL (fallback_ledger.go).
func OpenLedger(path string) (*Ledger, error) {
	return openLedger(path)
}

func openLedger(path string, opts ...ledger.Option) (*Ledger, error) {
	return ledger.Open[Signer](path, append([]ledger.Option{ledger.WithSweep(registry.PingBucket, registry.SweepPings), ledger.WithSweep(TagBucket, sweepTags)}, opts...)...)
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
// The verifier also remembers each registry's ping in l for
// registry.PingTTL, so that a new process's first request to a registry
// is not preceded by it (internal/registry/pingstore.go). Default: no ledger.
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
