package ledger

// Transactions on the file: each opens it, runs one bbolt transaction
// and closes it again, under the lock the caller took (lock.go).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

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
