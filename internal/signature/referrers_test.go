package signature

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// testRegistry is the harness registry (internal/testreg), with or without
// the OCI 1.1 referrers API, bound to its test.
type testRegistry struct {
	*testreg.Registry
	t    *testing.T
	host string
}

func newTestRegistry(t *testing.T, referrers bool) *testRegistry {
	t.Helper()
	r := testreg.New(t, testreg.Referrers(referrers))
	return &testRegistry{Registry: r, t: t, host: r.Host}
}

// registryModes runs f against a registry with the referrers API and one
// without (the referrers tag fallback).
func registryModes(t *testing.T, f func(t *testing.T, reg *testRegistry)) {
	for _, referrers := range []bool{true, false} {
		mode := "referrers-api"
		if !referrers {
			mode = "tag-fallback"
		}
		t.Run(mode, func(t *testing.T) { f(t, newTestRegistry(t, referrers)) })
	}
}

// repo returns a repository on the registry.
func (tr *testRegistry) repo(path string) name.Repository {
	tr.t.Helper()
	return tr.Repo(tr.t, path)
}

// push pushes a random image to repo and returns its digest.
func (tr *testRegistry) push(repo name.Repository) v1.Hash {
	tr.t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := remote.Write(repo.Tag("latest"), img); err != nil {
		tr.t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		tr.t.Fatal(err)
	}
	return d
}

// seed stores a manifest directly in the registry (no client round trips,
// no referrers-tag maintenance): for large junk fixtures.
func (tr *testRegistry) seed(repo name.Repository, ref string, mediaType types.MediaType, raw []byte) {
	tr.t.Helper()
	tr.Seed(tr.t, repo, ref, mediaType, raw)
}

// seedJunk stores n distinct artifact manifests referring to subject and
// returns their descriptors, for a referrers tag.
func (tr *testRegistry) seedJunk(repo name.Repository, subject *v1.Descriptor, n int, artifactType string, configType types.MediaType) []v1.Descriptor {
	tr.t.Helper()
	var descs []v1.Descriptor
	for i := range n {
		rm, err := newRawManifest(v1.Manifest{
			SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifactType,
			Config:      v1.Descriptor{MediaType: configType, Size: 2, Digest: v1.Hash{Algorithm: "sha256", Hex: testHex}},
			Layers:      []v1.Descriptor{},
			Subject:     subject,
			Annotations: map[string]string{"n": fmt.Sprint(i)},
		})
		if err != nil {
			tr.t.Fatal(err)
		}
		tr.seed(repo, rm.digest.String(), types.OCIManifestSchema1, rm.raw)
		descs = append(descs, v1.Descriptor{
			MediaType: types.OCIManifestSchema1, Digest: rm.digest, Size: int64(len(rm.raw)), ArtifactType: artifactType,
		})
	}
	return descs
}

