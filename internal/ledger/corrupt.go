package ledger

// Corruption: what the store found wrong in its file, and the rebuild
// that moves a corrupt file aside and starts an empty ledger.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

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
