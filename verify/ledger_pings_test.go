package verify

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bolt "go.etcd.io/bbolt"

	"github.com/docker-trustcache/docker-trustcache/internal/ledger"
	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// The registry ping remembered in the ledger (internal/registry/pingcache.go,
// internal/registry/pingstore.go), through the Verifier.

// pingFixture is a fixture with one signed image team/app-cache:main, a
// ledger, and a registry that can be told to require a Bearer token.
type pingFixture struct {
	*fixture
	p        *trustpolicy.Policy
	l        *Ledger
	tag, dig string

	mu     sync.Mutex
	bearer bool // the registry requires a Bearer token
}

const pingTestToken = "t0ken"

func newPingFixture(t *testing.T) *pingFixture {
	t.Helper()
	pf := &pingFixture{fixture: newFixture(t)}
	pf.p = pf.policy(t, "", "")
	repo := pf.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, pf.ci, "ci", repo, d, now.Add(-time.Hour), nil)
	pf.l = newLedger(t)
	pf.tag, pf.dig = repo.Tag("main").String(), repo.Digest(d.String()).String()
	auth := testreg.Bearer(pingTestToken)
	hook := func(w http.ResponseWriter, r *http.Request) bool {
		pf.mu.Lock()
		bearer := pf.bearer
		pf.mu.Unlock()
		return bearer && auth(w, r)
	}
	pf.reg.SetFault(hook)
	return pf
}

// run verifies ref with a new verifier at "at" (with the ledger unless
// noLedger) and returns the result and the requests the registry served.
func (pf *pingFixture) run(t *testing.T, ref string, at time.Time, opts ...Option) (*Result, []string) {
	t.Helper()
	pf.reg.Reset()
	opts = append([]Option{WithClock(func() time.Time { return at })}, opts...)
	res, err := New(pf.p, opts...).Verify(context.Background(), ref)
	if err != nil {
		t.Fatalf("Verify(%q): %v", ref, err)
	}
	return res, pf.reg.Requests()
}

func (pf *pingFixture) stored(t *testing.T) map[string]registry.PingOutcome {
	t.Helper()
	got, err := registry.NewLedgerPings(pf.l.store, time.Now).LoadPings(context.Background(), pf.reg.Host)
	if err != nil {
		t.Fatalf("LoadPings: %v", err)
	}
	return got
}

func statusesOf(m map[string]registry.PingOutcome) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = v.Status
	}
	return out
}

func pings(served []string) int {
	n := 0
	for _, r := range served {
		if r == "GET /v2/" {
			n++
		}
	}
	return n
}

// The registry's ping is remembered for registry.PingTTL: then the next
// verifier pings for real, and remembers again.
func TestLedgerPingExpiry(t *testing.T) {
	pf := newPingFixture(t)
	if res, served := pf.run(t, pf.tag, now, WithLedger(pf.l)); !res.Trusted || pings(served) != 1 {
		t.Fatalf("cold Verify = %s, requests %v; want trusted, one ping", res.Verdict, served)
	}
	for _, c := range []struct {
		name string
		at   time.Time
		want []string
	}{
		{"just before expiry", now.Add(registry.PingTTL - time.Second), []string{"HEAD /v2/team/app-cache/manifests/main"}},
		{"at expiry", now.Add(registry.PingTTL), []string{"GET /v2/", "HEAD /v2/team/app-cache/manifests/main"}},
		{"renewed", now.Add(registry.PingTTL + time.Minute), []string{"HEAD /v2/team/app-cache/manifests/main"}},
		// Before the renewed ping was recorded (but after the verdict).
		{"clock set back", now.Add(10 * time.Minute), []string{"GET /v2/", "HEAD /v2/team/app-cache/manifests/main"}},
	} {
		res, served := pf.run(t, pf.tag, c.at, WithLedger(pf.l))
		wantVerdict(t, res, VerdictTrusted, "")
		if !res.FromLedger {
			t.Errorf("%s: FromLedger false", c.name)
		}
		if diff := cmp.Diff(c.want, served); diff != "" {
			t.Errorf("%s: requests (-want +got):\n%s", c.name, diff)
		}
	}
}