func subjectOf(t *testing.T, repo name.Repository, d v1.Hash) *v1.Descriptor {
	t.Helper()
	desc, err := remote.Head(repo.Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	return &v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
}

// attach pushes an artifact manifest with the given layers as a referrer of
// subject (through go-containerregistry, which maintains the referrers tag
// where needed) and returns its digest.
func attach(t *testing.T, repo name.Repository, subject *v1.Descriptor, m v1.Manifest, layers ...v1.Layer) v1.Hash {
	t.Helper()
	config := static.NewLayer([]byte("{}"), EmptyMediaType)
	for _, l := range append([]v1.Layer{config}, layers...) {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	m.SchemaVersion = 2
	if m.MediaType == "" {
		m.MediaType = types.OCIManifestSchema1
	}
	if m.Config.MediaType == "" {
		m.Config, _ = layerDescriptor(config)
	}
	for _, l := range layers {
		d, err := layerDescriptor(l)
		if err != nil {
			t.Fatal(err)
		}
		m.Layers = append(m.Layers, d)
	}
	m.Subject = subject
	rm, err := newRawManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(repo.Digest(rm.digest.String()), rm); err != nil {
		t.Fatal(err)
	}
	return rm.digest
}

func TestBundleRoundTrip(t *testing.T) {
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo := reg.repo("dev-bundle/cache")
		digest := reg.push(repo)
		k := testreg.Key(t)
		created := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		s := Signer{Key: k, Builder: "ci-main", Now: func() time.Time { return created }}

		added, err := s.SignBundle(ctx, repo, digest, map[string]string{AnnotationRef: "refs/heads/main", AnnotationIdentity: "spoofed"})
		if err != nil || !added {
			t.Fatalf("SignBundle = %v, %v; want added", added, err)
		}
		sigs, err := ReadBundles(ctx, repo, digest)
		if err != nil {
			t.Fatalf("ReadBundles = %v", err)
		}
		if len(sigs) != 1 {
			t.Fatalf("ReadBundles returned %d signatures; want 1: %+v", len(sigs), sigs)
		}
		got := sigs[0]
		if got.Err != nil || got.Format != FormatBundle || !strings.HasPrefix(got.Source, "referrer sha256:") {
			t.Fatalf("signature = %+v", got)
		}
		if err := keys.VerifySignature(k.Public(), got.SignedBytes(), got.Signature); err != nil {
			t.Errorf("signature does not verify over SignedBytes: %v", err)
		}
		st, err := ParseStatement(got.Payload)
		if err != nil {
			t.Fatalf("ParseStatement = %v", err)
		}
		if st.Digest() != digest {
			t.Errorf("statement digest = %s; want %s", st.Digest(), digest)
		}
		if id, ok := st.Identity(); !ok || id != repo.Name() {
			t.Errorf("Identity() = %q, %v; want %q", id, ok, repo.Name())
		}
		ann := st.Annotations()
		for k, want := range map[string]string{
			AnnotationBuilder: "ci-main", AnnotationCreated: "2025-06-01T12:00:00Z",
			AnnotationRef: "refs/heads/main", AnnotationIdentity: repo.Name(),
		} {
			if ann[k] != want {
				t.Errorf("annotation %s = %q; want %q", k, ann[k], want)
			}
		}

		// The referrer is what cosign v3 writes.
		idx, err := remote.Referrers(repo.Digest(digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		im, _ := idx.IndexManifest()
		if len(im.Manifests) != 1 {
			t.Fatalf("referrers = %+v", im.Manifests)
		}
		desc, err := remote.Get(repo.Digest(im.Manifests[0].Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIManifestSchema1 || m.ArtifactType != BundleMediaType ||
			m.Config.MediaType != EmptyMediaType || m.Config.Size != 2 ||
			m.Config.Digest.String() != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" ||
			len(m.Layers) != 1 || m.Layers[0].MediaType != BundleMediaType ||
			m.Subject == nil || m.Subject.Digest != digest ||
			m.Annotations[annotationBundlePredicateType] != SignPredicateType ||
			m.Annotations[annotationBundleContent] != "dsse-envelope" {
			t.Errorf("referrer manifest = %s", desc.Manifest)
		}
		_, err = remote.Head(repo.Tag("sha256-" + digest.Hex))
		if fallback := err == nil; fallback == (reg.handlerHasReferrers()) {
			t.Errorf("referrers tag present = %v with referrers API = %v", fallback, reg.handlerHasReferrers())
		}

		// The tag scheme is untouched.
		if legacy, err := ReadLegacy(ctx, repo, digest); err != nil || legacy != nil {
			t.Errorf("ReadLegacy = %v, %v; want none", legacy, err)
		}

		// Signing the same again is a no-op, whatever the time; other
		// annotations or another key add a signature.
		s.Now = func() time.Time { return created.Add(time.Hour) }
		if added, err := s.SignBundle(ctx, repo, digest, map[string]string{AnnotationRef: "refs/heads/main"}); err != nil || added {
			t.Errorf("SignBundle(same) = %v, %v; want a no-op", added, err)
		}
		if added, err := s.SignBundle(ctx, repo, digest, map[string]string{AnnotationRef: "refs/heads/other"}); err != nil || !added {
			t.Errorf("SignBundle(other annotations) = %v, %v; want added", added, err)
		}
		if added, err := (Signer{Key: testreg.Key(t)}).SignBundle(ctx, repo, digest, nil); err != nil || !added {
			t.Errorf("SignBundle(other key) = %v, %v; want added", added, err)
		}
		if sigs, err := ReadBundles(ctx, repo, digest); err != nil || len(sigs) != 3 {
			t.Errorf("ReadBundles = %d signatures, %v; want 3", len(sigs), err)
		}
	})
}

// handlerHasReferrers asks the registry whether it serves the referrers API.
func (tr *testRegistry) handlerHasReferrers() bool {
	req := httptest.NewRequest(http.MethodGet, "/v2/dev-bundle/cache/referrers/sha256:"+testHex, nil)
	rec := httptest.NewRecorder()
	tr.Handler.ServeHTTP(rec, req)
	return rec.Code == http.StatusOK
}

func TestReadBundlesNone(t *testing.T) {
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo := reg.repo("dev-bundle/cache")
		digest := reg.push(repo)
		if sigs, err := ReadBundles(ctx, repo, digest); err != nil || sigs != nil {
			t.Errorf("ReadBundles(unsigned) = %v, %v; want nil, nil", sigs, err)
		}
		missing := reg.repo("dev-bundle/missing")
		if sigs, err := ReadBundles(ctx, missing, digest); err != nil || sigs != nil {
			t.Errorf("ReadBundles(no repository) = %v, %v; want nil, nil", sigs, err)
		}
		if _, err := (Signer{Key: testreg.Key(t)}).SignBundle(ctx, missing, digest, nil); err == nil {
			t.Error("SignBundle of a digest the repository does not hold succeeded")
		}
	})
}

// TestBundleCopiedToOtherDigest: a valid bundle attached to another digest
// still verifies; only the statement's digest tells. The verifier must
// compare it.
func TestBundleCopiedToOtherDigest(t *testing.T) {
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo := reg.repo("dev-bundle/cache")
		signed, other := reg.push(repo), reg.push(repo)
		k := testreg.Key(t)
		st, err := NewStatement(signed, map[string]string{AnnotationIdentity: repo.Name()})
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewBundle(st, k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := AppendBundle(ctx, repo, other, b, AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		sigs, err := ReadBundles(ctx, repo, other)
		if err != nil || len(sigs) != 1 {
			t.Fatalf("ReadBundles = %v, %v", sigs, err)
		}
		if err := keys.VerifySignature(k.Public(), sigs[0].SignedBytes(), sigs[0].Signature); err != nil {
			t.Fatalf("copied signature does not verify: %v", err)
		}
		got, err := ParseStatement(sigs[0].Payload)
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest() != signed || got.Digest() == other {
			t.Errorf("statement digest = %s; want the original %s", got.Digest(), signed)
		}
	})
}

func TestReadBundlesMalformed(t *testing.T) {
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo := reg.repo("dev-bundle/cache")
		digest := reg.push(repo)
		subject := subjectOf(t, repo, digest)
		bundleManifest := v1.Manifest{ArtifactType: BundleMediaType}

		junk := attach(t, repo, subject, bundleManifest, static.NewLayer([]byte("{not json"), BundleMediaType))
		twoLayers := attach(t, repo, subject, bundleManifest,
			static.NewLayer([]byte("{}"), BundleMediaType), static.NewLayer([]byte("[]"), BundleMediaType))
		bigLayer := static.NewLayer(bytes.Repeat([]byte(" "), MaxBundleSize+1), BundleMediaType)
		big := attach(t, repo, subject, bundleManifest, bigLayer)
		bigDigest, _ := bigLayer.Digest()
		wrongLayer := attach(t, repo, subject, bundleManifest, static.NewLayer([]byte("{}"), "application/json"))
		// A bundle blob the registry does not have.
		config, _ := layerDescriptor(static.NewLayer([]byte("{}"), EmptyMediaType))
		lost, _ := layerDescriptor(static.NewLayer([]byte("never uploaded"), BundleMediaType))
		dangling, err := newRawManifest(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: BundleMediaType,
			Config: config, Layers: []v1.Descriptor{lost}, Subject: subject})
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Put(repo.Digest(dangling.digest.String()), dangling); err != nil {
			t.Fatal(err)
		}
		// Not bundles: skipped, not reported.
		attach(t, repo, subject, v1.Manifest{ArtifactType: "application/spdx+json"}, static.NewLayer([]byte("{}"), "application/spdx+json"))
		attach(t, repo, subject, v1.Manifest{}, static.NewLayer([]byte("{}"), "application/vnd.example+json"))
		attach(t, repo, subject, v1.Manifest{
			ArtifactType: BundleMediaType,
			Annotations:  map[string]string{annotationBundlePredicateType: "https://slsa.dev/provenance/v1"},
		}, static.NewLayer([]byte("{not json"), BundleMediaType))
		// A valid one among them.
		k := testreg.Key(t)
		if _, err := (Signer{Key: k}).SignBundle(ctx, repo, digest, nil); err != nil {
			t.Fatal(err)
		}

		reg.Reset()
		sigs, err := ReadBundles(ctx, repo, digest)
		if err != nil {
			t.Fatalf("ReadBundles = %v", err)
		}
		malformed := map[string]bool{}
		valid := 0
		for _, s := range sigs {
			switch {
			case s.Err == nil:
				if keys.VerifySignature(k.Public(), s.SignedBytes(), s.Signature) == nil {
					valid++
				}
			case IsMalformed(s.Err):
				malformed[strings.TrimPrefix(s.Source, "referrer ")] = true
			default:
				t.Errorf("%s: not malformed: %v", s.Source, s.Err)
			}
		}
		want := map[string]bool{junk.String(): true, twoLayers.String(): true, big.String(): true, wrongLayer.String(): true, dangling.digest.String(): true}
		if valid != 1 || len(sigs) != 6 || len(malformed) != len(want) {
			t.Errorf("ReadBundles: %d valid, malformed %v of %d; want 1 valid and malformed %v", valid, malformed, len(sigs), want)
		}
		for d := range want {
			if !malformed[d] {
				t.Errorf("referrer %s not reported malformed", d)
			}
		}
		if n := reg.Count("GET", "/blobs/"+bigDigest.String()); n != 0 {
			t.Errorf("the oversized bundle was fetched %d times", n)
		}
	})
}

