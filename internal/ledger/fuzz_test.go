package ledger

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Moved from verify/fuzz_test.go with the store.

// FuzzDecodeLedgerEntry checks the ledger's value decoder on arbitrary
// stored bytes (a ledger file is only as trustworthy as its directory, and
// a damaged one must be detected, never trusted): it never panics, every
// failure is "corrupt" (the ledger is then rebuilt), and an entry it
// accepts is the one stored under its key and survives a round trip.
func FuzzDecodeLedgerEntry(f *testing.F) {
	e := testEntry(1, now.Add(time.Hour))
	key := e.Pinned()
	good, err := encodeEntry(key, &e)
	if err != nil {
		f.Fatal(err)
	}
	other := testEntry(2, now.Add(time.Hour))
	otherValue, _ := encodeEntry(other.Pinned(), &other)
	sum := Checksum(key, []byte("{not json"))
	f.Add(key, good)
	f.Add(key, otherValue)                             // another entry's value under this key
	f.Add(other.Pinned(), good)                        // this value under another key
	f.Add(key, append(sum[:], []byte("{not json")...)) // checksum right, JSON wrong
	f.Add(key, good[:len(good)-1])
	f.Add(key, good[:31])
	f.Add(key, []byte{})
	f.Add("", []byte("x"))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		e, err := decodeEntry[testSigner](key, value)
		if err != nil {
			if e != nil || !isCorrupt(err) {
				t.Fatalf("decodeEntry(%q, %q) = %v, %v; want nil and a corrupt error", key, value, e, err)
			}
			return
		}
		if e.Pinned() != key {
			t.Fatalf("decodeEntry(%q) = entry for %s", key, e.Pinned())
		}
		again, err := encodeEntry(key, e)
		if err != nil {
			t.Fatalf("encodeEntry(decoded %q) = %v", key, err)
		}
		back, err := decodeEntry[testSigner](key, again)
		if err != nil {
			t.Fatalf("decodeEntry(encodeEntry(%+v)) = %v", e, err)
		}
		if diff := cmp.Diff(e, back); diff != "" {
			t.Fatalf("ledger entry round trip (-first +second):\n%s", diff)
		}
	})
}