// Without the ledger (--no-ledger), nothing is remembered: a real ping.
func TestLedgerPingNoLedger(t *testing.T) {
	pf := newPingFixture(t)
	pf.run(t, pf.tag, now, WithLedger(pf.l))
	if len(pf.stored(t)) == 0 {
		t.Fatalf("no ping stored by a verification with the ledger")
	}
	res, served := pf.run(t, pf.tag, now)
	wantVerdict(t, res, VerdictTrusted, "")
	if res.FromLedger || pings(served) != 1 || served[0] != "GET /v2/" {
		t.Errorf("Verify without a ledger: FromLedger %v, requests %v; want a fresh verification starting with the ping", res.FromLedger, served)
	}
}

// A digest reference in the ledger costs nothing, the ping included.
func TestLedgerPingDigest(t *testing.T) {
	pf := newPingFixture(t)
	pf.run(t, pf.tag, now, WithLedger(pf.l))
	res, served := pf.run(t, pf.dig, now.Add(time.Minute), WithLedger(pf.l))
	if !res.FromLedger || len(served) != 0 {
		t.Errorf("warm Verify(digest): FromLedger %v, requests %v; want true, none", res.FromLedger, served)
	}
}

// The fixture's registry is plain http on 127.0.0.1: go-containerregistry
// pings https, which fails, then http. Both are remembered, so a warm
// verification sends nothing over https either: one request in all.
func TestLedgerPingLoopbackScheme(t *testing.T) {
	pf := newPingFixture(t)
	pf.run(t, pf.tag, now, WithLedger(pf.l))
	if diff := cmp.Diff(map[string]int{"http": 200, "https": 0}, statusesOf(pf.stored(t))); diff != "" {
		t.Errorf("stored pings by scheme (-want +got):\n%s", diff)
	}
	var mu sync.Mutex
	var wire []string
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		mu.Lock()
		wire = append(wire, req.URL.Scheme+" "+req.Method+" "+req.URL.Path)
		mu.Unlock()
		return remote.DefaultTransport.RoundTrip(req)
	})
	res, served := pf.run(t, pf.tag, now.Add(time.Minute), WithLedger(pf.l), WithTransport(base))
	wantVerdict(t, res, VerdictTrusted, "")
	if diff := cmp.Diff([]string{"http HEAD /v2/team/app-cache/manifests/main"}, wire); diff != "" || len(served) != 1 {
		t.Errorf("warm Verify: %d served, on the wire (-want +got):\n%s", len(served), diff)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// The registry starts requiring a Bearer token after its anonymous ping
// was remembered. The HEAD fails with 401, which drops the stale entry;
// the verification is not trusted, so the registry is pinged for real, its
// answer has changed, and the verification runs again with a new puller:
// it fetches a token and ends trusted (from the ledger), in the same run.
// The next run uses the remembered challenge: token and HEAD, no ping.
func TestLedgerPingAuthChange(t *testing.T) {
	pf := newPingFixture(t)
	if res, _ := pf.run(t, pf.tag, now, WithLedger(pf.l)); !res.Trusted {
		t.Fatalf("cold Verify = %s (%s)", res.Verdict, res.Reason())
	}
	pf.mu.Lock()
	pf.bearer = true
	pf.mu.Unlock()

	res, served := pf.run(t, pf.tag, now.Add(time.Minute), WithLedger(pf.l))
	wantVerdict(t, res, VerdictTrusted, "verified before on this host (ledger)")
	if !res.FromLedger {
		t.Errorf("Verify after the auth change: FromLedger false")
	}
	want := []string{
		"HEAD /v2/team/app-cache/manifests/main", // anonymous, as remembered: 401
		"GET /v2/",                               // the real ping: the Bearer challenge
		"GET /token",                             // the new puller
		"HEAD /v2/team/app-cache/manifests/main",
	}
	if diff := cmp.Diff(want, served); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	got := pf.stored(t)
	if diff := cmp.Diff(map[string]int{"http": 401, "https": 0}, statusesOf(got)); diff != "" {
		t.Errorf("stored pings by scheme (-want +got):\n%s", diff)
	}
	if ch := got["http"].Challenges; len(ch) != 1 || !strings.HasPrefix(ch[0], "Bearer realm=") {
		t.Errorf("stored challenges %q; want the Bearer challenge", ch)
	}
	raw, _ := os.ReadFile(pf.l.Path())
	if strings.Contains(string(raw), pingTestToken) {
		t.Errorf("the ledger file holds the token")
	}

	res, served = pf.run(t, pf.tag, now.Add(2*time.Minute), WithLedger(pf.l))
	wantVerdict(t, res, VerdictTrusted, "")
	if diff := cmp.Diff([]string{"GET /token", "HEAD /v2/team/app-cache/manifests/main"}, served); diff != "" {
		t.Errorf("next run: requests (-want +got):\n%s", diff)
	}
}

// A verification that is not trusted after a remembered ping checks the
// ping for real: an untrusted verdict costs what it costs without the
// cache, and stands when the registry has not changed.
func TestLedgerPingUntrusted(t *testing.T) {
	pf := newPingFixture(t)
	repo := pf.reg.Repo(t, "team/app-cache")
	testreg.PushRandom(t, repo.Tag("unsigned"), 256, 1)
	unsigned := repo.Tag("unsigned").String()
	pf.run(t, pf.tag, now, WithLedger(pf.l))

	cold, coldServed := pf.run(t, unsigned, now.Add(time.Minute))
	warm, warmServed := pf.run(t, unsigned, now.Add(time.Minute), WithLedger(pf.l))
	wantVerdict(t, warm, VerdictUntrusted, "no signatures found")
	if diff := cmp.Diff(cold, warm); diff != "" {
		t.Errorf("untrusted result differs with the remembered ping (-without +with):\n%s", diff)
	}
	// The ping comes right after the tag's own verification, before the
	// fallback's requests that wait for it (verify/fallback.go: the scan;
	// the head record is read alongside the tag, through the puller whose
	// remembered ping the real one confirms, and read again after it when
	// the ping changed: TestLedgerPingChangedHead).
	if len(warmServed) != len(coldServed) || pings(warmServed) != 1 || !slices.Contains(warmServed, "GET /v2/") ||
		!strings.Contains(strings.Join(warmServed, " "), "GET /v2/ GET /v2/team/app-cache/tags/list") {
		t.Errorf("requests with the remembered ping %v; want as many as without (%v), the ping before the fallback's", warmServed, coldServed)
	}
}

// A head record read alongside the tag through a remembered ping that the
// registry no longer answers the same (it now requires a token) is read
// again through the renewed puller: the rollback it shows is not missed.
func TestLedgerPingChangedHead(t *testing.T) {
	pf := newPingFixture(t)
	if res, _ := pf.run(t, pf.tag, now, WithLedger(pf.l)); !res.Trusted {
		t.Fatalf("cold Verify = %s (%s)", res.Verdict, res.Reason())
	}
	repo := pf.reg.Repo(t, "team/app-cache")
	dev := repo.Tag("dev")
	var ds []string
	for _, at := range []time.Time{now.Add(-2 * time.Hour), now.Add(-time.Hour)} {
		d := testreg.PushRandom(t, dev, 256, 1)
		sign(t, pf.ci, "ci", repo, d, at, map[string]string{signature.AnnotationTag: "dev"})
		if _, _, err := signature.WriteHead(context.Background(), pf.ci.priv, "ci", repo, "dev", d, signature.HeadOptions{Now: func() time.Time { return at }}); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d.String())
	}
	img, err := remote.Image(repo.Digest(ds[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dev, img); err != nil { // rolled back
		t.Fatal(err)
	}
	pf.mu.Lock()
	pf.bearer = true
	pf.mu.Unlock()

	res, served := pf.run(t, dev.String(), now.Add(time.Minute), WithLedger(pf.l))
	if !res.Trusted || res.Digest != ds[1] || res.Fallback == nil || res.Fallback.TagStatus != TagRolledBack {
		t.Fatalf("Verify(%s) = %s %s, fallback %+v (%s); want trusted %s, the tag rolled back", dev, res.Verdict, res.Digest, res.Fallback, res.Reason(), ds[1])
	}
	joined := strings.Join(served, " ")
	if i, j := strings.Index(joined, "GET /token"), strings.LastIndex(joined, "GET /v2/team/app-cache/manifests/trustcache-head-dev"); i < 0 || j < i {
		t.Errorf("requests %v; want the head read again after the new token", served)
	}
}

// rawPutPing writes a value into the ledger file's ping bucket directly.
func rawPutPing(t *testing.T, path, key string, value []byte) {
	t.Helper()
	rawPutIn(t, path, registry.PingBucket, key, value)
}

// A damaged ping entry is ignored (a real ping) and written over; it does
// not cost the ledger's verdicts.
func TestLedgerPingCorrupt(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(key string, v []byte) []byte
	}{
		{"garbage", func(string, []byte) []byte { return []byte("garbage") }},
		{"checksum mismatch", func(_ string, v []byte) []byte {
			return []byte(strings.Replace(string(v), `"status":200`, `"status":401`, 1))
		}},
		{"valid checksum, not JSON", func(key string, _ []byte) []byte {
			sum := ledger.Checksum(key, []byte("{"))
			return append(sum[:], '{')
		}},
		{"another registry's entry", func(key string, v []byte) []byte {
			var e pingEntry
			json.Unmarshal(v[32:], &e)
			e.Registry = "elsewhere.example"
			other, _ := encodePingEntry(pingKey(e.Scheme, e.Registry), &e)
			sum := ledger.Checksum(key, other[32:])
			return append(sum[:], other[32:]...)
		}},
		{"status the cache never writes", func(key string, v []byte) []byte {
			var e pingEntry
			json.Unmarshal(v[32:], &e)
			e.Status = http.StatusFound
			out, _ := encodePingEntry(key, &e)
			return out
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pf := newPingFixture(t)
			pf.run(t, pf.tag, now, WithLedger(pf.l))
			key := pingKey("http", pf.reg.Host)
			var v []byte
			db, err := bolt.Open(pf.l.Path(), 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			db.View(func(tx *bolt.Tx) error {
				v = append(v, tx.Bucket([]byte(registry.PingBucket)).Get([]byte(key))...)
				return nil
			})
			db.Close()
			rawPutPing(t, pf.l.Path(), key, c.damage(key, v))

			res, served := pf.run(t, pf.tag, now.Add(time.Minute), WithLedger(pf.l))
			wantVerdict(t, res, VerdictTrusted, "")
			if !res.FromLedger || pings(served) != 1 {
				t.Errorf("Verify with a damaged ping entry: FromLedger %v, requests %v; want true, a real ping", res.FromLedger, served)
			}
			if aside, _ := filepath.Glob(pf.l.Path() + ".corrupt-*"); len(aside) != 0 {
				t.Errorf("a damaged ping entry moved the ledger aside: %v", aside)
			}
			if _, err := registry.NewLedgerPings(pf.l.store, time.Now).LoadPings(context.Background(), pf.reg.Host); err != nil {
				t.Errorf("the damaged entry was not written over: %v", err)
			}
			if _, served := pf.run(t, pf.tag, now.Add(2*time.Minute), WithLedger(pf.l)); len(served) != 1 {
				t.Errorf("next run: requests %v; want the HEAD alone", served)
			}
		})
	}
}

// Prune removes the expired pings, and every one with all; the verdicts
// count, the pings do not.
func TestLedgerPrunePings(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	ps := registry.NewLedgerPings(l.store, func() time.Time { return now })
	o := func(at time.Time) registry.PingOutcome {
		return registry.PingOutcome{Status: 200, RecordedAt: at, Expires: at.Add(registry.PingTTL)}
	}
	ps.SavePings(ctx, "old.example", map[string]registry.PingOutcome{"https": o(now.Add(-2 * registry.PingTTL))})
	ps.SavePings(ctx, "new.example", map[string]registry.PingOutcome{"https": o(now)})
	if got, _ := ps.LoadPings(ctx, "old.example"); len(got) != 0 {
		t.Errorf("saving a ping kept another registry's expired one: %v", got)
	}
	ps = registry.NewLedgerPings(l.store, func() time.Time { return now.Add(-3 * registry.PingTTL) })
	ps.SavePings(ctx, "old.example", map[string]registry.PingOutcome{"https": o(now.Add(-2 * registry.PingTTL))})
	if n, err := l.Prune(ctx, now, false); n != 0 || err != nil {
		t.Errorf("Prune = %d, %v; want 0 (pings are not counted), nil", n, err)
	}
	if got, _ := ps.LoadPings(ctx, "old.example"); len(got) != 0 {
		t.Errorf("Prune kept an expired ping: %v", got)
	}
	if got, _ := ps.LoadPings(ctx, "new.example"); len(got) != 1 {
		t.Errorf("Prune removed a fresh ping: %v", got)
	}
	l.Prune(ctx, now, true)
	if got, _ := ps.LoadPings(ctx, "new.example"); len(got) != 0 {
		t.Errorf("Prune(all) kept a ping: %v", got)
	}
}

// pingEntry is the layout of a stored ping (internal/registry/pingstore.go),
// for damaging one.
type pingEntry struct {
	Registry string `json:"registry"`
	Scheme   string `json:"scheme"`
	registry.PingOutcome
}

func pingKey(scheme, host string) string { return scheme + "://" + host }

func encodePingEntry(key string, e *pingEntry) ([]byte, error) { return ledger.Seal(key, e) }
