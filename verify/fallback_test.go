package verify

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// The fallback (verify/fallback.go, docs/fallback.md): the attacks of
// issue 23 — (a) a forged cache under the tag, (b) the tag deleted, (c) the
// tag re-pointed to an older trusted digest, (d) junk signatures on the
// newest digest — against a trusted builder that signed two successive
// caches of :main, and the bounds under a hostile registry.

// fbEnv is a repository where builder ci signed two caches of :main (as
// "docker trustcache sign REPO:main" does: the tag annotation and the
// head record), d1 two hours ago and d2 one hour ago; :main is d2.
type fbEnv struct {
	f      *fixture
	p      *trustpolicy.Policy
	repo   name.Repository
	main   name.Tag
	d1, d2 v1.Hash
}

var (
	fbT1 = now.Add(-2 * time.Hour)
	fbT2 = now.Add(-time.Hour)
)

func newFallbackEnv(t *testing.T, scopeExtra string) *fbEnv {
	t.Helper()
	f := newFixture(t)
	e := &fbEnv{f: f, p: f.policy(t, scopeExtra, ""), repo: f.reg.Repo(t, "team/app-cache")}
	e.main = e.repo.Tag("main")
	e.d1 = testreg.PushRandom(t, e.main, 256, 1)
	signForTag(t, f.ci, e.repo, e.d1, "main", fbT1)
	e.d2 = testreg.PushRandom(t, e.main, 256, 1)
	signForTag(t, f.ci, e.repo, e.d2, "main", fbT2)
	return e
}

// signForTag signs d naming tag and writes the tag's head, as signing
// REPO:TAG does.
func signForTag(t *testing.T, k testKey, repo name.Repository, d v1.Hash, tag string, at time.Time) {
	t.Helper()
	sign(t, k, "ci", repo, d, at, map[string]string{signature.AnnotationTag: tag})
	if _, _, err := signature.WriteHead(context.Background(), k.priv, "ci", repo, tag, d, signature.HeadOptions{Now: func() time.Time { return at }}); err != nil {
		t.Fatal(err)
	}
}

// host is a verifier with its own ledger: a fresh host, or (reused) one
// that has verified before.
type host struct{ l *Ledger }

func newHost(t *testing.T) *host { return &host{l: newLedger(t)} }

func (h *host) verify(t *testing.T, e *fbEnv) (*Result, int) {
	t.Helper()
	before := len(e.f.reg.Requests())
	res, err := New(e.p, WithClock(func() time.Time { return now }), WithLedger(h.l)).Verify(context.Background(), e.main.String())
	if err != nil {
		t.Fatal(err)
	}
	return res, len(e.f.reg.Requests()) - before
}

// wantFallback checks that res is trusted through the fallback to digest,
// found at source, with the tag's status.
func wantFallback(t *testing.T, res *Result, digest v1.Hash, status, source string) {
	t.Helper()
	if !res.Trusted || res.Verdict != VerdictTrusted || res.Digest != digest.String() || res.Pinned() != res.Repository+"@"+digest.String() {
		t.Fatalf("result %s %s (trusted %v), want trusted %s through the fallback; reasons %q", res.Verdict, res.Digest, res.Trusted, digest, res.Reasons)
	}
	fb := res.Fallback
	if fb == nil {
		t.Fatalf("no Fallback in the result; reasons %q", res.Reasons)
	}
	if fb.Digest != digest.String() || fb.TagStatus != status || fb.Source != source || fb.Tag != "main" || len(fb.Signers) == 0 || fb.Signers[0].Builder != "ci" || fb.Age == "" {
		t.Fatalf("Fallback %+v; want digest %s, status %s, source %s, signer ci, an age", fb, digest, status, source)
	}
}

// forge pushes an attacker's cache under :main, signed by a key not in the
// policy (naming the tag), and returns its digest.
func (e *fbEnv) forge(t *testing.T) v1.Hash {
	t.Helper()
	d := testreg.PushRandom(t, e.main, 256, 1)
	sign(t, e.f.rand, "ci", e.repo, d, now, map[string]string{signature.AnnotationTag: "main"})
	return d
}

