package verify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/docker-trustcache/docker-trustcache/internal/ledger"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// newLedger opens a ledger in a fresh directory, as the plugin does in the
// docker config dir.
func newLedger(t testing.TB) *Ledger {
	t.Helper()
	l, err := OpenLedger(filepath.Join(t.TempDir(), "trustcache", "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// ledgerRun verifies ref with a new verifier (as a new process would) and
// returns the result and the registry requests it made.
func ledgerRun(t *testing.T, f *fixture, v *Verifier, ref string) (*Result, int64) {
	t.Helper()
	before := served(f.reg)
	res, err := v.Verify(context.Background(), ref)
	if err != nil {
		t.Fatalf("Verify(%q) error: %v", ref, err)
	}
	return res, served(f.reg) - before
}

func ledgerVerifier(p *trustpolicy.Policy, l *Ledger, at time.Time) *Verifier {
	return New(p, WithClock(func() time.Time { return at }), WithLedger(l))
}

// TestLedgerRoundTrips counts registry requests cold and warm. A new
// verifier stands for a new process: its first request to a registry is
// preceded by the registry ping (the auth handshake), whose outcome the
// ledger remembers for registry.PingTTL, so a warm tag costs the HEAD
// alone, as it does for a verifier that has talked to the repository
// already; a digest reference costs nothing.
func TestLedgerRoundTrips(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now.Add(-time.Hour), map[string]string{"ref": "refs/heads/main"})
	l := newLedger(t)
	tag, dig := repo.Tag("main").String(), repo.Digest(d.String()).String()

	v := ledgerVerifier(p, l, now)
	cold, n := ledgerRun(t, f, v, tag)
	wantVerdict(t, cold, VerdictTrusted, "")
	if cold.FromLedger || n != 4 {
		t.Errorf("cold Verify(%q): FromLedger %v, %d requests; want false, 4 (ping, HEAD, .sig with the payload embedded, the tag's head record)", tag, cold.FromLedger, n)
	}

	for _, c := range []struct {
		name string
		v    *Verifier
		ref  string
		want int64
	}{
		// Within registry.PingTTL of the cold run's ping (see
		// TestLedgerPingExpiry for after it).
		{"tag, new verifier (HEAD; the ping is remembered)", ledgerVerifier(p, l, now.Add(30*time.Minute)), tag, 1},
		{"tag, same verifier (HEAD)", v, tag, 1},
		{"digest, new verifier", ledgerVerifier(p, l, now.Add(time.Hour)), dig, 0},
		{"digest, same verifier", v, dig, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			warm, n := ledgerRun(t, f, c.v, c.ref)
			wantVerdict(t, warm, VerdictTrusted, "verified before on this host (ledger), until ")
			if !warm.FromLedger {
				t.Errorf("warm Verify(%q).FromLedger = false; want true", c.ref)
			}
			if n != c.want {
				t.Errorf("warm Verify(%q): %d requests; want %d", c.ref, n, c.want)
			}
			if warm.Digest != d.String() || warm.Repository != cold.Repository {
				t.Errorf("warm Verify(%q) = %s@%s; want %s@%s", c.ref, warm.Repository, warm.Digest, cold.Repository, d)
			}
			if diff := cmp.Diff(cold.Signers, warm.Signers); diff != "" {
				t.Errorf("warm Verify(%q) signers differ from the cold ones (-cold +warm):\n%s", c.ref, diff)
			}
		})
	}

	// Explain reports every rule: it never answers from the ledger.
	res, err := ledgerVerifier(p, l, now).Explain(context.Background(), tag)
	if err != nil || res.FromLedger || len(res.Checks) == 0 || !res.Trusted {
		t.Errorf("Explain(%q) = FromLedger %v, %d checks, trusted %v, %v; want a fresh verification", tag, res.FromLedger, len(res.Checks), res.Trusted, err)
	}
}

// TestLedgerInvalidation changes the policy, its keys or its revocations
// after a trusted verdict: the ledger entry must not serve the next one.
func TestLedgerInvalidation(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(t *testing.T, f *fixture) *trustpolicy.Policy
		want   Verdict
	}{
		{"same policy (control)", func(t *testing.T, f *fixture) *trustpolicy.Policy {
			return f.policy(t, "    maxAge: 720h", "")
		}, ""},
		{"maxAge lowered", func(t *testing.T, f *fixture) *trustpolicy.Policy {
			return f.policy(t, "    maxAge: 48h", "")
		}, VerdictTrusted},
		{"another key's file replaced, policy file unchanged", func(t *testing.T, f *fixture) *trustpolicy.Policy {
			newKey(t, f.dir, "ci2")
			return f.policy(t, "    maxAge: 720h", "")
		}, VerdictTrusted},
		{"other key revoked", func(t *testing.T, f *fixture) *trustpolicy.Policy {
			return f.policy(t, "    maxAge: 720h", "revoked: ["+f.ci2.id(t)+"]")
		}, VerdictTrusted},
		{"signing key revoked", func(t *testing.T, f *fixture) *trustpolicy.Policy {
			return f.policy(t, "    maxAge: 720h", "revoked: ["+f.ci.id(t)+"]")
		}, VerdictUntrusted},
		{"threshold raised", func(t *testing.T, f *fixture) *trustpolicy.Policy {
			return f.policy(t, "    maxAge: 720h\n    threshold: 2", "")
		}, VerdictUntrusted},
		{"a comment added", func(t *testing.T, f *fixture) *trustpolicy.Policy {
			return f.policy(t, "    maxAge: 720h", "# reviewed")
		}, VerdictTrusted},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			repo := f.reg.Repo(t, "team/app-cache")
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			sign(t, f.ci, "ci", repo, d, now.Add(-time.Hour), nil)
			l := newLedger(t)
			ref := repo.Digest(d.String()).String()
			if res, _ := ledgerRun(t, f, ledgerVerifier(f.policy(t, "    maxAge: 720h", ""), l, now), ref); !res.Trusted {
				t.Fatalf("first Verify(%q) = %s (%s); want trusted", ref, res.Verdict, res.Reason())
			}
			res, n := ledgerRun(t, f, ledgerVerifier(c.change(t, f), l, now), ref)
			if c.want == "" {
				if !res.FromLedger || n != 0 {
					t.Errorf("Verify(%q) under the same policy: FromLedger %v, %d requests; want true, 0", ref, res.FromLedger, n)
				}
				return
			}
			if res.FromLedger || n == 0 {
				t.Errorf("Verify(%q) after the change: FromLedger %v, %d requests; want a fresh verification", ref, res.FromLedger, n)
			}
			wantVerdict(t, res, c.want, "")
		})
	}
}

