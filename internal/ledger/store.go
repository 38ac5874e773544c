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
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
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

// CorruptError reports a ledger file that was not a valid store: not
// a bbolt file, truncated, or holding an entry that does not decode or
// whose checksum does not match. Nothing in it was trusted; it was moved
// aside to MovedTo and an empty ledger took its place.
type CorruptError struct {
	Path    string
	MovedTo string // "" when moving it aside failed too
	Err     error
}

func (e *CorruptError) Error() string {
	if e.MovedTo == "" {
		return fmt.Sprintf("ledger %s is corrupt: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("ledger %s was corrupt (%v): moved aside to %s, a new one was created", e.Path, e.Err, e.MovedTo)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// errCorrupt marks what the ledger found wrong inside its file.
type errCorrupt struct{ msg string }

func (e errCorrupt) Error() string { return e.msg }

func corruptf(format string, args ...any) error { return errCorrupt{fmt.Sprintf(format, args...)} }

func isCorrupt(err error) bool {
	var c errCorrupt
	return errors.As(err, &c)
}

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

// expiryKey is the key of the expiry index: the expiry in Unix seconds,
// big-endian so that the index is in expiry order, then the entry's key.
func expiryKey(expires time.Time, key string) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(max(expires.Unix(), 0)))
	return append(k, key...)
}

// pruneExpired removes the entries the expiry index says have expired at
// now, reading only those. The index only ever removes entries: an index
// that is wrong costs cache hits, never trust.
func pruneExpired[S any](b, idx *bolt.Bucket, now time.Time) (int, error) {
	var drop [][]byte
	c := idx.Cursor()
	for k, _ := c.First(); k != nil && len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) <= now.Unix(); k, _ = c.Next() {
		drop = append(drop, slices.Clone(k))
	}
	n := 0
	for _, k := range drop {
		key := k[8:]
		// The entry may have been recorded again with a later expiry.
		if v := b.Get(key); v != nil {
			if e, err := decodeEntry[S](string(key), v); err != nil || e.Expired(now) {
				if err := b.Delete(key); err != nil {
					return n, err
				}
				n++
			}
		}
		if err := idx.Delete(k); err != nil {
			return n, err
		}
	}
	return n, nil
}

// read runs fn on the entries bucket under a shared lock. A missing file
// or bucket is an empty ledger (fn is not called). A corrupt file is
// rebuilt under the exclusive lock.
func (l *Store[S]) read(ctx context.Context, fn func(*bolt.Bucket) error) error {
	return l.readBucket(ctx, EntriesBucket, fn)
}

// readBucket is read on the named bucket.
func (l *Store[S]) readBucket(ctx context.Context, bucket string, fn func(*bolt.Bucket) error) error {
	if l.closed.Load() {
		return ErrClosed
	}
	unlock, err := l.lock(ctx, false)
	if err != nil {
		return err
	}
	err = l.view(false, bucket, fn)
	unlock()
	if isCorrupt(err) {
		return l.rebuild(ctx)
	}
	return err
}

// write runs fn in one read-write transaction under the exclusive lock
// (entryBuckets gives it the entries bucket and the expiry index). A
// corrupt file (found before mapping it writable, or by fn) is moved
// aside, and fn runs again on a new one; the *CorruptError is
// returned after.
func (l *Store[S]) write(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if l.closed.Load() {
		return ErrClosed
	}
	unlock, err := l.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	err = l.view(false, EntriesBucket, nil)
	if err == nil {
		err = l.update(fn)
	}
	if !isCorrupt(err) {
		return err
	}
	corrupt := l.moveAside(err)
	if corrupt.MovedTo == "" {
		return corrupt
	}
	if err := l.update(fn); err != nil {
		return err
	}
	return corrupt
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

// update opens the file read-write (creating it) and runs fn in one
// transaction. The caller holds the exclusive lock.
func (l *Store[S]) update(fn func(tx *bolt.Tx) error) error {
	return safely(func() error {
		db, err := bolt.Open(l.path, 0o600, &bolt.Options{Timeout: l.lockTimeout})
		if err != nil {
			return fmt.Errorf("opening ledger %s: %w", l.path, err)
		}
		defer db.Close()
		return db.Update(fn)
	})
}

// entryBuckets returns the entries bucket and the expiry index, creating
// them. tx is writable.
func entryBuckets(tx *bolt.Tx) (entries, expiry *bolt.Bucket, err error) {
	if entries, err = tx.CreateBucketIfNotExists([]byte(EntriesBucket)); err != nil {
		return nil, nil, err
	}
	if expiry, err = tx.CreateBucketIfNotExists([]byte(expiryBucket)); err != nil {
		return nil, nil, err
	}
	return entries, expiry, nil
}

// rebuild takes the exclusive lock, checks the file again (another
// process may have rebuilt it meanwhile) and, if it is still corrupt,
// moves it aside and creates an empty ledger. It returns the
// *CorruptError, or nil when the file turned out sound.
func (l *Store[S]) rebuild(ctx context.Context) error {
	unlock, err := l.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	err = l.view(true, EntriesBucket, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			_, err := decodeEntry[S](string(k), v)
			return err
		})
	})
	if !isCorrupt(err) {
		return err
	}
	corrupt := l.moveAside(err)
	if corrupt.MovedTo != "" {
		// Create the new, empty ledger now; a failure here only means the
		// next write creates it.
		_ = l.update(func(tx *bolt.Tx) error {
			_, _, err := entryBuckets(tx)
			return err
		})
	}
	return corrupt
}

