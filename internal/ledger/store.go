// Package ledger is the on-disk store of the digests this host verified
// as trusted: one bbolt file shared by processes under a file lock, its
// permissions, its corruption handling, the checksum codec of its values
// and the expiry index of its entries. It stores; it does not decide: what
// an entry's signers are (S) and when an entry may stand in for a
// verification are the caller's (verify/ledger.go). Other concerns may keep
// their own buckets in the same file (Store.View, Store.Update, WithSweep),
// as the registry ping store does (internal/registry/pingstore.go).
package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultLockTimeout bounds the wait for another process's hold on the
// ledger. Operations hold it for milliseconds; a lookup that cannot get it
// in time is a miss, a write that cannot is skipped.
const DefaultLockTimeout = 3 * time.Second

// EntriesBucket holds the entries, expiryBucket indexes them by expiry. A
// later format gets other buckets, so that binaries of different versions
// can share one file.
const (
	EntriesBucket = "entries.v1"
	expiryBucket  = "expiry.v1" // expiryKey → nothing
)

// ErrClosed is returned by the methods of a closed Store.
var ErrClosed = errors.New("ledger is closed")

// Entry is one digest this host verified as trusted. S is what the caller
// stores of each signature that counted; the store only encodes it (JSON)
// and requires at least one.
type Entry[S any] struct {
	Repository string `json:"repository"` // canonical
	Digest     string `json:"digest"`
	Signers    []S    `json:"signers"` // the signatures that counted
	// Policy is the fingerprint of the policy and scope the digest was
	// verified under (verify's Policy.Fingerprint); the entry serves only
	// lookups under the same fingerprint.
	Policy string `json:"policy"`
	// PolicyDigest is the digest of the policy file, for display.
	PolicyDigest string    `json:"policyDigest,omitempty"`
	VerifiedAt   time.Time `json:"verifiedAt"`
	Expires      time.Time `json:"expires"`
}

// Pinned returns REPOSITORY@DIGEST, the entry's key.
func (e *Entry[S]) Pinned() string { return e.Repository + "@" + e.Digest }

// Expired reports whether the entry has expired at now.
func (e *Entry[S]) Expired(now time.Time) bool { return !now.Before(e.Expires) }

// Store is the on-disk store of digests this host verified as trusted,
// so that a repeat verification of the same digest under the same policy
// costs no signature fetch.
//
// Several processes may use one ledger file at once: every operation opens
// the file, holds a lock on PATH.lock (shared to read, exclusive to write)
// for milliseconds and closes it again. A corrupt file is never trusted: it
// is moved aside to PATH.corrupt-<unix time> and a new one is created.
//
// The ledger is as trustworthy as the directory it is in (the docker
// config dir, which also holds registry credentials): it is created 0700
// and 0600, and a ledger file or directory another user could write —
// owned by a user other than this one or root, or writable by group or
// others, a sticky directory included — is refused with an error naming
// it. The values' checksum (codec.go) is not keyed: it finds corruption,
// not forgery. A key kept beside the file would stop no one the owner and
// mode checks let write the file — this user and root can read the key
// too — so it would add a file and no protection.
type Store[S any] struct {
	path        string
	lockTimeout time.Duration
	sweeps      []sweep
	closed      atomic.Bool
}

// Option configures a Store.
type Option func(*options)

type options struct {
	lockTimeout time.Duration
	sweeps      []sweep
}

type sweep struct {
	bucket string
	fn     func(b Bucket, now time.Time, all bool) error
}

// WithLockTimeout sets how long an operation waits for another process's
// hold on the file (default DefaultLockTimeout).
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) { o.lockTimeout = d }
}

// WithSweep makes Prune also run fn on the named bucket, in the same
// transaction, when the bucket exists: another concern's values kept in
// the file expire with the entries.
func WithSweep(bucket string, fn func(b Bucket, now time.Time, all bool) error) Option {
	return func(o *options) { o.sweeps = append(o.sweeps, sweep{bucket, fn}) }
}

// Open returns the ledger at path, creating its directory (0700) if
// needed. The file itself is created (0600) by the first write.
func Open[S any](path string, opts ...Option) (*Store[S], error) {
	if path == "" {
		return nil, errors.New("opening ledger: empty path")
	}
	o := options{lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("opening ledger: %w", err)
	}
	return &Store[S]{path: path, lockTimeout: o.lockTimeout, sweeps: o.sweeps}, nil
}

// Path returns the ledger file's path.
func (l *Store[S]) Path() string { return l.path }

// Close closes the ledger. The file is not held open between operations,
// so Close only makes further calls fail with ErrClosed.
func (l *Store[S]) Close() error {
	l.closed.Store(true)
	return nil
}