func TestLedgerFingerprint(t *testing.T) {
	f := newFixture(t)
	p1 := f.policy(t, "", "")
	p2 := f.policy(t, "", "")
	s1, _ := p1.Match(f.reg.Host + "/team/app-cache")
	s2, _ := p2.Match(f.reg.Host + "/team/app-cache")
	if p1.Fingerprint(s1) != p2.Fingerprint(s2) {
		t.Errorf("Fingerprint differs for the same policy parsed twice")
	}
	other, _ := p1.Match(f.reg.Host + "/team/release-cache")
	if p1.Fingerprint(s1) == p1.Fingerprint(other) {
		t.Errorf("Fingerprint is the same for two scopes")
	}
	if !strings.HasPrefix(p1.Fingerprint(s1), "sha256:") {
		t.Errorf("Fingerprint = %q; want sha256:…", p1.Fingerprint(s1))
	}
}

// TestLedgerExpiry: without maxAge an entry lasts DefaultLedgerTTL; with
// maxAge it lasts until the earliest counted signature gets too old.
func TestLedgerExpiry(t *testing.T) {
	f := newFixture(t)
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now.Add(-10*time.Hour), nil)
	sign(t, f.release, "release", repo, d, now.Add(-time.Hour), nil)
	ref := repo.Digest(d.String()).String()

	t.Run("no maxAge", func(t *testing.T) {
		p := f.policy(t, "", "")
		l := newLedger(t)
		ledgerRun(t, f, ledgerVerifier(p, l, now), ref)
		e, err := l.Lookup(context.Background(), f.reg.Host+"/team/app-cache", d.String())
		if err != nil || e == nil {
			t.Fatalf("Lookup = %v, %v; want the entry", e, err)
		}
		if want := now.Add(DefaultLedgerTTL); !e.Expires.Equal(want) {
			t.Errorf("Expires = %s; want %s (verdict time + DefaultLedgerTTL)", e.Expires, want)
		}
		if res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now.Add(DefaultLedgerTTL-time.Second)), ref); !res.FromLedger {
			t.Errorf("Verify just before expiry: FromLedger false; want true")
		}
		res, n := ledgerRun(t, f, ledgerVerifier(p, l, now.Add(DefaultLedgerTTL)), ref)
		if res.FromLedger || n == 0 || !res.Trusted {
			t.Errorf("Verify at expiry: FromLedger %v, %d requests, trusted %v; want a fresh trusted verification", res.FromLedger, n, res.Trusted)
		}
		// The fresh verdict renewed the entry.
		if res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now.Add(DefaultLedgerTTL+time.Hour)), ref); !res.FromLedger {
			t.Errorf("Verify after renewal: FromLedger false; want true")
		}
	})

	t.Run("maxAge", func(t *testing.T) {
		p := f.policy(t, "    maxAge: 48h", "")
		l := newLedger(t)
		ledgerRun(t, f, ledgerVerifier(p, l, now), ref)
		e, err := l.Lookup(context.Background(), f.reg.Host+"/team/app-cache", d.String())
		if err != nil || e == nil {
			t.Fatalf("Lookup = %v, %v; want the entry", e, err)
		}
		// ci signed 10h ago, release 1h ago: ci's signature is too old first.
		if want := now.Add(38 * time.Hour); !e.Expires.Equal(want) {
			t.Errorf("Expires = %s; want %s (the earliest signedAt + maxAge)", e.Expires, want)
		}
		if res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now.Add(37*time.Hour)), ref); !res.FromLedger {
			t.Errorf("Verify before expiry: FromLedger false; want true")
		}
		res, n := ledgerRun(t, f, ledgerVerifier(p, l, now.Add(38*time.Hour)), ref)
		if res.FromLedger || n == 0 {
			t.Errorf("Verify at expiry: FromLedger %v, %d requests; want a fresh verification", res.FromLedger, n)
		}
		// Only release's signature still counts; at 47h none does.
		res, _ = ledgerRun(t, f, ledgerVerifier(p, l, now.Add(47*time.Hour+time.Second)), ref)
		wantVerdict(t, res, VerdictUntrusted, "older than maxAge")
		if res.FromLedger {
			t.Errorf("Verify after every signature expired came from the ledger")
		}
	})

	t.Run("clock set back", func(t *testing.T) {
		p := f.policy(t, "", "")
		l := newLedger(t)
		ledgerRun(t, f, ledgerVerifier(p, l, now), ref)
		if res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now.Add(-time.Hour)), ref); res.FromLedger {
			t.Errorf("Verify with the clock before the verdict time came from the ledger")
		}
	})
}

