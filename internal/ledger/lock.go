package ledger

// Locking and permissions: the lock on PATH.lock that processes share, and
// the owner and mode checks on the file and its directory (perm_*.go).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

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
