package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Moved from verify/ledger_test.go with the store. testSigner stands for
// what verify stores of a signature (verify.Signer): the store only
// encodes it.

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

type testSigner struct {
	Builder     string            `json:"builder"`
	KeyID       string            `json:"keyId"`
	Format      string            `json:"format"`
	SignedAt    string            `json:"signedAt"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type testStore = Store[testSigner]

func newLedger(t testing.TB) *testStore {
	t.Helper()
	l, err := Open[testSigner](filepath.Join(t.TempDir(), "trustcache", "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testEntry(i int, expires time.Time) Entry[testSigner] {
	return Entry[testSigner]{
		Repository: "registry.example/team/cache",
		Digest:     fmt.Sprintf("sha256:%064x", i),
		Signers:    []testSigner{{Builder: "ci", KeyID: "sha256:abc", Format: "legacy", SignedAt: "2026-11-30T11:00:00Z", Annotations: map[string]string{"ref": "refs/heads/main"}}},
		Policy:     "sha256:policy",
		VerifiedAt: now,
		Expires:    expires,
	}
}

// TestLedgerConcurrent runs 8 writers and readers at once, each with its
// own Store on one file, as 8 processes would: nothing is lost and no
// operation fails. Each waits up to a minute for the lock (not the default
// 3 s): on a loaded machine 8×20 exclusive holds queue for longer, and a
// wait that times out is not what this test is about; a lock that is never
// released still fails it.
func TestLedgerConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trustcache", "ledger.db")
	const workers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*3)
	for w := range workers {
		wg.Go(func() {
			l, err := Open[testSigner](path, WithLockTimeout(time.Minute))
			if err != nil {
				errs <- err
				return
			}
			defer l.Close()
			ctx := context.Background()
			for i := range each {
				e := testEntry(w*each+i, now.Add(time.Hour))
				if err := l.Record(ctx, e); err != nil {
					errs <- fmt.Errorf("Record: %w", err)
					continue
				}
				got, err := l.Lookup(ctx, e.Repository, e.Digest)
				if err != nil || got == nil || got.Digest != e.Digest {
					errs <- fmt.Errorf("Lookup after Record = %v, %v", got, err)
				}
				if i%5 == 0 {
					if _, err := l.Prune(ctx, now, false); err != nil {
						errs <- fmt.Errorf("Prune: %w", err)
					}
					if _, err := l.Entries(ctx); err != nil {
						errs <- fmt.Errorf("Entries: %w", err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l, err := Open[testSigner](path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := l.Entries(context.Background())
	if err != nil || len(entries) != workers*each {
		t.Errorf("Entries = %d, %v; want %d", len(entries), err, workers*each)
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 0 {
		t.Errorf("concurrent use moved the ledger aside: %v", aside)
	}
}

func TestLedgerPrune(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	// Recorded last, and before they expired: Record prunes nothing.
	for i := range 5 {
		e := testEntry(i, now.Add(time.Hour))
		if i >= 3 {
			e.Expires = now.Add(-time.Second)
			e.VerifiedAt = now.Add(-time.Hour)
		}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Prune(ctx, now, false); n != 2 || err != nil {
		t.Errorf("Prune(expired) = %d, %v; want 2, nil", n, err)
	}
	entries, _ := l.Entries(ctx)
	if len(entries) != 3 {
		t.Errorf("Entries after Prune = %d; want 3", len(entries))
	}
	if diff := cmp.Diff(testEntry(0, now.Add(time.Hour)), entries[0]); diff != "" {
		t.Errorf("entry after a round trip (-want +got):\n%s", diff)
	}
	if n, err := l.Prune(ctx, now, true); n != 3 || err != nil {
		t.Errorf("Prune(all) = %d, %v; want 3, nil", n, err)
	}
	if entries, _ := l.Entries(ctx); len(entries) != 0 {
		t.Errorf("Entries after Prune(all) = %d; want 0", len(entries))
	}
}

// TestLedgerRecordPrunes: recording removes the entries expired by then,
// so the ledger does not grow without a prune.
func TestLedgerRecordPrunes(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	for i := range 3 {
		if err := l.Record(ctx, testEntry(i, now.Add(time.Duration(i+1)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	// Entry 0 is recorded again with a later expiry: it must survive.
	if err := l.Record(ctx, testEntry(0, now.Add(10*time.Hour))); err != nil {
		t.Fatal(err)
	}
	later := testEntry(3, now.Add(20*time.Hour))
	later.VerifiedAt = now.Add(2 * time.Hour) // entries 1 (now+2h) has expired by then, 2 (now+3h) not
	if err := l.Record(ctx, later); err != nil {
		t.Fatal(err)
	}
	entries, err := l.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Digest[len(e.Digest)-1:])
	}
	if diff := cmp.Diff([]string{"0", "2", "3"}, got); diff != "" {
		t.Errorf("entries after Record (-want +got):\n%s", diff)
	}
}

func TestLedgerFiles(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	if err := l.Record(ctx, testEntry(1, now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{filepath.Dir(l.Path()): 0o700, l.Path(): 0o600, l.Path() + ".lock": 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}

	// A ledger others may write is not used.
	if err := os.Chmod(l.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	if e, err := l.Lookup(ctx, testEntry(1, now).Repository, testEntry(1, now).Digest); e != nil || err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("Lookup in a world-writable ledger = %v, %v; want nil and an error", e, err)
	}
	if err := l.Record(ctx, testEntry(2, now.Add(time.Hour))); err == nil {
		t.Errorf("Record in a world-writable ledger succeeded")
	}
	os.Chmod(l.Path(), 0o600)

	l.Close()
	if _, err := l.Lookup(ctx, "r", "d"); !errors.Is(err, ErrClosed) {
		t.Errorf("Lookup after Close = %v; want ErrClosed", err)
	}
}

// TestLockTimeout: an operation waits for another process's hold on the
// file at most the lock timeout, then fails (a lookup is a miss, a write is
// skipped), naming the file.
func TestLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trustcache", "ledger.db")
	holder, err := Open[testSigner](path)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := holder.lock(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	l, err := Open[testSigner](path, WithLockTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e, err := l.Lookup(context.Background(), "r", "d")
	if e != nil || err == nil || !strings.Contains(err.Error(), "locking ledger "+path) {
		t.Errorf("Lookup while another holds the lock = %v, %v; want nil and a locking error naming the file", e, err)
	}
	if err := l.Record(context.Background(), testEntry(1, now.Add(time.Hour))); err == nil {
		t.Errorf("Record while another holds the lock succeeded")
	}
	// Under the default (3 s) the first alone would take longer.
	if d := time.Since(start); d >= DefaultLockTimeout {
		t.Errorf("two operations under a 200ms lock timeout took %s; the option was not applied", d)
	}
}

// TestUpdateOwnBuckets: another concern cannot write over the store's own
// buckets through Update.
func TestUpdateOwnBuckets(t *testing.T) {
	l := newLedger(t)
	for _, b := range []string{EntriesBucket, expiryBucket} {
		if err := l.Update(context.Background(), b, func(Bucket) error { return nil }); err == nil {
			t.Errorf("Update(%s) succeeded; want an error", b)
		}
	}
}
