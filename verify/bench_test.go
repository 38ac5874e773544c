package verify

// Bounded work on hostile input, measured: a digest whose signature list
// holds 5,000 junk entries and one valid signature — as a .sig manifest of
// 5,001 layers, as a referrers tag (the fallback index) of 5,001 entries,
// and through the referrers API of a registry that serves one — against
// the same setup with only the valid signature.
//
// What decides: the 5,001-layer .sig manifest is about 1.2 MB, under
// registry.MaxResponseBody (4 MiB), so it is read, parsed, and refused by
// count (signature.MaxSignatures = 256) before any payload is fetched; the
// referrers lists likewise. The verdict is "untrusted" with the reason
// "more than 256 signatures attached" — not inconclusive, and not trusted
// although a valid signature is among the junk.
//
//	go test -run '^$' -bench 'Verify5000|VerifyOne' -benchmem ./verify/
//
// The registry runs in the test process, so the benchmarks' B/op and
// allocs/op include the registry serving the manifests as well as the
// verifier reading them: an upper bound for the verifier alone. Each
// operation is a fresh Verifier (as one CLI invocation is): registry ping,
// tag resolution, signature list, payloads.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	internalregistry "github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// junkCount is how many junk signatures the hostile setups attach.
const junkCount = 5000

// heapBound bounds the memory one verification of a hostile setup may
// allocate (and so its peak heap growth).
const heapBound = 64 << 20

// maxJunkRequests bounds the registry requests one verification of a
// hostile setup makes.
const maxJunkRequests = 10

// junkReason is the reason a too-long signature list is refused with.
const junkReason = "more than 256 signatures"

// The shared fixture helpers (newFixture, sign,
// addJunkSignatures) take a *testing.T; benchmarks have a *testing.B, so
// junkEnv builds the same setup through testing.TB. The test below uses
// the shared helpers themselves.

// junkEnv is one in-process registry, one key (builder "ci"), a policy
// allowing it for the registry's team/*, and one image team/app-cache:main.
type junkEnv struct {
	reg    *testreg.Registry
	repo   name.Repository
	digest v1.Hash
	key    *ecdsa.PrivateKey
	policy *trustpolicy.Policy
}