// TestLedgerTagMoved: the ledger is keyed by digest, so a tag moved to
// another manifest is verified afresh.
func TestLedgerTagMoved(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now, nil)
	l := newLedger(t)
	tag := repo.Tag("main").String()
	if res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now), tag); !res.Trusted {
		t.Fatalf("Verify(%q) = %s; want trusted", tag, res.Verdict)
	}
	d2 := testreg.PushRandom(t, repo.Tag("main"), 256, 1) // unsigned
	res, n := ledgerRun(t, f, ledgerVerifier(p, l, now), tag)
	wantVerdict(t, res, VerdictUntrusted, "no signatures found")
	if res.FromLedger || res.Digest != d2.String() || n < 3 {
		t.Errorf("Verify(%q) after the tag moved: FromLedger %v, digest %s, %d requests; want a fresh verification of %s", tag, res.FromLedger, res.Digest, n, d2)
	}
}

// TestLedgerRecordsOnlyTrusted: untrusted, inconclusive and audit results
// that are not trusted are never recorded.
func TestLedgerRecordsOnlyTrusted(t *testing.T) {
	f := newFixture(t)
	repo := f.reg.Repo(t, "team/app-cache")
	testreg.PushRandom(t, repo.Tag("unsigned"), 256, 1)
	stranger := testreg.PushRandom(t, repo.Tag("stranger"), 256, 1)
	sign(t, f.rand, "ci", repo, stranger, now, nil)
	flaky := testreg.PushRandom(t, repo.Tag("flaky"), 256, 1)
	sign(t, f.ci, "ci", repo, flaky, now, nil)
	l := newLedger(t)
	for _, p := range []*trustpolicy.Policy{f.policy(t, "", ""), f.policy(t, "    level: audit", "")} {
		v := ledgerVerifier(p, l, now)
		for _, tag := range []string{"unsigned", "stranger"} {
			if res, _ := ledgerRun(t, f, v, repo.Tag(tag).String()); res.Trusted {
				t.Fatalf("Verify(%s) trusted; want not", tag)
			}
		}
	}
	fault := func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, ".sig") {
			http.Error(w, "injected fault", http.StatusForbidden) // not retried, not "not found"
			return true
		}
		return false
	}
	f.reg.SetFault(fault)
	res, _ := ledgerRun(t, f, ledgerVerifier(f.policy(t, "", ""), l, now), repo.Digest(flaky.String()).String())
	wantVerdict(t, res, VerdictInconclusive, "")
	entries, err := l.Entries(context.Background())
	if err != nil || len(entries) != 0 {
		t.Errorf("Entries = %v, %v; want none", entries, err)
	}

	// Audit results that are trusted are recorded, and served.
	f.reg.SetFault(nil)
	audit := f.policy(t, "    level: audit", "")
	ledgerRun(t, f, ledgerVerifier(audit, l, now), repo.Digest(flaky.String()).String())
	res, _ = ledgerRun(t, f, ledgerVerifier(audit, l, now), repo.Digest(flaky.String()).String())
	if !res.FromLedger || res.Level != trustpolicy.LevelAudit {
		t.Errorf("audit Verify: FromLedger %v, level %s; want true, audit", res.FromLedger, res.Level)
	}
}