// moveAside renames the corrupt file to PATH.corrupt-<unix time>. The
// caller holds the exclusive lock.
func (l *Store[S]) moveAside(cause error) *CorruptError {
	e := &CorruptError{Path: l.path, Err: cause}
	to := l.path + ".corrupt-" + strconv.FormatInt(time.Now().Unix(), 10)
	if err := os.Rename(l.path, to); err != nil {
		e.Err = fmt.Errorf("%w; moving it aside: %v", cause, err)
		return e
	}
	e.MovedTo = to
	return e
}

// view opens the file read-only (the caller holds the lock) and runs fn, if
// not nil, on the named bucket, if there is one. Everything wrong with the
// file's contents is an errCorrupt; full also runs bbolt's consistency
// check over every page.
func (l *Store[S]) view(full bool, bucket string, fn func(*bolt.Bucket) error) error {
	fi, err := os.Stat(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading ledger: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("reading ledger: %s is not a regular file", l.path)
	}
	if err := l.checkPermissions(fi); err != nil {
		return err
	}
	if fi.Size() == 0 {
		// Only a write that crashed leaves an empty file: writes create and
		// initialise it under the exclusive lock.
		return corruptf("empty file")
	}
	return safely(func() error {
		db, err := bolt.Open(l.path, 0o600, &bolt.Options{ReadOnly: true, Timeout: l.lockTimeout})
		if err != nil {
			var pe *fs.PathError
			if errors.Is(err, bolterrors.ErrTimeout) || errors.As(err, &pe) {
				return fmt.Errorf("opening ledger %s: %w", l.path, err)
			}
			return corruptf("not a valid ledger: %v", err)
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			// Every page lies below the high-water mark; a shorter file was
			// truncated, and reading its pages would fault.
			if tx.Size() > fi.Size() {
				return corruptf("truncated: %d bytes, the store needs %d", fi.Size(), tx.Size())
			}
			if full {
				var first error
				for err := range tx.Check() { // drain: Check runs in its own goroutine
					if first == nil {
						first = err
					}
				}
				if first != nil {
					return corruptf("consistency check: %v", first)
				}
			}
			b := tx.Bucket([]byte(bucket))
			if b == nil || fn == nil {
				return nil
			}
			return fn(b)
		})
	})
}

// checkPermissions refuses a ledger file that another user could have
// written (writableByOthers), and checks its directory (checkDir).
func (l *Store[S]) checkPermissions(fi fs.FileInfo) error {
	if why := writableByOthers(fi); why != "" {
		return fmt.Errorf("ledger %s %s; not using it", l.path, why)
	}
	return l.checkDir()
}

// checkDir refuses a ledger whose directory another user could write:
// they could replace or plant the file. It runs before the lock file is
// made there, so a refused directory gets nothing of the ledger's.
func (l *Store[S]) checkDir() error {
	dir := filepath.Dir(l.path)
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("reading ledger: %w", err)
	}
	if why := writableByOthers(di); why != "" {
		return fmt.Errorf("ledger directory %s %s; not using it", dir, why)
	}
	return nil
}

// lock takes the lock on PATH.lock, shared or exclusive, waiting at most
// the store's lock timeout. Each call opens its own descriptor, so that two
// Store values (or goroutines) in one process exclude each other like
// two processes do.
func (l *Store[S]) lock(ctx context.Context, exclusive bool) (unlock func(), err error) {
	if err := l.checkDir(); err != nil {
		return nil, err
	}
	fl := flock.New(l.path+".lock", flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	ctx, cancel := context.WithTimeout(ctx, l.lockTimeout)
	defer cancel()
	var ok bool
	if exclusive {
		ok, err = fl.TryLockContext(ctx, 5*time.Millisecond)
	} else {
		ok, err = fl.TryRLockContext(ctx, 5*time.Millisecond)
	}
	if err == nil && !ok {
		err = errors.New("not acquired")
	}
	if err != nil {
		fl.Close()
		return nil, fmt.Errorf("locking ledger %s: %w", l.path, err)
	}
	return func() { fl.Close() }, nil // Close unlocks
}

// safely runs fn, turning a panic (bbolt asserts on corrupt pages) and a
// memory fault on the mapped file into an errCorrupt. fn's deferred
// db.Close still runs: bbolt's View and Update roll the transaction back
// on a panic first.
func safely(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corruptf("reading the store failed: %v", r)
		}
	}()
	return fn()
}

// encodeEntry returns the stored value of e (see Seal).
func encodeEntry[S any](key string, e *Entry[S]) ([]byte, error) {
	return Seal(key, e)
}

// decodeEntry checks and decodes a stored value; every failure is an
// errCorrupt.
func decodeEntry[S any](key string, v []byte) (*Entry[S], error) {
	var e Entry[S]
	if err := Unseal(key, v, &e); err != nil {
		return nil, corruptf("entry %s: %v", key, err)
	}
	if e.Pinned() != key {
		return nil, corruptf("entry %s names %s", key, e.Pinned())
	}
	return &e, nil
}