// TestReadBundlesBounded: junk referrers cost a list entry each, not a
// fetch, and too many bundle-looking ones are refused unread.
func TestReadBundlesBounded(t *testing.T) {
	const junk = 1000
	for _, tc := range []struct {
		name         string
		artifactType string // of the junk
		configType   types.MediaType
		tooMany      bool
	}{
		{"other artifacts", "application/spdx+json", "application/spdx+json", false},
		{"bundle-looking", BundleMediaType, EmptyMediaType, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			registryModes(t, func(t *testing.T, reg *testRegistry) {
				ctx := context.Background()
				repo := reg.repo("dev-bundle/cache")
				digest := reg.push(repo)
				subject := subjectOf(t, repo, digest)
				k := testreg.Key(t)
				if _, err := (Signer{Key: k}).SignBundle(ctx, repo, digest, nil); err != nil {
					t.Fatal(err)
				}
				fallback := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
				if !reg.handlerHasReferrers() {
					idx, err := remote.Index(repo.Tag("sha256-" + digest.Hex))
					if err != nil {
						t.Fatal(err)
					}
					im, _ := idx.IndexManifest()
					fallback.Manifests = im.Manifests
				}
				fallback.Manifests = append(fallback.Manifests, reg.seedJunk(repo, subject, junk, tc.artifactType, tc.configType)...)
				if !reg.handlerHasReferrers() {
					raw, _ := json.Marshal(fallback)
					reg.seed(repo, "sha256-"+digest.Hex, types.OCIImageIndex, raw)
				}

				reg.Reset()
				start := time.Now()
				sigs, err := ReadBundles(ctx, repo, digest)
				elapsed := time.Since(start)
				fetched := reg.Count("GET", "/manifests/sha256:")
				if tc.tooMany {
					if !errors.Is(err, ErrTooManySignatures) {
						t.Errorf("ReadBundles = %d signatures, %v; want ErrTooManySignatures", len(sigs), err)
					}
					if fetched != 0 {
						t.Errorf("fetched %d referrer manifests before refusing", fetched)
					}
				} else {
					if err != nil || len(sigs) != 1 || sigs[0].Err != nil {
						t.Fatalf("ReadBundles = %+v, %v; want the one bundle", sigs, err)
					}
					if fetched != 1 {
						t.Errorf("fetched %d referrer manifests; want 1 (junk is skipped unread)", fetched)
					}
				}
				t.Logf("%d junk referrers: %v, %d manifest fetches", junk, elapsed, fetched)
			})
		})
	}
}