// rawPut writes a value into the ledger file directly, bypassing the
// checksum.
func rawPut(t *testing.T, path, key string, value []byte) {
	t.Helper()
	rawPutIn(t, path, ledger.EntriesBucket, key, value)
}

// rawPutIn writes a value into bucket of the ledger file directly.
func rawPutIn(t *testing.T, path, bucket, key string, value []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	}); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t *testing.T, path, key string) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	db.View(func(tx *bolt.Tx) error {
		v = append(v, tx.Bucket([]byte(ledger.EntriesBucket)).Get([]byte(key))...)
		return nil
	})
	return v
}

// TestLedgerCorrupt damages the ledger file in each way it can be damaged:
// the verdict comes from a fresh verification, the file is moved aside,
// and a new ledger takes its place.
func TestLedgerCorrupt(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now, nil)
	ref := repo.Digest(d.String()).String()
	key := f.reg.Host + "/team/app-cache@" + d.String()

	garbage := make([]byte, 64<<10)
	rand.Read(garbage)
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"garbage bytes", func(t *testing.T, path string) {
			os.WriteFile(path, garbage, 0o600)
		}},
		{"empty file", func(t *testing.T, path string) {
			os.Truncate(path, 0)
		}},
		{"truncated to one page", func(t *testing.T, path string) {
			os.Truncate(path, int64(os.Getpagesize()))
		}},
		{"truncated to the meta pages", func(t *testing.T, path string) {
			os.Truncate(path, 2*int64(os.Getpagesize()))
		}},
		{"truncated by half", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			os.Truncate(path, fi.Size()/2)
		}},
		{"bad magic", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			for _, off := range []int{16, os.Getpagesize() + 16} { // the magic of both meta pages
				copy(b[off:], "BAD!")
			}
			os.WriteFile(path, b, 0o600)
		}},
		{"data pages overwritten", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			copy(b[2*os.Getpagesize():], garbage) // every page after the two meta pages
			os.WriteFile(path, b, 0o600)
		}},
		{"value tampered (checksum mismatch)", func(t *testing.T, path string) {
			v := rawGet(t, path, key)
			// Move the expiry a year on without fixing the checksum.
			v = []byte(strings.Replace(string(v), `"expires":"2026`, `"expires":"2027`, 1))
			rawPut(t, path, key, v)
		}},
		{"value does not decode", func(t *testing.T, path string) {
			payload := []byte("{not json")
			sum := ledger.Checksum(key, payload)
			rawPut(t, path, key, append(sum[:], payload...))
		}},
		{"value too short", func(t *testing.T, path string) {
			rawPut(t, path, key, []byte("x"))
		}},
		{"value of another entry, checksum over this key", func(t *testing.T, path string) {
			other := testEntry(7, now.Add(time.Hour))
			v, err := ledger.Seal(other.Pinned(), &other)
			if err != nil {
				t.Fatal(err)
			}
			sum := ledger.Checksum(key, v[32:])
			rawPut(t, path, key, append(sum[:], v[32:]...))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLedger(t)
			if res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now), ref); !res.Trusted {
				t.Fatalf("Verify = %s; want trusted", res.Verdict)
			}
			c.damage(t, l.Path())

			var ce *LedgerCorruptError
			e, err := l.Lookup(context.Background(), f.reg.Host+"/team/app-cache", d.String())
			if e != nil || !errors.As(err, &ce) || ce.MovedTo == "" {
				t.Fatalf("Lookup on a damaged ledger = %v, %v; want nil, *LedgerCorruptError with MovedTo", e, err)
			}
			t.Log(err)

			res, n := ledgerRun(t, f, ledgerVerifier(p, l, now), ref)
			wantVerdict(t, res, VerdictTrusted, "")
			if res.FromLedger || n == 0 {
				t.Errorf("Verify on a corrupt ledger: FromLedger %v, %d requests; want a fresh verification", res.FromLedger, n)
			}
			aside, _ := filepath.Glob(l.Path() + ".corrupt-*")
			if len(aside) != 1 {
				t.Errorf("files moved aside: %v; want one %s.corrupt-<time>", aside, filepath.Base(l.Path()))
			}
			// The fresh verdict went into the new ledger and serves the next.
			if res, n := ledgerRun(t, f, ledgerVerifier(p, l, now), ref); !res.FromLedger || n != 0 {
				t.Errorf("Verify on the rebuilt ledger: FromLedger %v, %d requests; want true, 0", res.FromLedger, n)
			}
		})
	}

	t.Run("Lookup and Entries report it", func(t *testing.T) {
		l := newLedger(t)
		if err := os.WriteFile(l.Path(), garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		var ce *LedgerCorruptError
		if e, err := l.Lookup(context.Background(), "r", "d"); e != nil || !errors.As(err, &ce) || ce.MovedTo == "" {
			t.Errorf("Lookup on garbage = %v, %v; want nil, *LedgerCorruptError with MovedTo", e, err)
		}
		if entries, err := l.Entries(context.Background()); len(entries) != 0 || err != nil {
			t.Errorf("Entries after the rebuild = %v, %v; want none, nil", entries, err)
		}
		if err := os.WriteFile(l.Path(), garbage[:100], 0o600); err != nil {
			t.Fatal(err)
		}
		if entries, err := l.Entries(context.Background()); len(entries) != 0 || !errors.As(err, &ce) {
			t.Errorf("Entries on a truncated file = %v, %v; want none, *LedgerCorruptError", entries, err)
		}
	})
}

