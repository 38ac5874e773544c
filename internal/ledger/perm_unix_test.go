//go:build unix

package ledger

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLedgerOwnerAndDirectory: a ledger another user could have written is
// refused, with an error naming the path and why — not only a file or
// directory whose mode lets group or others write, but a file or directory
// owned by another user (not root, not this user), and a sticky
// world-writable directory (/tmp-like: others create files in it, and a
// ledger file not there yet could be theirs). Nothing is created in a
// refused directory.
func TestLedgerOwnerAndDirectory(t *testing.T) {
	const nobody = 65534
	ctx := context.Background()
	tests := []struct {
		name  string
		root  bool // needs to chown to another user
		setup func(t *testing.T, l *testStore)
		want  string
	}{
		{
			name: "sticky world-writable directory",
			setup: func(t *testing.T, l *testStore) {
				chmod(t, filepath.Dir(l.Path()), 0o777|os.ModeSticky)
			},
			want: "ledger directory " + "DIR" + " is writable by group or others",
		},
		{
			name: "group-writable directory",
			setup: func(t *testing.T, l *testStore) {
				chmod(t, filepath.Dir(l.Path()), 0o770)
			},
			want: "ledger directory DIR is writable by group or others",
		},
		{
			name: "group-writable file",
			setup: func(t *testing.T, l *testStore) {
				chmod(t, l.Path(), 0o620)
			},
			want: "ledger FILE is writable by group or others",
		},
		{
			name: "file owned by another user",
			root: true,
			setup: func(t *testing.T, l *testStore) {
				chown(t, l.Path(), nobody)
			},
			want: "ledger FILE is owned by another user (uid 65534)",
		},
		{
			name: "directory owned by another user",
			root: true,
			setup: func(t *testing.T, l *testStore) {
				chown(t, filepath.Dir(l.Path()), nobody)
			},
			want: "ledger directory DIR is owned by another user (uid 65534)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root to give a file to another user")
			}
			l := newLedger(t)
			e := testEntry(1, now.Add(time.Hour))
			if err := l.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, l)
			want := strings.NewReplacer("DIR", filepath.Dir(l.Path()), "FILE", l.Path()).Replace(tt.want)
			if got, err := l.Lookup(ctx, e.Repository, e.Digest); got != nil || err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Lookup = %v, %v; want nil and an error containing %q", got, err, want)
			}
			if err := l.Record(ctx, testEntry(2, now.Add(time.Hour))); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Record = %v; want an error containing %q", err, want)
			}
		})
	}

	// A refused directory gets no ledger file (nor lock file) of ours.
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, dir, 0o777|os.ModeSticky)
	l, err := Open[testSigner](filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Record(ctx, testEntry(1, now.Add(time.Hour))); err == nil || !strings.Contains(err.Error(), "ledger directory "+dir) {
		t.Errorf("Record in a sticky world-writable directory = %v; want refused", err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Errorf("the refused directory holds %v; want nothing of the ledger's", names)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(path, 0o700) })
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chown(path, os.Geteuid(), -1) })
}