// (a) A forged cache under the tag: the newest trusted digest, from the
// head record; never the attacker's.
func TestFallbackForgedTag(t *testing.T) {
	e := newFallbackEnv(t, "")
	forged := e.forge(t)
	res, n := newHost(t).verify(t, e)
	wantFallback(t, res, e.d2, TagUntrusted, FromHead)
	if res.Fallback.TagDigest != forged.String() || res.Fallback.HeadSequence == 0 {
		t.Errorf("Fallback %+v: want the forged tag digest and the head's sequence", res.Fallback)
	}
	if !strings.Contains(res.Reason(), "not signed by any key in the policy") || !strings.Contains(res.Reason(), "using "+e.d2.String()) {
		t.Errorf("reasons %q: want why the tag's digest failed and the digest used", res.Reasons)
	}
	// ping, HEAD tag, the forged .sig, referrers (404), referrers tag,
	// head record, d2's .sig.
	t.Logf("fresh host, forged tag: %d requests", n)
	if n > 8 {
		t.Errorf("fresh host, forged tag: %d requests; want at most 8", n)
	}
}

// (b) The tag deleted: the head record's digest; verify says missing.
func TestFallbackDeletedTag(t *testing.T) {
	e := newFallbackEnv(t, "")
	if err := remote.Delete(e.main); err != nil {
		t.Fatal(err)
	}
	res, n := newHost(t).verify(t, e)
	wantFallback(t, res, e.d2, TagMissing, FromHead)
	if res.Fallback.TagDigest != "" || !strings.Contains(res.Reason(), "tag main is missing") {
		t.Errorf("Fallback %+v, reasons %q: want a missing tag", res.Fallback, res.Reasons)
	}
	t.Logf("fresh host, deleted tag: %d requests", n)
}

// (c) The tag re-pointed to the older trusted digest: a fresh host takes
// the newer one the signed head names; a host that saw the newer digest
// never goes back, even when the head record is rolled back too.
func TestFallbackRollback(t *testing.T) {
	e := newFallbackEnv(t, "")
	seen := newHost(t)
	if res, _ := seen.verify(t, e); !res.Trusted || res.Fallback != nil || res.Digest != e.d2.String() {
		t.Fatalf("before the attack: %+v", res)
	}
	copyTag(t, e.repo.Digest(e.d1.String()), e.main)

	res, n := newHost(t).verify(t, e)
	wantFallback(t, res, e.d2, TagRolledBack, FromHead)
	if res.Fallback.TagDigest != e.d1.String() || !strings.Contains(res.Reason(), "older than the tag's signed head record") {
		t.Errorf("Fallback %+v, reasons %q: want the rollback named", res.Fallback, res.Reasons)
	}
	t.Logf("fresh host, rolled-back tag: %d requests", n)

	res, _ = seen.verify(t, e)
	wantFallback(t, res, e.d2, TagRolledBack, FromHead)

	// The head rolled back too: a head for d1 with a lower sequence
	// (what the head tag held before d2 was signed).
	rollHead(t, e, e.d1, fbT1)
	res, _ = seen.verify(t, e)
	wantFallback(t, res, e.d2, TagRolledBack, FromLedger)
	if !strings.Contains(res.Reason(), "rolled back") {
		t.Errorf("reasons %q: want the rolled-back head named", res.Reasons)
	}
	// Limit (docs/fallback.md, SECURITY.md): a fresh host with both the tag
	// and the head rolled back takes d1, which the policy trusts.
	if res, _ := newHost(t).verify(t, e); !res.Trusted || res.Digest != e.d1.String() {
		t.Errorf("fresh host, tag and head rolled back: %s %s", res.Verdict, res.Digest)
	}
}

