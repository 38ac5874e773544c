package verify

import (
	"context"
	"time"

	"github.com/docker-trustcache/docker-trustcache/internal/ledger"
)

// The fallback's half of the ledger (docs/fallback.md): per (repository,
// tag, policy fingerprint), the newest digest this host took for the tag
// and the highest head sequence it has seen — the rollback bound.

// tagBucket is the ledger bucket of the tag records: tagKey → a sealed
// tagRecord (ledger.Seal).
const tagBucket = "tags.v1"

// TagRecordTTL is how long a tag record is kept after it was last
// updated: a tag not verified for that long loses its rollback bound on
// this host (maxAge still applies).
const TagRecordTTL = 90 * 24 * time.Hour

// tagRecord is the newest digest this host took for a tag.
type tagRecord struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Policy     string `json:"policy"` // the scope's fingerprint
	Digest     string `json:"digest"`
	// SignedAt is the newest counted signature's time of Digest; zero
	// when none was signed with a time.
	SignedAt time.Time `json:"signedAt,omitzero"`
	// ForTag says Digest is trusted for the tag (signed naming it): a
	// fallback candidate, not only a bound.
	ForTag       bool      `json:"forTag,omitempty"`
	HeadSequence uint64    `json:"headSequence,omitempty"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

func tagKey(repo, tag, fingerprint string) string { return repo + ":" + tag + " " + fingerprint }

// notOlder reports whether a digest signed at t is not older than one
// signed at floor: a zero floor bounds nothing; a zero t is older than any
// floor (it cannot be shown not to be).
func notOlder(t, floor time.Time) bool {
	return floor.IsZero() || (!t.IsZero() && !t.Before(floor))
}

// merged returns the record after seeing n: the newer digest (n's when it
// is not older) and the higher head sequence.
func (r *tagRecord) merged(n tagRecord) tagRecord {
	if r == nil {
		return n
	}
	out := *r
	out.UpdatedAt = n.UpdatedAt
	out.HeadSequence = max(r.HeadSequence, n.HeadSequence)
	switch {
	case n.Digest == "":
	case n.Digest == r.Digest:
		out.ForTag = r.ForTag || n.ForTag
		if n.SignedAt.After(r.SignedAt) {
			out.SignedAt = n.SignedAt
		}
	case notOlder(n.SignedAt, r.SignedAt):
		out.Digest, out.SignedAt, out.ForTag = n.Digest, n.SignedAt, n.ForTag
	}
	return out
}

// loadTag returns the tag record, or nil (none, no ledger, or unreadable:
// a record that does not decode bounds nothing and is written over).
func (v *Verifier) loadTag(ctx context.Context, repo, tag, fingerprint string) *tagRecord {
	if v.ledger == nil {
		return nil
	}
	key := tagKey(repo, tag, fingerprint)
	var rec *tagRecord
	_ = v.ledger.store.View(ctx, tagBucket, func(b ledger.Bucket) error {
		raw := b.Get(key)
		if raw == nil {
			return nil
		}
		var r tagRecord
		if ledger.Unseal(key, raw, &r) == nil && r.Repository == repo && r.Tag == tag && r.Policy == fingerprint {
			rec = &r
		}
		return nil
	})
	return rec
}

// saveTag merges n into the stored record. A failure is ignored: the
// bound is lost for this host, a verdict is not made wrong.
func (v *Verifier) saveTag(ctx context.Context, n tagRecord) {
	if v.ledger == nil {
		return
	}
	key := tagKey(n.Repository, n.Tag, n.Policy)
	n.UpdatedAt = v.now().UTC()
	_ = v.ledger.store.Update(ctx, tagBucket, func(b ledger.Bucket) error {
		var old *tagRecord
		if raw := b.Get(key); raw != nil {
			var r tagRecord
			if ledger.Unseal(key, raw, &r) == nil {
				old = &r
			}
		}
		m := old.merged(n)
		if old != nil && *old == m {
			return nil
		}
		val, err := ledger.Seal(key, m)
		if err != nil {
			return err
		}
		return b.Put(key, val)
	})
}

// sweepTags is the ledger's Prune of the tag records: those not updated
// for TagRecordTTL, or all.
func sweepTags(b ledger.Bucket, now time.Time, all bool) error {
	var stale []string
	err := b.ForEach(func(key string, v []byte) error {
		var r tagRecord
		if all || ledger.Unseal(key, v, &r) != nil || now.Sub(r.UpdatedAt) > TagRecordTTL {
			stale = append(stale, key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