func testEntry(i int, expires time.Time) LedgerEntry {
	return LedgerEntry{
		Repository: "registry.example/team/cache",
		Digest:     fmt.Sprintf("sha256:%064x", i),
		Signers:    []Signer{{Builder: "ci", KeyID: "sha256:abc", Format: "legacy", SignedAt: "2026-11-30T11:00:00Z", Annotations: map[string]string{"ref": "refs/heads/main"}}},
		Policy:     "sha256:policy",
		VerifiedAt: now,
		Expires:    expires,
	}
}

// The store's own tests (concurrency, pruning, files and permissions) are
// in internal/ledger/store_test.go.

// A ledger that cannot be written costs a cache hit, never a verdict.
func TestLedgerWriteFailure(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now, nil)
	l := newLedger(t)
	// A directory where the lock file should be: every operation fails.
	if err := os.Mkdir(l.Path()+".lock", 0o700); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now), repo.Digest(d.String()).String())
		wantVerdict(t, res, VerdictTrusted, "")
		if res.FromLedger {
			t.Errorf("Verify with an unusable ledger came from the ledger")
		}
	}
}

// Benchmarks: the same reference verified by a new verifier each time (a
// new process), without a ledger (cold) and with a warm one. They report
// registry requests per verification.

type benchEnv struct {
	reg      *testreg.Registry
	policy   *trustpolicy.Policy
	tag, dig string
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	env := &benchEnv{reg: testreg.New(b)}
	host := env.reg.Host
	repo := env.reg.Repo(b, "team/app-cache")
	d := testreg.PushRandom(b, repo.Tag("main"), 256, 1)
	dir := b.TempDir()
	priv := newKey(b, dir, "ci").priv
	s := signature.Signer{Key: priv, Builder: "ci", Now: func() time.Time { return now }}
	if _, err := s.Sign(context.Background(), repo, d, nil); err != nil {
		b.Fatal(err)
	}
	pol := fmt.Sprintf("version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [%q]\n    builders: [ci]\n", host+"/team/*")
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(pol), 0o644)
	p, err := trustpolicy.Load(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	env.policy = p
	env.tag, env.dig = repo.Tag("main").String(), repo.Digest(d.String()).String()
	return env
}