func TestReadBundlesRegistryFaults(t *testing.T) {
	forbid := func(match func(r *http.Request) bool) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !match(r) {
				return false
			}
			w.WriteHeader(http.StatusForbidden)
			return true
		}
	}
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo := reg.repo("dev-bundle/cache")
		digest := reg.push(repo)
		k := testreg.Key(t)
		attachCosignBundle(t, repo, digest, k) // no data: the blob is fetched
		sigs, err := ReadBundles(ctx, repo, digest)
		if err != nil || len(sigs) != 1 {
			t.Fatalf("ReadBundles = %v, %v", sigs, err)
		}
		referrer := strings.TrimPrefix(sigs[0].Source, "referrer ")

		// The list: an error, not "no signatures".
		reg.SetFault(forbid(func(r *http.Request) bool {
			return strings.Contains(r.URL.Path, "/referrers/") || strings.Contains(r.URL.Path, "/manifests/sha256-")
		}))
		if sigs, err := ReadBundles(ctx, repo, digest); err == nil {
			t.Errorf("ReadBundles with the list forbidden = %+v, nil; want an error", sigs)
		}

		// One referrer: an entry that is unreadable, not malformed.
		reg.SetFault(forbid(func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/manifests/"+referrer) }))
		sigs, err = ReadBundles(ctx, repo, digest)
		if err != nil || len(sigs) != 1 || sigs[0].Err == nil || IsMalformed(sigs[0].Err) {
			t.Errorf("ReadBundles with the referrer forbidden = %+v, %v; want one unreadable entry", sigs, err)
		}

		// A bundle blob that never ends: cut at the limit, malformed.
		reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
				return false
			}
			w.WriteHeader(http.StatusOK)
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for range 10 << 20 / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return true
				}
			}
			return true
		})
		sigs, err = ReadBundles(ctx, repo, digest)
		if err != nil || len(sigs) != 1 || !IsMalformed(sigs[0].Err) {
			t.Errorf("ReadBundles with an endless bundle = %+v, %v; want one malformed entry", sigs, err)
		}

		// Through registry.Options (as the verifier calls it), a huge
		// referrers list is cut by the transport: an error.
		reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.Contains(r.URL.Path, "/referrers/") && !strings.Contains(r.URL.Path, "/manifests/sha256-") {
				return false
			}
			if r.Method == http.MethodHead {
				return false
			}
			w.Header().Set("Content-Type", string(types.OCIImageIndex))
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`)
			entry := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:` + testHex + `","artifactType":"x"},`
			for range (registry.MaxResponseBody / len(entry)) + 10 {
				if _, err := io.WriteString(w, entry); err != nil {
					return true
				}
			}
			return true
		})
		if sigs, err := ReadBundles(ctx, repo, digest, registry.Options(ctx, nil, registry.DefaultTimeout)...); err == nil {
			t.Errorf("ReadBundles with a huge referrers list = %d signatures, nil; want an error", len(sigs))
		}
		reg.SetFault(nil)
	})
}