// Lookup returns the entry for repository@digest, or nil when there is
// none. It does not judge the entry: see Entry[S].Valid. A corrupt
// ledger is rebuilt, and Lookup returns nil and a *CorruptError.
func (l *Store[S]) Lookup(ctx context.Context, repository, digest string) (*Entry[S], error) {
	key := repository + "@" + digest
	var found *Entry[S]
	err := l.read(ctx, func(b *bolt.Bucket) error {
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		e, err := decodeEntry[S](key, v)
		if err != nil {
			return err
		}
		found = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// Entries returns every entry, sorted by repository and digest. A corrupt
// ledger is rebuilt, and Entries returns no entries and a
// *CorruptError.
func (l *Store[S]) Entries(ctx context.Context) ([]Entry[S], error) {
	var out []Entry[S]
	err := l.read(ctx, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			e, err := decodeEntry[S](string(k), v)
			if err != nil {
				return err
			}
			out = append(out, *e)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil // bbolt iterates in key order
}

// Record stores e, replacing the entry for the same repository@digest.
// It also removes the entries expired at e.VerifiedAt, so that the ledger
// holds about the digests verified within one expiry period.
func (l *Store[S]) Record(ctx context.Context, e Entry[S]) error {
	if e.Repository == "" || e.Digest == "" || e.Policy == "" || len(e.Signers) == 0 {
		return errors.New("recording in the ledger: entry without repository, digest, policy or signers")
	}
	key := e.Pinned()
	v, err := encodeEntry(key, &e)
	if err != nil {
		return fmt.Errorf("recording %s in the ledger: %w", key, err)
	}
	return l.write(ctx, func(tx *bolt.Tx) error {
		b, idx, err := entryBuckets(tx)
		if err != nil {
			return err
		}
		if old := b.Get([]byte(key)); old != nil {
			oe, err := decodeEntry[S](key, old)
			if err != nil {
				return err
			}
			if err := idx.Delete(expiryKey(oe.Expires, key)); err != nil {
				return err
			}
		}
		if err := b.Put([]byte(key), v); err != nil {
			return err
		}
		if err := idx.Put(expiryKey(e.Expires, key), []byte{}); err != nil {
			return err
		}
		_, err = pruneExpired[S](b, idx, e.VerifiedAt)
		return err
	})
}

// Prune removes the entries expired at now, or every entry when all is
// set, and returns how many it removed. It reads every entry: one that
// does not decode makes the ledger corrupt (see CorruptError). The
// sweeps (WithSweep) run in the same transaction, uncounted: the
// remembered registry pings expired at now (all: every one) go too.
func (l *Store[S]) Prune(ctx context.Context, now time.Time, all bool) (int, error) {
	n := 0
	err := l.write(ctx, func(tx *bolt.Tx) error {
		b, idx, err := entryBuckets(tx)
		if err != nil {
			return err
		}
		for _, sw := range l.sweeps {
			if sb := tx.Bucket([]byte(sw.bucket)); sb != nil {
				if err := sw.fn(Bucket{sb}, now, all); err != nil {
					return err
				}
			}
		}
		var drop []*Entry[S]
		err = b.ForEach(func(k, v []byte) error {
			e, err := decodeEntry[S](string(k), v)
			if err != nil {
				return err
			}
			if all || e.Expired(now) {
				drop = append(drop, e)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range drop {
			if err := b.Delete([]byte(e.Pinned())); err != nil {
				return err
			}
			if err := idx.Delete(expiryKey(e.Expires, e.Pinned())); err != nil {
				return err
			}
		}
		n = len(drop)
		// Index keys left over without their entry.
		_, err = pruneExpired[S](b, idx, now)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Bucket is a named bucket of the file other than the entries, inside one
// transaction of View or Update. Its values are the caller's; Seal and
// Unseal are the codec the entries use.
type Bucket struct{ b *bolt.Bucket }

// Get returns the value stored under key, or nil. It is valid only inside
// the transaction.
func (b Bucket) Get(key string) []byte { return b.b.Get([]byte(key)) }

// Put stores v under key (Update only).
func (b Bucket) Put(key string, v []byte) error { return b.b.Put([]byte(key), v) }

// Delete removes key (Update only).
func (b Bucket) Delete(key string) error { return b.b.Delete([]byte(key)) }

// ForEach calls fn for every key and value, in key order; fn must not
// change the bucket.
func (b Bucket) ForEach(fn func(key string, v []byte) error) error {
	return b.b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

// View runs fn on the named bucket under the shared lock, as Lookup reads
// the entries: a missing file or bucket is empty (fn is not called), and a
// corrupt file is rebuilt and reported by a *CorruptError.
func (l *Store[S]) View(ctx context.Context, bucket string, fn func(Bucket) error) error {
	return l.readBucket(ctx, bucket, func(b *bolt.Bucket) error { return fn(Bucket{b}) })
}

// Update runs fn on the named bucket, created if needed, in one
// read-write transaction under the exclusive lock, as Record writes the
// entries.
func (l *Store[S]) Update(ctx context.Context, bucket string, fn func(Bucket) error) error {
	if bucket == EntriesBucket || bucket == expiryBucket {
		return fmt.Errorf("updating the ledger: bucket %s is the store's own", bucket)
	}
	return l.write(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return fn(Bucket{b})
	})
}
