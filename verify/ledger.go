package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
)

// DefaultLedgerTTL is how long a ledger entry stays valid when the scope
// sets no maxAge: a digest is verified against the registry again at least
// this often.
const DefaultLedgerTTL = 24 * time.Hour

// ledgerLockTimeout bounds the wait for another process's hold on the
// ledger. Operations hold it for milliseconds; a lookup that cannot get it
// in time is a miss, a write that cannot is skipped.
const ledgerLockTimeout = 3 * time.Second

// ledgerBucket holds the entries, ledgerExpiryBucket indexes them by
// expiry. A later format gets other buckets, so that binaries of
// different versions can share one file.
const (
	ledgerBucket       = "entries.v1"
	ledgerExpiryBucket = "expiry.v1" // expiryKey → nothing
	ledgerPingBucket   = "pings.v1"  // pingKey → registry ping outcome (see ledgerPings)
)

// ErrLedgerClosed is returned by the methods of a closed Ledger.
var ErrLedgerClosed = errors.New("ledger is closed")

// LedgerCorruptError reports a ledger file that was not a valid store: not
// a bbolt file, truncated, or holding an entry that does not decode or
// whose checksum does not match. Nothing in it was trusted; it was moved
// aside to MovedTo and an empty ledger took its place.
type LedgerCorruptError struct {
	Path    string
	MovedTo string // "" when moving it aside failed too
	Err     error
}

