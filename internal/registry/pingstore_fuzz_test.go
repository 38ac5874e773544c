package registry

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Moved from verify/fuzz_test.go with the ping store.

var fuzzNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// FuzzDecodePingEntry checks the decoder of the registry pings the ledger
// remembers, on arbitrary stored bytes: it never panics, and an entry it
// accepts is the one stored under its key (scheme and registry as the key
// says) and survives a round trip. What an accepted outcome may say is
// checked again by the ping cache before use (PingOutcome.valid,
// internal/registry TestPingCacheCorruptEntry).
func FuzzDecodePingEntry(f *testing.F) {
	key := pingKey("http", "127.0.0.1:5000")
	good, err := encodePingEntry(key, &pingEntry{Registry: "127.0.0.1:5000", Scheme: "http", PingOutcome: PingOutcome{
		Status: 401, Challenges: []string{`Bearer realm="https://auth.example/token",service="registry"`},
		RecordedAt: fuzzNow, Expires: fuzzNow.Add(time.Hour)}})
	if err != nil {
		f.Fatal(err)
	}
	other, _ := encodePingEntry(pingKey("https", "ghcr.io"), &pingEntry{Registry: "ghcr.io", Scheme: "https", PingOutcome: PingOutcome{Status: 200, RecordedAt: fuzzNow, Expires: fuzzNow.Add(time.Hour)}})
	f.Add(key, good)
	f.Add(key, other)                               // another registry's value under this key
	f.Add(pingKey("https", "127.0.0.1:5000"), good) // this value under the other scheme
	f.Add(key, good[:len(good)-1])
	f.Add(key, good[:31])
	f.Add(key, []byte{})
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		e, err := decodePingEntry(key, value)
		if err != nil {
			if e != nil {
				t.Fatalf("decodePingEntry(%q, %q) = %+v and error %v", key, value, e, err)
			}
			return
		}
		if pingKey(e.Scheme, e.Registry) != key {
			t.Fatalf("decodePingEntry(%q) = entry for %s", key, pingKey(e.Scheme, e.Registry))
		}
		again, err := encodePingEntry(key, e)
		if err != nil {
			t.Fatalf("encodePingEntry(decoded %q) = %v", key, err)
		}
		back, err := decodePingEntry(key, again)
		if err != nil {
			t.Fatalf("decodePingEntry(encodePingEntry(%+v)) = %v", e, err)
		}
		if diff := cmp.Diff(e, back); diff != "" {
			t.Fatalf("ping entry round trip (-first +second):\n%s", diff)
		}
	})
}