func TestSignBundleConcurrent(t *testing.T) {
	const signers, rounds = 8, 3
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo := reg.repo("dev-bundle/cache")
		ks := make([]*ecdsa.PrivateKey, signers)
		for i := range ks {
			ks[i] = testreg.Key(t)
		}
		for round := range rounds {
			digest := reg.push(repo)
			errs := make([]error, signers)
			var wg sync.WaitGroup
			for i, k := range ks {
				wg.Go(func() {
					_, errs[i] = (Signer{Key: k, Builder: fmt.Sprint("b", i)}).SignBundle(ctx, repo, digest, nil)
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("round %d: signer %d: %v", round, i, err)
				}
			}
			sigs, err := ReadBundles(ctx, repo, digest)
			if err != nil {
				t.Fatal(err)
			}
			for i, k := range ks {
				found := false
				for _, s := range sigs {
					if s.Err == nil && keys.VerifySignature(k.Public(), s.SignedBytes(), s.Signature) == nil {
						found = true
					}
				}
				if !found {
					t.Errorf("round %d: signer %d's bundle is missing (%d present)", round, i, len(sigs))
				}
			}
		}
	})
}

func TestSignBundleTooManyReferrers(t *testing.T) {
	reg := newTestRegistry(t, false)
	ctx := context.Background()
	repo := reg.repo("dev-bundle/cache")
	digest := reg.push(repo)
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: reg.seedJunk(repo, subjectOf(t, repo, digest), MaxSignatures+1, BundleMediaType, EmptyMediaType)}
	raw, _ := json.Marshal(idx)
	reg.seed(repo, "sha256-"+digest.Hex, types.OCIImageIndex, raw)
	if _, err := (Signer{Key: testreg.Key(t)}).SignBundle(ctx, repo, digest, nil); !errors.Is(err, ErrTooManySignatures) {
		t.Errorf("SignBundle with %d referrers = %v; want ErrTooManySignatures", MaxSignatures+1, err)
	}
}