func newJunkEnv(tb testing.TB, referrersAPI bool) *junkEnv {
	tb.Helper()
	be := &junkEnv{reg: testreg.New(tb, testreg.Referrers(referrersAPI))}
	be.repo = be.reg.Repo(tb, "team/app-cache")
	be.digest = testreg.PushRandom(tb, be.repo.Tag("main"), 256, 1)
	dir := tb.TempDir()
	be.key = newKey(tb, dir, "ci").priv
	pf := filepath.Join(dir, "policy.yaml")
	text := fmt.Sprintf("version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"%s/team/*\"]\n    builders: [ci]\n", be.reg.Host)
	if err := os.WriteFile(pf, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	p, err := trustpolicy.Load(pf)
	if err != nil {
		tb.Fatal(err)
	}
	be.policy = p
	return be
}

// sign attaches one valid signature by the env's key in format.
func (be *junkEnv) sign(tb testing.TB, format signature.Format) {
	tb.Helper()
	s := signature.Signer{Key: be.key, Builder: "ci", Now: func() time.Time { return now }}
	if _, err := s.SignFormat(context.Background(), format, be.repo, be.digest, nil); err != nil {
		tb.Fatalf("SignFormat(%s): %v", format, err)
	}
}

// addJunkSignatures is the shared addJunkSignatures through testing.TB: n
// junk layers appended to the digest's .sig manifest.
func (be *junkEnv) addJunkSignatures(tb testing.TB, n int) {
	tb.Helper()
	if err := appendJunkSignatures(be.repo, be.digest, n); err != nil {
		tb.Fatal(err)
	}
}

// appendJunkSignatures builds the .sig manifest as faults_test.go's
// addJunkSignatures does: n layers pointing at one junk payload, each with
// its own junk signature annotation.
func appendJunkSignatures(repo name.Repository, d v1.Hash, n int) error {
	tag := signature.SigTag(repo, d)
	img, err := remote.Image(tag)
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	junk := static.NewLayer([]byte(`{"junk":true}`), "application/vnd.dev.cosign.simplesigning.v1+json")
	jd, _ := junk.Digest()
	if err := remote.WriteLayer(repo, junk); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Size: 13, Digest: jd,
			Annotations: map[string]string{signature.SignatureAnnotation: fmt.Sprintf("MEUCIQ%04d", i)},
		})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return remote.Put(tag, rawManifest{raw, m.MediaType})
}

// junkReferrerAnnotations are the manifest annotations cosign sets on a
// bundle referrer: they mark it as a signature (not an attestation), so a
// reader counts it as a candidate.
var junkReferrerAnnotations = map[string]string{
	"dev.sigstore.bundle.content":       "dsse-envelope",
	"dev.sigstore.bundle.predicateType": signature.SignPredicateType,
	"org.opencontainers.image.created":  now.Format(time.RFC3339),
}

// pushJunkReferrers pushes n junk bundle referrer manifests of d (OCI
// manifests of the bundle artifact type with d as subject, each pointing at
// a junk blob that is never uploaded), by raw PUT, 16 at a time — without
// go-containerregistry's read-modify-write of the referrers tag, which
// would make this quadratic. A registry with the referrers API lists them
// by their subject; for one without, see appendJunkReferrersTag. It
// returns their descriptors as a referrers list shows them.
func pushJunkReferrers(host string, repo name.Repository, d v1.Hash, n int) ([]v1.Descriptor, error) {
	sd, err := remote.Head(repo.Digest(d.String()))
	if err != nil {
		return nil, err
	}
	url := "http://" + host + "/v2/" + repo.RepositoryStr() + "/manifests/"
	descs := make([]v1.Descriptor, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sum := sha256.Sum256([]byte(fmt.Sprintf("junk bundle %d", i)))
			junk := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
			m := v1.Manifest{
				SchemaVersion: 2,
				MediaType:     types.OCIManifestSchema1,
				ArtifactType:  signature.BundleMediaType,
				Config:        v1.Descriptor{MediaType: signature.EmptyMediaType, Size: 2, Digest: junk, ArtifactType: signature.BundleMediaType},
				Layers:        []v1.Descriptor{{MediaType: signature.BundleMediaType, Size: 600, Digest: junk}},
				Subject:       &v1.Descriptor{MediaType: sd.MediaType, Size: sd.Size, Digest: sd.Digest},
				Annotations:   junkReferrerAnnotations,
			}
			raw, err := json.Marshal(m)
			if err != nil {
				errs <- err
				return
			}
			h, size, _ := v1.SHA256(bytes.NewReader(raw))
			descs[i] = v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: size, Digest: h, ArtifactType: signature.BundleMediaType, Annotations: junkReferrerAnnotations}
			req, _ := http.NewRequest(http.MethodPut, url+h.String(), bytes.NewReader(raw))
			req.Header.Set("Content-Type", string(types.OCIManifestSchema1))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				errs <- fmt.Errorf("PUT junk referrer %d: %s", i, resp.Status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return descs, <-errs
}

// appendJunkReferrersTag pushes n junk referrers of d and appends them to
// the referrers tag sha256-<hex> (the fallback index a registry without the
// referrers API keeps), as anyone who can push a tag can.
func appendJunkReferrersTag(host string, repo name.Repository, d v1.Hash, n int) error {
	junk, err := pushJunkReferrers(host, repo, d, n)
	if err != nil {
		return err
	}
	tag := repo.Tag(d.Algorithm + "-" + d.Hex)
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	if idx, err := remote.Index(tag); err == nil {
		m, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		im = *m
	} else if !internalregistry.IsNotFound(err) {
		return err
	}
	im.Manifests = append(im.Manifests, junk...)
	raw, err := json.Marshal(im)
	if err != nil {
		return err
	}
	return remote.Put(tag, rawManifest{raw, types.OCIImageIndex})
}

// The hostile setups and their baselines.
type junkSetup struct {
	name    string
	format  signature.Format // of the one valid signature
	api     bool             // registry with the referrers API
	addJunk func(tb testing.TB, be *junkEnv)
	hostile bool // junk attached: must be untrusted
}

var (
	setupOneSignature = junkSetup{name: "one .sig signature", format: signature.FormatLegacy}
	setupOneBundle    = junkSetup{name: "one bundle (referrers tag)", format: signature.FormatBundle}
	setupOneBundleAPI = junkSetup{name: "one bundle (referrers API)", format: signature.FormatBundle, api: true}
	setupJunkSig      = junkSetup{
		name: "5000 junk .sig layers + 1 valid", format: signature.FormatLegacy, hostile: true,
		addJunk: func(tb testing.TB, be *junkEnv) { be.addJunkSignatures(tb, junkCount) },
	}
	setupJunkReferrersTag = junkSetup{
		name: "5000 junk referrers (referrers tag) + 1 valid bundle", format: signature.FormatBundle, hostile: true,
		addJunk: func(tb testing.TB, be *junkEnv) {
			if err := appendJunkReferrersTag(be.reg.Host, be.repo, be.digest, junkCount); err != nil {
				tb.Fatal(err)
			}
		},
	}
	setupJunkReferrersAPI = junkSetup{
		name: "5000 junk referrers (referrers API) + 1 valid bundle", format: signature.FormatBundle, api: true, hostile: true,
		addJunk: func(tb testing.TB, be *junkEnv) {
			if _, err := pushJunkReferrers(be.reg.Host, be.repo, be.digest, junkCount); err != nil {
				tb.Fatal(err)
			}
		},
	}
)

func (s junkSetup) build(tb testing.TB) *junkEnv {
	tb.Helper()
	be := newJunkEnv(tb, s.api)
	be.sign(tb, s.format)
	if s.addJunk != nil {
		s.addJunk(tb, be)
	}
	return be
}

// verifyOnce is one verification as one CLI invocation does it: a fresh
// Verifier for the tag.
func (be *junkEnv) verifyOnce(tb testing.TB) *Result {
	res, err := New(be.policy, WithClock(func() time.Time { return now })).Verify(context.Background(), be.repo.Tag("main").String())
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// checkVerdict fails tb unless a hostile setup is untrusted for its length
// and a baseline trusted.
func (s junkSetup) checkVerdict(tb testing.TB, res *Result) {
	tb.Helper()
	if s.hostile {
		if res.Trusted || res.Verdict != VerdictUntrusted || !strings.Contains(res.Reason(), junkReason) {
			tb.Fatalf("%s: Verify = %s (%s); want untrusted: %s", s.name, res.Verdict, res.Reason(), junkReason)
		}
		return
	}
	if !res.Trusted {
		tb.Fatalf("%s: Verify = %s (%s); want trusted", s.name, res.Verdict, res.Reason())
	}
}

// benchJunk measures Verify on setup s; for a hostile setup it also reports
// how many times the baseline's time one verification takes
// (x-baseline), from a baseline measured in the same process.
func benchJunk(b *testing.B, s junkSetup, baseline *junkSetup) {
	be := s.build(b)
	s.checkVerdict(b, be.verifyOnce(b))
	b.ReportAllocs()
	for b.Loop() {
		be.verifyOnce(b)
	}
	if baseline == nil {
		return
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	bb := baseline.build(b)
	baseline.checkVerdict(b, bb.verifyOnce(b))
	const warmup, rounds = 20, 300
	for range warmup {
		bb.verifyOnce(b)
	}
	runtime.GC()
	start := time.Now()
	for range rounds {
		bb.verifyOnce(b)
	}
	base := float64(time.Since(start).Nanoseconds()) / rounds
	b.ReportMetric(perOp/base, "x-baseline")
}

// BenchmarkVerifyOneSignature is the baseline: one valid .sig signature.
func BenchmarkVerifyOneSignature(b *testing.B) { benchJunk(b, setupOneSignature, nil) }

// BenchmarkVerifyOneBundle is the baseline of the referrers variants: one
// valid bundle, through the referrers tag.
func BenchmarkVerifyOneBundle(b *testing.B) { benchJunk(b, setupOneBundle, nil) }

// BenchmarkVerifyOneBundleReferrersAPI: one valid bundle, through the
// referrers API.
func BenchmarkVerifyOneBundleReferrersAPI(b *testing.B) { benchJunk(b, setupOneBundleAPI, nil) }

// BenchmarkVerify5000Junk: 5,000 junk .sig layers and one valid one.
func BenchmarkVerify5000Junk(b *testing.B) { benchJunk(b, setupJunkSig, &setupOneSignature) }

// BenchmarkVerify5000JunkReferrers: 5,000 junk entries in the referrers
// tag and one valid bundle.
func BenchmarkVerify5000JunkReferrers(b *testing.B) {
	benchJunk(b, setupJunkReferrersTag, &setupOneBundle)
}

// BenchmarkVerify5000JunkReferrersAPI: 5,000 junk referrers served by the
// referrers API and one valid bundle.
func BenchmarkVerify5000JunkReferrersAPI(b *testing.B) {
	benchJunk(b, setupJunkReferrersAPI, &setupOneBundleAPI)
}

// measureVerify runs f and returns how long it took, how many bytes the process
// allocated meanwhile (an upper bound on the heap's growth) and the peak
// growth of live heap objects seen by sampling every millisecond.
func measureVerify(f func()) (elapsed time.Duration, allocated, peak uint64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > base && v-base > peak {
				peak = v - base
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	start := time.Now()
	f()
	elapsed = time.Since(start)
	close(done)
	wg.Wait()
	runtime.ReadMemStats(&after)
	return elapsed, after.TotalAlloc - before.TotalAlloc, peak
}

// TestVerify5000JunkBounded: with 5,000 junk signatures and one valid one
// the verdict is untrusted ("more than 256 signatures"), never trusted nor
// inconclusive, it comes quickly, and one verification allocates less
// than heapBound in all (registry included), so the heap cannot grow more.
func TestVerify5000JunkBounded(t *testing.T) {
	check := func(t *testing.T, requests func() int64, verify func() *Result) {
		t.Helper()
		var res *Result
		before := requests()
		elapsed, allocated, peak := measureVerify(func() { res = verify() })
		n := requests() - before
		if res.Trusted || res.Verdict != VerdictUntrusted || !strings.Contains(res.Reason(), junkReason) {
			t.Errorf("Verify = %s (%s); want untrusted: %s", res.Verdict, res.Reason(), junkReason)
		}
		if allocated >= heapBound {
			t.Errorf("one verification allocated %d MiB; want < %d MiB", allocated>>20, heapBound>>20)
		}
		// Bounded work whatever the machine's speed: a handful of requests
		// (ping, tag, signature list, referrers), none per junk entry.
		if n > maxJunkRequests {
			t.Errorf("verification made %d registry requests; want at most %d (nothing fetched per junk signature)", n, maxJunkRequests)
		}
		// Generous, for the race detector on a loaded machine (about 0.1–0.2 s
		// without it, 0.5–4 s with it): a decision, not a hang until the 30 s
		// request timeout.
		if elapsed > 15*time.Second {
			t.Errorf("verification took %s; want a quick decision", elapsed)
		}
		t.Logf("verdict %s (%s) in %s with %d registry requests; allocated %.1f MiB, peak live-heap growth %.1f MiB (registry included)",
			res.Verdict, res.Reason(), elapsed.Round(time.Microsecond), n, float64(allocated)/(1<<20), float64(peak)/(1<<20))
	}

	t.Run(".sig tag", func(t *testing.T) {
		f := newFixture(t)
		p := f.policy(t, "", "")
		repo := f.reg.Repo(t, "team/app-cache")
		d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
		sign(t, f.ci, "ci", repo, d, now, nil)
		addJunkSignatures(t, repo, d, junkCount)
		// The manifest is under the body limit: refused by count, not size.
		desc, err := remote.Get(signature.SigTag(repo, d))
		if err != nil {
			t.Fatal(err)
		}
		if len(desc.Manifest) >= internalregistry.MaxResponseBody {
			t.Fatalf(".sig manifest of %d bytes; the test wants it under the %d-byte body limit", len(desc.Manifest), internalregistry.MaxResponseBody)
		}
		t.Logf(".sig manifest with %d layers: %d bytes (body limit %d)", junkCount+1, len(desc.Manifest), internalregistry.MaxResponseBody)
		check(t, func() int64 { return served(f.reg) }, func() *Result { return f.verify(t, p, repo.Tag("main").String()) })
	})

	t.Run("referrers tag", func(t *testing.T) {
		f := newFixture(t)
		p := f.policy(t, "", "")
		repo := f.reg.Repo(t, "team/app-cache")
		d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
		s := signature.Signer{Key: f.ci.priv, Builder: "ci", Now: func() time.Time { return now }}
		if _, err := s.SignBundle(context.Background(), repo, d, nil); err != nil {
			t.Fatal(err)
		}
		// One valid bundle alone is trusted: the junk is what refuses it.
		wantVerdict(t, f.verify(t, p, repo.Tag("main").String()), VerdictTrusted, "")
		if err := appendJunkReferrersTag(f.reg.Host, repo, d, junkCount); err != nil {
			t.Fatal(err)
		}
		check(t, func() int64 { return served(f.reg) }, func() *Result { return f.verify(t, p, repo.Tag("main").String()) })
	})

	t.Run("referrers API", func(t *testing.T) {
		be := newJunkEnv(t, true)
		be.sign(t, signature.FormatBundle)
		setupOneBundleAPI.checkVerdict(t, be.verifyOnce(t))
		if _, err := pushJunkReferrers(be.reg.Host, be.repo, be.digest, junkCount); err != nil {
			t.Fatal(err)
		}
		check(t, func() int64 { return served(be.reg) }, func() *Result { return be.verifyOnce(t) })
	})
}

// BenchmarkVerifyWarmWire: a new verifier (a new process) verifying a tag
// whose verdict, and the registry's ping, are in the ledger. Besides the
// requests the registry served (requests/op) it counts every request sent
// (wire-requests/op), which includes the https ping go-containerregistry
// tries first against a plain-http loopback registry: the registry never
// serves that one, but it costs a connection and a round trip. With the
// ping remembered (internal/registry/pingcache.go) both are 1: the HEAD.
//
//	go test -run '^$' -bench VerifyWarm ./verify
func BenchmarkVerifyWarmWire(b *testing.B) {
	env := newBenchEnv(b)
	l := newLedger(b)
	var wire atomic.Int64
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		wire.Add(1)
		return remote.DefaultTransport.RoundTrip(req)
	})
	opts := []Option{WithLedger(l), WithTransport(base), WithClock(func() time.Time { return now })}
	if res, _ := New(env.policy, opts...).Verify(context.Background(), env.tag); !res.Trusted {
		b.Fatalf("Verify(%q) = %s (%s)", env.tag, res.Verdict, res.Reason())
	}
	wire.Store(0)
	env.reg.Reset()
	n := 0
	for b.Loop() {
		if res, _ := New(env.policy, opts...).Verify(context.Background(), env.tag); !res.Trusted {
			b.Fatalf("Verify(%q) = %s", env.tag, res.Verdict)
		}
		n++
	}
	b.ReportMetric(float64(served(env.reg))/float64(n), "requests/op")
	b.ReportMetric(float64(wire.Load())/float64(n), "wire-requests/op")
}