// rollHead replaces the head of :main with one for d signed at at (a lower
// sequence than the current head's).
func rollHead(t *testing.T, e *fbEnv, d v1.Hash, at time.Time) {
	t.Helper()
	if err := remote.Delete(e.repo.Tag("trustcache-head-main")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := signature.WriteHead(context.Background(), e.f.ci.priv, "ci", e.repo, "main", d, signature.HeadOptions{Now: func() time.Time { return at }}); err != nil {
		t.Fatal(err)
	}
}

// (d) Junk signatures on the newest digest (more than MaxSignatures: the
// list is refused): a fresh host takes the digest before it, which the
// signed head names; a host that verified d2 before keeps d2 (ledger).
func TestFallbackJunkSignatures(t *testing.T) {
	e := newFallbackEnv(t, "")
	seen := newHost(t)
	if res, _ := seen.verify(t, e); !res.Trusted || res.Digest != e.d2.String() {
		t.Fatalf("before the attack: %+v", res)
	}
	addJunkSignatures(t, e.repo, e.d2, 300)

	res, n := newHost(t).verify(t, e)
	wantFallback(t, res, e.d1, TagUntrusted, FromHeadPrevious)
	if !strings.Contains(res.Reason(), "more than 256 signatures") {
		t.Errorf("reasons %q: want the junk named", res.Reasons)
	}
	t.Logf("fresh host, junk signatures: %d requests", n)

	res, _ = seen.verify(t, e)
	if !res.Trusted || res.Digest != e.d2.String() || res.Fallback != nil || !res.FromLedger {
		t.Errorf("host that verified d2: %s %s fallback %+v; want d2 from its ledger", res.Verdict, res.Digest, res.Fallback)
	}
}

// The decision never takes the attacker's digest: a head record signed by
// a key not in the policy naming the forged cache is ignored, and so is a
// head copied from another tag.
func TestFallbackForgedHead(t *testing.T) {
	e := newFallbackEnv(t, "")
	forged := e.forge(t)
	if _, _, err := signature.WriteHead(context.Background(), e.f.rand.priv, "ci", e.repo, "main", forged, signature.HeadOptions{Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	res, _ := newHost(t).verify(t, e)
	if res.Digest == forged.String() {
		t.Fatalf("the forged head's digest was taken: %+v", res)
	}
	// No trusted head: the slow path finds d2 among the signatures.
	wantFallback(t, res, e.d2, TagUntrusted, FromScan)
	if !strings.Contains(res.Reason(), "not signed by a key of the policy") && res.Fallback.Source != FromScan {
		t.Errorf("reasons %q", res.Reasons)
	}

	// The head of another tag copied under main's head tag.
	other := testreg.PushRandom(t, e.repo.Tag("dev"), 256, 1)
	signForTag(t, e.f.ci, e.repo, other, "dev", now)
	copyTag(t, e.repo.Tag("trustcache-head-dev"), e.repo.Tag("trustcache-head-main"))
	res, _ = newHost(t).verify(t, e)
	if res.Digest == other.String() || res.Digest == forged.String() {
		t.Fatalf("a head copied from tag dev was followed: %s", res.Digest)
	}
	wantFallback(t, res, e.d2, TagUntrusted, FromScan)
}

// A head record with a sequence far ahead of its time (a key holder's
// forgery, meant to freeze later heads out of the hosts that see it) is
// ignored, and does not raise the host's bound.
func TestFallbackHeadSequenceInTheFuture(t *testing.T) {
	e := newFallbackEnv(t, "")
	h := newHost(t)
	// The head is rewritten with a sequence a year ahead (same key).
	payload, err := signature.NewHeadPayload(signature.Head{Repository: e.repo.Name(), Tag: "main", Digest: e.d2, Sequence: uint64(now.Add(365 * 24 * time.Hour).UnixMilli()), Created: fbT2})
	if err != nil {
		t.Fatal(err)
	}
	putHead(t, e, payload)
	e.forge(t)
	res, _ := h.verify(t, e)
	if res.Fallback != nil && res.Fallback.Source == FromHead {
		t.Fatalf("a head with a sequence in the future was followed: %+v", res.Fallback)
	}
	if !strings.Contains(res.Reason(), "signed in the future") && (res.Fallback == nil || res.Fallback.Source != FromScan) {
		t.Errorf("reasons %q: want the head named as from the future", res.Reasons)
	}
	if rec := (&Verifier{ledger: h.l, now: func() time.Time { return now }}).loadTag(context.Background(), res.Repository, "main", e.p.Fingerprint(&e.p.Scopes[0])); rec != nil && rec.HeadSequence > uint64(now.UnixMilli()) {
		t.Errorf("the host's head bound was raised to %d", rec.HeadSequence)
	}
}

// putHead writes payload, signed by ci, as the head of :main.
func putHead(t *testing.T, e *fbEnv, payload []byte) {
	t.Helper()
	sig, err := keys.Sign(e.f.ci.priv, payload)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:       static.NewLayer(payload, signature.HeadMediaType),
		MediaType:   signature.HeadMediaType,
		Annotations: map[string]string{signature.SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(signature.HeadTag(e.repo, "main"), img); err != nil {
		t.Fatal(err)
	}
}

// A digest signed for another tag is no fallback for this one.
func TestFallbackOnlyForTheTag(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	main := repo.Tag("main")
	d := testreg.PushRandom(t, repo.Tag("dev"), 256, 1)
	signForTag(t, f.ci, repo, d, "dev", fbT1)
	plain := testreg.PushRandom(t, repo.Tag("plain"), 256, 1)
	sign(t, f.ci, "ci", repo, plain, fbT2, nil) // trusted, no tag named
	testreg.PushRandom(t, main, 256, 1)         // unsigned
	res, err := New(p, WithClock(func() time.Time { return now }), WithLedger(newLedger(t))).Verify(context.Background(), main.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Trusted || res.Fallback != nil {
		t.Fatalf("a digest signed for dev (or for no tag) became main's fallback: %+v", res)
	}
	if !strings.Contains(res.Reason(), "no trusted fallback for tag main") {
		t.Errorf("reasons %q", res.Reasons)
	}
}

// A head naming a digest that is gone yields the digest before it; with
// that gone too, no cache — never an error that lets something in.
func TestFallbackHeadDigestGone(t *testing.T) {
	e := newFallbackEnv(t, "")
	e.forge(t)
	if err := remote.Delete(e.repo.Digest(e.d2.String())); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(signature.SigTag(e.repo, e.d2)); err != nil {
		t.Fatal(err)
	}
	res, _ := newHost(t).verify(t, e)
	wantFallback(t, res, e.d1, TagUntrusted, FromHeadPrevious)

	if err := remote.Delete(signature.SigTag(e.repo, e.d1)); err != nil {
		t.Fatal(err)
	}
	res, _ = newHost(t).verify(t, e)
	if res.Trusted || res.Fallback != nil || !strings.Contains(res.Reason(), "no trusted fallback") {
		t.Fatalf("head and previous gone: %s %s %q; want untrusted, no fallback", res.Verdict, res.Digest, res.Reasons)
	}
}

// maxAge applies to the fallback digest like to any other: the digest
// before the head's, signed two hours ago, does not count under a 90
// minute maxAge.
func TestFallbackMaxAge(t *testing.T) {
	e := newFallbackEnv(t, "    maxAge: 90m")
	addJunkSignatures(t, e.repo, e.d2, 300)
	res, _ := newHost(t).verify(t, e)
	if res.Trusted || !strings.Contains(res.Reason(), "older than maxAge") {
		t.Fatalf("fallback past maxAge: %s %s %q", res.Verdict, res.Digest, res.Reasons)
	}
}

// fallback: none turns it off: the tag's digest is the verdict, and no
// head record is read.
func TestFallbackNone(t *testing.T) {
	e := newFallbackEnv(t, "    fallback: none")
	e.forge(t)
	e.f.reg.Reset()
	res, _ := newHost(t).verify(t, e)
	if res.Trusted || res.Fallback != nil {
		t.Fatalf("fallback: none fell back: %+v", res)
	}
	if n := e.f.reg.Count("GET", "trustcache-head-"); n != 0 {
		t.Errorf("fallback: none read the head record %d times", n)
	}
}

// Without head records (caches signed by cosign with -a tag=main), the
// tag's signature tags are scanned: the newest trusted for the tag wins.
func TestFallbackScan(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	main := repo.Tag("main")
	var ds []v1.Hash
	for i, at := range []time.Time{fbT1, fbT2, fbT1.Add(30 * time.Minute)} {
		d := testreg.PushRandom(t, repo.Tag(fmt.Sprintf("c%d", i)), 256, 1)
		sign(t, f.ci, "ci", repo, d, at, map[string]string{signature.AnnotationTag: "main"})
		ds = append(ds, d)
	}
	testreg.PushRandom(t, main, 256, 1) // forged: unsigned
	f.reg.Reset()
	res, err := New(p, WithClock(func() time.Time { return now }), WithLedger(newLedger(t))).Verify(context.Background(), main.String())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Trusted || res.Fallback == nil || res.Digest != ds[1].String() || res.Fallback.Source != FromScan {
		t.Fatalf("scan: %s %s %+v; want %s from the scan", res.Verdict, res.Digest, res.Fallback, ds[1])
	}
	t.Logf("scan of 3 signed digests: %d requests", len(f.reg.Requests()))
}

// Without head records, the ledger alone bounds a host: once it took d2
// for the tag, the tag put back on d1 is refused and d2 used.
func TestFallbackLedgerBound(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	main := repo.Tag("main")
	d1 := testreg.PushRandom(t, main, 256, 1)
	sign(t, f.ci, "ci", repo, d1, fbT1, map[string]string{signature.AnnotationTag: "main"})
	d2 := testreg.PushRandom(t, main, 256, 1)
	sign(t, f.ci, "ci", repo, d2, fbT2, map[string]string{signature.AnnotationTag: "main"})
	l := newLedger(t)
	v := func() *Result {
		t.Helper()
		res, err := New(p, WithClock(func() time.Time { return now }), WithLedger(l)).Verify(context.Background(), main.String())
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := v(); !res.Trusted || res.Digest != d2.String() || res.Fallback != nil {
		t.Fatalf("before: %+v", res)
	}
	copyTag(t, repo.Digest(d1.String()), main)
	res := v()
	if !res.Trusted || res.Digest != d2.String() || res.Fallback == nil || res.Fallback.TagStatus != TagRolledBack || res.Fallback.Source != FromLedger {
		t.Fatalf("tag put back on d1: %s %s %+v; want d2 from the ledger", res.Verdict, res.Digest, res.Fallback)
	}
	if !strings.Contains(res.Reason(), "the newest digest this host has taken for the tag") {
		t.Errorf("reasons %q", res.Reasons)
	}
}

// A hostile registry against the slow path: thousands of junk signature
// tags, a tag list that pages forever, a tag list that fails. Bounded
// requests, no wrong verdict, at worst no cache.
func TestFallbackScanBounds(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	main := repo.Tag("main")
	good := testreg.PushRandom(t, repo.Tag("good"), 256, 1)
	sign(t, f.ci, "ci", repo, good, fbT2, map[string]string{signature.AnnotationTag: "main"})
	testreg.PushRandom(t, main, 256, 1) // forged: unsigned
	// 2,000 junk signature tags, each a manifest with a junk layer.
	junk := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`)
	for i := range 2000 {
		f.reg.Seed(t, repo, fmt.Sprintf("sha256-%064x.sig", i), types.OCIManifestSchema1, junk)
	}
	run := func() (*Result, int) {
		t.Helper()
		f.reg.Reset()
		start := time.Now()
		res, err := New(p, WithClock(func() time.Time { return now })).Verify(context.Background(), main.String())
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > ScanTimeout {
			t.Errorf("verification took %s", d)
		}
		return res, len(f.reg.Requests())
	}
	res, n := run()
	if res.Trusted || res.Digest == good.String() && res.Fallback == nil {
		t.Fatalf("junk tags: %s %s", res.Verdict, res.Digest)
	}
	if !strings.Contains(res.Reason(), "scan:") {
		t.Errorf("reasons %q: want the scan's bound named", res.Reasons)
	}
	// Bound: the tag's own verification, the head, the list (≤ 10 pages)
	// and ≤ MaxScanRequests in the scan.
	if n > MaxScanRequests+16 {
		t.Errorf("junk tags: %d requests; want at most %d", n, MaxScanRequests+16)
	}
	t.Logf("2,000 junk signature tags: %d requests, %q", n, res.Reason())

	// A tag list that pages forever.
	f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/tags/list") {
			return false
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s?n=1&last=x%d>; rel="next"`, r.URL.Path, time.Now().UnixNano()))
		fmt.Fprint(w, `{"name":"team/app-cache","tags":["junk"]}`)
		return true
	})
	res, n = run()
	if res.Trusted || f.reg.Count("GET", "/tags/list") > MaxScanPages {
		t.Errorf("endless tag list: %s, %d list requests; want untrusted, at most %d", res.Verdict, f.reg.Count("GET", "/tags/list"), MaxScanPages)
	}
	t.Logf("endless tag list: %d requests", n)

	// A tag list that fails.
	f.reg.SetFault(failWhen("/tags/list"))
	res, _ = run()
	if res.Trusted || !strings.Contains(res.Reason(), "listing the tags") {
		t.Errorf("failing tag list: %s %q", res.Verdict, res.Reasons)
	}
}

// The policy field: lastTrusted (default) or none; anything else is an
// error naming the field.
func TestPolicyFallbackField(t *testing.T) {
	f := newFixture(t)
	for _, v := range []string{"lastTrusted", "none"} {
		p := f.policy(t, "    fallback: "+v, "")
		if got := p.Scopes[0].Fallback; string(got) != v {
			t.Errorf("fallback: %s parsed as %q", v, got)
		}
	}
	if got := f.policy(t, "", "").Scopes[0].Fallback; got != "" {
		t.Errorf("default fallback %q, want \"\" (lastTrusted)", got)
	}
	_, err := trustpolicy.Parse("p.yaml", []byte(fmt.Sprintf("version: 1\nbuilders:\n  - name: ci\n    key: %s\nscopes:\n  - repositories: [\"x/y\"]\n    builders: [ci]\n    fallback: newest\n", f.ci.pubPath)))
	if err == nil || !strings.Contains(err.Error(), "scopes[0].fallback") || !strings.Contains(err.Error(), "unknown fallback") {
		t.Errorf("fallback: newest: %v", err)
	}
}

// A host that used d2 keeps it through successive attacks: the tag put
// back on d1 (fallback to d2), then on d2 again with junk signatures (d2
// from its ledger). The fallback's verification of d2 shares the ledger
// entry of the plain one, so neither evicts the other.
func TestFallbackHostKeepsNewest(t *testing.T) {
	e := newFallbackEnv(t, "")
	h := newHost(t)
	if res, _ := h.verify(t, e); !res.Trusted || res.Digest != e.d2.String() {
		t.Fatalf("before: %+v", res)
	}
	copyTag(t, e.repo.Digest(e.d1.String()), e.main)
	res, n := h.verify(t, e)
	wantFallback(t, res, e.d2, TagRolledBack, FromHead)
	if !res.FromLedger {
		t.Errorf("the fallback to d2 fetched its signatures again (%d requests); want it from the ledger", n)
	}
	copyTag(t, e.repo.Digest(e.d2.String()), e.main)
	addJunkSignatures(t, e.repo, e.d2, 300)
	res, n = h.verify(t, e)
	if !res.Trusted || res.Digest != e.d2.String() || res.Fallback != nil || !res.FromLedger || n != 1 {
		t.Errorf("tag back on d2 with junk: %s %s fallback %+v from ledger %v, %d requests; want d2 from the ledger in 1 request", res.Verdict, res.Digest, res.Fallback, res.FromLedger, n)
	}
}