func (env *benchEnv) run(b *testing.B, ref string, opts ...Option) {
	b.Helper()
	opts = append(opts, WithClock(func() time.Time { return now }))
	// Warm up (fills the ledger when there is one), then count.
	if res, _ := New(env.policy, opts...).Verify(context.Background(), ref); !res.Trusted {
		b.Fatalf("Verify(%q) = %s (%s)", ref, res.Verdict, res.Reason())
	}
	env.reg.Reset()
	n := 0
	for b.Loop() {
		res, _ := New(env.policy, opts...).Verify(context.Background(), ref)
		if !res.Trusted {
			b.Fatalf("Verify(%q) = %s", ref, res.Verdict)
		}
		n++
	}
	b.ReportMetric(float64(served(env.reg))/float64(n), "requests/op")
}

func BenchmarkVerifyCold(b *testing.B) {
	env := newBenchEnv(b)
	b.Run("tag", func(b *testing.B) { env.run(b, env.tag) })
	b.Run("digest", func(b *testing.B) { env.run(b, env.dig) })
}

func BenchmarkVerifyWarm(b *testing.B) {
	env := newBenchEnv(b)
	l := newLedger(b)
	b.Run("tag", func(b *testing.B) { env.run(b, env.tag, WithLedger(l)) })
	b.Run("digest", func(b *testing.B) { env.run(b, env.dig, WithLedger(l)) })
}

// TestLedgerReadsOldFormat: a ledger written before the store moved to
// internal/ledger still reads, and an entry is written byte for byte as
// before. The value is laid out by hand as the old code wrote it: the
// SHA-256 of key, a zero byte and the JSON, then the JSON, in the
// entries.v1 bucket.
func TestLedgerReadsOldFormat(t *testing.T) {
	const key = "registry.example/team/cache@sha256:0000000000000000000000000000000000000000000000000000000000000001"
	const payload = `{"repository":"registry.example/team/cache","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001",` +
		`"signers":[{"builder":"ci","keyId":"sha256:abc","signedAt":"2026-11-30T11:00:00Z","format":"legacy","annotations":{"ref":"refs/heads/main"}}],` +
		`"policy":"sha256:policy","policyDigest":"sha256:file","verifiedAt":"2026-11-30T12:00:00Z","expires":"2026-11-30T13:00:00Z"}`
	sum := sha256.Sum256([]byte(key + "\x00" + payload))
	old := append(sum[:], payload...)

	want := testEntry(1, now.Add(time.Hour))
	want.PolicyDigest = "sha256:file"
	if got, err := ledger.Seal(key, &want); err != nil || string(got) != string(old) {
		t.Errorf("the stored value of an entry changed:\n got %q, %v\nwant %q", got, err, old)
	}

	l := newLedger(t)
	rawPutIn(t, l.Path(), "entries.v1", key, old)
	got, err := l.Lookup(context.Background(), want.Repository, want.Digest)
	if err != nil || got == nil {
		t.Fatalf("Lookup of an entry the old code wrote = %v, %v", got, err)
	}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("entry the old code wrote (-want +got):\n%s", diff)
	}
}

// TestLedgerClosed: every method of a closed Ledger fails with
// ErrLedgerClosed (verify's own error, not the store's).
func TestLedgerClosed(t *testing.T) {
	l := newLedger(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, lookup := l.Lookup(ctx, "r.example/team/cache", "sha256:"+strings.Repeat("a", 64))
	_, entries := l.Entries(ctx)
	_, prune := l.Prune(ctx, time.Now(), false)
	record := l.Record(ctx, testEntry(1, time.Now().Add(time.Hour)))
	for name, err := range map[string]error{"Lookup": lookup, "Entries": entries, "Prune": prune, "Record": record} {
		if !errors.Is(err, ErrLedgerClosed) {
			t.Errorf("%s on a closed ledger = %v; want ErrLedgerClosed", name, err)
		}
	}
}