func (e *LedgerCorruptError) Error() string {
	if e.MovedTo == "" {
		return fmt.Sprintf("ledger %s is corrupt: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("ledger %s was corrupt (%v): moved aside to %s, a new one was created", e.Path, e.Err, e.MovedTo)
}

func (e *LedgerCorruptError) Unwrap() error { return e.Err }

// errCorrupt marks what the ledger found wrong inside its file.
type errCorrupt struct{ msg string }

func (e errCorrupt) Error() string { return e.msg }

func corruptf(format string, args ...any) error { return errCorrupt{fmt.Sprintf(format, args...)} }

func isCorrupt(err error) bool {
	var c errCorrupt
	return errors.As(err, &c)
}

// LedgerEntry is one digest this host verified as trusted.
type LedgerEntry struct {
	Repository string   `json:"repository"` // canonical
	Digest     string   `json:"digest"`
	Signers    []Signer `json:"signers"` // the signatures that counted
	// Policy is the fingerprint of the policy and scope the digest was
	// verified under (Policy.Fingerprint); the entry serves only lookups
	// under the same fingerprint.
	Policy string `json:"policy"`
	// PolicyDigest is the digest of the policy file, for display.
	PolicyDigest string    `json:"policyDigest,omitempty"`
	VerifiedAt   time.Time `json:"verifiedAt"`
	Expires      time.Time `json:"expires"`
}

// Pinned returns REPOSITORY@DIGEST, the entry's key.
func (e *LedgerEntry) Pinned() string { return e.Repository + "@" + e.Digest }

// Expired reports whether the entry has expired at now.
func (e *LedgerEntry) Expired(now time.Time) bool { return !now.Before(e.Expires) }

// Valid reports whether the entry may stand in for a verification at now
// under the policy fingerprint: same fingerprint, not expired, and not
// recorded in the future (a clock set back).
func (e *LedgerEntry) Valid(fingerprint string, now time.Time) bool {
	return e.Policy == fingerprint && !e.Expired(now) && !e.VerifiedAt.After(now.Add(ClockSkew)) && len(e.Signers) > 0
}

// Ledger is the on-disk store of digests this host verified as trusted,
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
// and 0600, and a ledger file or directory writable by group or others is
// refused.
type Ledger struct {
	path   string
	closed atomic.Bool
}

// OpenLedger returns the ledger at path, creating its directory (0700) if
// needed. The file itself is created (0600) by the first write.
func OpenLedger(path string) (*Ledger, error) {
	if path == "" {
		return nil, errors.New("opening ledger: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("opening ledger: %w", err)
	}
	return &Ledger{path: path}, nil
}

// Path returns the ledger file's path.
func (l *Ledger) Path() string { return l.path }

// Close closes the ledger. The file is not held open between operations,
// so Close only makes further calls fail with ErrLedgerClosed.
func (l *Ledger) Close() error {
	l.closed.Store(true)
	return nil
}

// Lookup returns the entry for repository@digest, or nil when there is
// none. It does not judge the entry: see LedgerEntry.Valid. A corrupt
// ledger is rebuilt, and Lookup returns nil and a *LedgerCorruptError.
func (l *Ledger) Lookup(ctx context.Context, repository, digest string) (*LedgerEntry, error) {
	key := repository + "@" + digest
	var found *LedgerEntry
	err := l.read(ctx, func(b *bolt.Bucket) error {
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		e, err := decodeLedgerEntry(key, v)
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
// *LedgerCorruptError.
func (l *Ledger) Entries(ctx context.Context) ([]LedgerEntry, error) {
	var out []LedgerEntry
	err := l.read(ctx, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			e, err := decodeLedgerEntry(string(k), v)
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
func (l *Ledger) Record(ctx context.Context, e LedgerEntry) error {
	if e.Repository == "" || e.Digest == "" || e.Policy == "" || len(e.Signers) == 0 {
		return errors.New("recording in the ledger: entry without repository, digest, policy or signers")
	}
	key := e.Pinned()
	v, err := encodeLedgerEntry(key, &e)
	if err != nil {
		return fmt.Errorf("recording %s in the ledger: %w", key, err)
	}
	return l.write(ctx, func(tx *bolt.Tx) error {
		b, idx, err := entryBuckets(tx)
		if err != nil {
			return err
		}
		if old := b.Get([]byte(key)); old != nil {
			oe, err := decodeLedgerEntry(key, old)
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
		_, err = pruneExpired(b, idx, e.VerifiedAt)
		return err
	})
}

// Prune removes the entries expired at now, or every entry when all is
// set, and returns how many it removed. It reads every entry: one that
// does not decode makes the ledger corrupt (see LedgerCorruptError). The
// remembered registry pings expired at now (all: every one) go too,
// uncounted.
func (l *Ledger) Prune(ctx context.Context, now time.Time, all bool) (int, error) {
	n := 0
	err := l.write(ctx, func(tx *bolt.Tx) error {
		b, idx, err := entryBuckets(tx)
		if err != nil {
			return err
		}
		if err := prunePings(tx, now, all); err != nil {
			return err
		}
		var drop []*LedgerEntry
		err = b.ForEach(func(k, v []byte) error {
			e, err := decodeLedgerEntry(string(k), v)
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
		_, err = pruneExpired(b, idx, now)
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
func pruneExpired(b, idx *bolt.Bucket, now time.Time) (int, error) {
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
			if e, err := decodeLedgerEntry(string(key), v); err != nil || e.Expired(now) {
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
func (l *Ledger) read(ctx context.Context, fn func(*bolt.Bucket) error) error {
	return l.readBucket(ctx, ledgerBucket, fn)
}

// readBucket is read on the named bucket.
func (l *Ledger) readBucket(ctx context.Context, bucket string, fn func(*bolt.Bucket) error) error {
	if l.closed.Load() {
		return ErrLedgerClosed
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
// aside, and fn runs again on a new one; the *LedgerCorruptError is
// returned after.
func (l *Ledger) write(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if l.closed.Load() {
		return ErrLedgerClosed
	}
	unlock, err := l.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	err = l.view(false, ledgerBucket, nil)
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

// update opens the file read-write (creating it) and runs fn in one
// transaction. The caller holds the exclusive lock.
func (l *Ledger) update(fn func(tx *bolt.Tx) error) error {
	return safely(func() error {
		db, err := bolt.Open(l.path, 0o600, &bolt.Options{Timeout: ledgerLockTimeout})
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
	if entries, err = tx.CreateBucketIfNotExists([]byte(ledgerBucket)); err != nil {
		return nil, nil, err
	}
	if expiry, err = tx.CreateBucketIfNotExists([]byte(ledgerExpiryBucket)); err != nil {
		return nil, nil, err
	}
	return entries, expiry, nil
}

// rebuild takes the exclusive lock, checks the file again (another
// process may have rebuilt it meanwhile) and, if it is still corrupt,
// moves it aside and creates an empty ledger. It returns the
// *LedgerCorruptError, or nil when the file turned out sound.
func (l *Ledger) rebuild(ctx context.Context) error {
	unlock, err := l.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	err = l.view(true, ledgerBucket, func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			_, err := decodeLedgerEntry(string(k), v)
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
func (l *Ledger) moveAside(cause error) *LedgerCorruptError {
	e := &LedgerCorruptError{Path: l.path, Err: cause}
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
func (l *Ledger) view(full bool, bucket string, fn func(*bolt.Bucket) error) error {
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
		db, err := bolt.Open(l.path, 0o600, &bolt.Options{ReadOnly: true, Timeout: ledgerLockTimeout})
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

// checkPermissions refuses a ledger that others could have written.
func (l *Ledger) checkPermissions(fi fs.FileInfo) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("ledger %s is writable by group or others (mode %v); not using it", l.path, fi.Mode().Perm())
	}
	dir := filepath.Dir(l.path)
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("reading ledger: %w", err)
	}
	if di.Mode().Perm()&0o022 != 0 && di.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("ledger directory %s is writable by group or others (mode %v); not using it", dir, di.Mode().Perm())
	}
	return nil
}

// lock takes the lock on PATH.lock, shared or exclusive, waiting at most
// ledgerLockTimeout. Each call opens its own descriptor, so that two
// Ledger values (or goroutines) in one process exclude each other like
// two processes do.
func (l *Ledger) lock(ctx context.Context, exclusive bool) (unlock func(), err error) {
	fl := flock.New(l.path+".lock", flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	ctx, cancel := context.WithTimeout(ctx, ledgerLockTimeout)
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

// encodeLedgerEntry returns the stored value of e (see seal).
func encodeLedgerEntry(key string, e *LedgerEntry) ([]byte, error) {
	return seal(key, e)
}

// decodeLedgerEntry checks and decodes a stored value; every failure is an
// errCorrupt.
func decodeLedgerEntry(key string, v []byte) (*LedgerEntry, error) {
	var e LedgerEntry
	if err := unseal(key, v, &e); err != nil {
		return nil, corruptf("entry %s: %v", key, err)
	}
	if e.Pinned() != key {
		return nil, corruptf("entry %s names %s", key, e.Pinned())
	}
	return &e, nil
}

// seal returns the value stored under key for v: the SHA-256 of key, a
// zero byte and v's JSON, followed by that JSON. The checksum binds the
// value to its key, so a value copied under another key does not decode.
func seal(key string, v any) ([]byte, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	sum := ledgerChecksum(key, payload)
	return append(sum[:], payload...), nil
}

// unseal checks a value seal stored under key and decodes its JSON into v.
func unseal(key string, stored []byte, v any) error {
	if len(stored) < sha256.Size {
		return errors.New("value too short")
	}
	payload := stored[sha256.Size:]
	sum := ledgerChecksum(key, payload)
	if !bytes.Equal(sum[:], stored[:sha256.Size]) {
		return errors.New("checksum mismatch")
	}
	return json.Unmarshal(payload, v)
}

func ledgerChecksum(key string, payload []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(payload)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// Registry pings (internal/registry/pingcache.go): the outcome of
// go-containerregistry's GET /v2/ for each registry and scheme, so that a
// new process verifying a tag whose verdict is in the ledger makes one
// request (the HEAD), not two. They are stored here, in their own bucket,
// for the ledger's locking and corruption handling; only a status code and
// the WWW-Authenticate challenges, never credentials or tokens. They serve
// the verifier only when it has a ledger (not with --no-ledger).

// ledgerPings is the ledger as a registry.PingStore.
type ledgerPings struct {
	l   *Ledger
	now func() time.Time
}

// pingSchemes are the schemes a ping is stored under.
var pingSchemes = []string{"https", "http"}

// pingKey is the key of a stored ping: SCHEME://HOST.
func pingKey(scheme, host string) string { return scheme + "://" + host }

// pingEntry is a stored ping outcome and what it is for.
type pingEntry struct {
	Registry string `json:"registry"` // host[:port]
	Scheme   string `json:"scheme"`
	registry.PingOutcome
}

// LoadPings returns the outcomes stored for host. An entry that does not
// decode is left out, and reported by the error (registry.PingCache then
// writes over it): unlike a verdict entry, it does not make the file
// corrupt. A corrupt file is rebuilt as Lookup does.
func (p ledgerPings) LoadPings(ctx context.Context, host string) (map[string]registry.PingOutcome, error) {
	out := map[string]registry.PingOutcome{}
	var bad []error
	err := p.l.readBucket(ctx, ledgerPingBucket, func(b *bolt.Bucket) error {
		for _, scheme := range pingSchemes {
			key := pingKey(scheme, host)
			v := b.Get([]byte(key))
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
func (p ledgerPings) SavePings(ctx context.Context, host string, outcomes map[string]registry.PingOutcome) error {
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
	return p.l.write(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(ledgerPingBucket))
		if err != nil {
			return err
		}
		for _, scheme := range pingSchemes {
			if err := b.Delete([]byte(pingKey(scheme, host))); err != nil {
				return err
			}
		}
		for k, v := range vals {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return prunePings(tx, p.now(), false)
	})
}

// prunePings removes the stored pings expired at now (all: every one) and
// those that do not decode. tx is writable.
func prunePings(tx *bolt.Tx, now time.Time, all bool) error {
	b := tx.Bucket([]byte(ledgerPingBucket))
	if b == nil {
		return nil
	}
	var drop [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if e, err := decodePingEntry(string(k), v); all || err != nil || !now.Before(e.Expires) {
			drop = append(drop, slices.Clone(k))
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
// entry's (see seal).
func encodePingEntry(key string, e *pingEntry) ([]byte, error) {
	return seal(key, e)
}

// decodePingEntry checks and decodes a stored ping.
func decodePingEntry(key string, v []byte) (*pingEntry, error) {
	var e pingEntry
	if err := unseal(key, v, &e); err != nil {
		return nil, fmt.Errorf("ping %s: %v", key, err)
	}
	if pingKey(e.Scheme, e.Registry) != key {
		return nil, fmt.Errorf("ping %s names %s", key, pingKey(e.Scheme, e.Registry))
	}
	return &e, nil
}

// Fingerprint identifies everything a verdict under scope depends on: the
// policy file's digest, every builder's name and key ids (key files are
// outside the policy file), the revoked key ids and the scope's settings.
// Any change to the policy, its keys or its revocations changes it, and
// ledger entries recorded under the old one stop matching.
func (p *Policy) Fingerprint(scope *Scope) string {
	h := sha256.New()
	field := func(parts ...string) {
		for _, s := range parts {
			var n [binary.MaxVarintLen64]byte
			h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
			h.Write([]byte(s))
		}
	}
	field("trustcache ledger fingerprint v1", p.Digest, strconv.Itoa(p.Version))
	for _, b := range p.Builders {
		field("builder", b.Name)
		for _, k := range b.Keys {
			field("key", k.ID)
		}
	}
	revoked := slices.Clone(p.Revoked)
	sort.Strings(revoked)
	for _, id := range revoked {
		field("revoked", id)
	}
	if scope != nil {
		field("scope")
		field(scope.Repositories...)
		field("builders")
		field(scope.Builders...)
		field("threshold", strconv.Itoa(scope.Threshold), "level", string(scope.Level),
			"maxAge", scope.MaxAge.String(), "acceptUnboundBundles", strconv.FormatBool(scope.AcceptUnboundBundles))
		names := make([]string, 0, len(scope.Annotations))
		for k := range scope.Annotations {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			field("annotation", k, scope.Annotations[k])
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// WithLedger makes the verifier consult l before fetching signatures and
// record every fresh trusted result in it: a digest verified before under
// the same policy fingerprint, and not expired, is trusted again without
// its signatures (Result.FromLedger). Explain never takes a verdict from
// the ledger.
// The verifier also remembers each registry's ping in l for
// registry.PingTTL, so that a new process's first request to a registry
// is not preceded by it (see ledgerPings). Default: no ledger.
func WithLedger(l *Ledger) Option {
	return func(v *Verifier) { v.ledger = l }
}

// fromLedger fills res from a valid ledger entry for its digest and
// reports whether there was one. res has its repository, digest and scope
// settings already.
func (v *Verifier) fromLedger(ctx context.Context, res *Result, scope *Scope) bool {
	e, err := v.ledger.Lookup(ctx, res.Repository, res.Digest)
	if err != nil || e == nil || !e.Valid(v.policy.Fingerprint(scope), v.now()) || len(e.Signers) < scope.Threshold {
		return false
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
func (v *Verifier) remember(ctx context.Context, res *Result, scope *Scope) {
	if !res.Trusted || res.Verdict != VerdictTrusted || res.FromLedger || res.Digest == "" {
		return
	}
	now := v.now()
	e := LedgerEntry{
		Repository:   res.Repository,
		Digest:       res.Digest,
		Signers:      res.Signers,
		Policy:       v.policy.Fingerprint(scope),
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
func ledgerExpiry(scope *Scope, signers []Signer, now time.Time) time.Time {
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
