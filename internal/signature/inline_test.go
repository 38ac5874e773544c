package signature

// Payloads and bundles embedded in their layer descriptor's "data" field
// (OCI image-spec 1.1): what the signers write, when the readers use the
// embedded bytes instead of fetching the blob, and that content which is
// not what the descriptor's digest names is never used.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// flipped returns b with one byte changed: the same size, another digest.
func flipped(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01
	return c
}

func TestInlineContent(t *testing.T) {
	content := []byte(`{"critical":{"type":"cosign container image signature"}}`)
	sum512 := sha512.Sum512(content)
	for _, tc := range []struct {
		name   string
		change func(d *v1.Descriptor)
		want   bool
	}{
		{"data is the content the size and digest name", func(d *v1.Descriptor) {}, true},
		{"no data", func(d *v1.Descriptor) { d.Data = nil }, false},
		{"empty data", func(d *v1.Descriptor) { d.Data = []byte{} }, false},
		{"data of another content, same size", func(d *v1.Descriptor) { d.Data = flipped(content) }, false},
		{"declared size larger than the data", func(d *v1.Descriptor) { d.Size++ }, false},
		{"declared size smaller than the data", func(d *v1.Descriptor) { d.Size-- }, false},
		{"data cut to a smaller declared size", func(d *v1.Descriptor) { d.Size--; d.Data = d.Data[:d.Size] }, false},
		{"negative size", func(d *v1.Descriptor) { d.Size = -1 }, false},
		{"digest that is not sha256, even when the data matches it", func(d *v1.Descriptor) {
			d.Digest = v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(sum512[:])}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := v1.Descriptor{
				MediaType: ctypes.SimpleSigningMediaType,
				Size:      int64(len(content)),
				Digest:    sha256Hash(content),
				Data:      bytes.Clone(content),
			}
			tc.change(&d)
			got, ok := inlineContent(d)
			if ok != tc.want {
				t.Fatalf("inlineContent(%+v) ok = %v; want %v", d, ok, tc.want)
			}
			if ok && !bytes.Equal(got, content) {
				t.Errorf("inlineContent = %q; want %q", got, content)
			}
			if !ok && got != nil {
				t.Errorf("inlineContent refused the data but returned %q", got)
			}
		})
	}
}

// TestInlineBoundFitsManifest: a signature list of MaxSignatures entries
// that all embed a payload of MaxInlineSize bytes (base64, plus the
// descriptor and its signature annotation) still fits in one response
// body, which registries bound the same way for manifests.
func TestInlineBoundFitsManifest(t *testing.T) {
	const descriptorOverhead = 512 // media type, digest, size, the signature annotation, JSON
	perEntry := base64.StdEncoding.EncodedLen(MaxInlineSize) + descriptorOverhead
	if total := MaxSignatures * perEntry; total > registry.MaxResponseBody/2 {
		t.Errorf("%d inline entries of %d bytes make a %d-byte manifest; want at most half of the %d-byte response limit",
			MaxSignatures, MaxInlineSize, total, registry.MaxResponseBody)
	}
}

// manifestLayers returns the raw JSON of each layer descriptor of the
// manifest at ref, as the registry serves it, and the parsed manifest.
func manifestLayers(t *testing.T, ref name.Reference) ([]json.RawMessage, *v1.Manifest) {
	t.Helper()
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Layers []json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(desc.Manifest, &raw); err != nil {
		t.Fatal(err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	return raw.Layers, m
}

// blobContent fetches a blob of repo by digest.
func blobContent(t *testing.T, repo name.Repository, d v1.Hash) []byte {
	t.Helper()
	l, err := remote.Layer(repo.Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
	return b
}

// cosignStyleSign attaches a signature as cosign v2 does: the payload blob
// and a layer descriptor without data.
func cosignStyleSign(t *testing.T, repo name.Repository, d v1.Hash, s Signer) {
	t.Helper()
	payload, err := NewPayload(repo.Name(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := keys.Sign(s.Key, payload)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(emptySignatures(), mutate.Addendum{
		Layer:       static.NewLayer(payload, ctypes.SimpleSigningMediaType),
		MediaType:   ctypes.SimpleSigningMediaType,
		Annotations: map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(SigTag(repo, d), img); err != nil {
		t.Fatal(err)
	}
}

// TestSignEmbedsPayload: Sign writes the payload both as a blob (for
// cosign and every other reader) and in the new layer descriptor's data;
// the descriptors already in the list are kept byte for byte; a payload
// over MaxInlineSize is not embedded.
func TestSignEmbedsPayload(t *testing.T) {
	reg := newTestRegistry(t, false)
	ctx := context.Background()
	repo := reg.repo("team/cache")
	d := reg.push(repo)
	tag := SigTag(repo, d)
	cosignStyleSign(t, repo, d, newSigner(t, "cosign"))
	before, _ := manifestLayers(t, tag)
	if len(before) != 1 || bytes.Contains(before[0], []byte(`"data"`)) {
		t.Fatalf("cosign-style layer = %s; want one layer without data", before)
	}

	if _, err := newSigner(t, "ci").Sign(ctx, repo, d, map[string]string{AnnotationRef: "refs/heads/main"}); err != nil {
		t.Fatal(err)
	}
	big := map[string]string{AnnotationRun: strings.Repeat("r", MaxInlineSize)}
	if _, err := newSigner(t, "big").Sign(ctx, repo, d, big); err != nil {
		t.Fatal(err)
	}
	after, m := manifestLayers(t, tag)
	if len(after) != 3 {
		t.Fatalf("signature list has %d layers; want 3", len(after))
	}
	if !bytes.Equal(after[0], before[0]) {
		t.Errorf("the existing layer descriptor changed:\nbefore %s\nafter  %s", before[0], after[0])
	}

	ours := m.Layers[1]
	blob := blobContent(t, repo, ours.Digest)
	if ours.Data == nil || !bytes.Equal(ours.Data, blob) || ours.Size != int64(len(blob)) {
		t.Errorf("new layer data = %q (size %d); want the payload blob %q", ours.Data, ours.Size, blob)
	}
	if p, err := ParsePayload(ours.Data); err != nil || p.Digest() != d {
		t.Errorf("embedded payload = %v, %v; want a payload for %s", p, err, d)
	}
	if ours.MediaType != ctypes.SimpleSigningMediaType || ours.Annotations[SignatureAnnotation] == "" {
		t.Errorf("new layer = %+v; want the simple-signing media type and the signature annotation", ours)
	}

	large := m.Layers[2]
	if large.Data != nil {
		t.Errorf("a %d-byte payload was embedded; want only payloads of at most %d bytes", large.Size, MaxInlineSize)
	}
	if n := len(blobContent(t, repo, large.Digest)); n <= MaxInlineSize {
		t.Fatalf("the large payload is %d bytes; the test wants one over %d", n, MaxInlineSize)
	}

	sigs, err := ReadLegacy(ctx, repo, d)
	if err != nil || len(sigs) != 3 {
		t.Fatalf("ReadLegacy = %+v, %v; want 3 signatures", sigs, err)
	}
	for _, s := range sigs {
		if s.Err != nil || len(s.Payload) == 0 {
			t.Errorf("%s: payload %q, %v", s.Source, s.Payload, s.Err)
		}
	}
}

// sigLayout is a signed digest's .sig manifest and the genuine payload of
// its one layer.
type sigLayout struct {
	repo    name.Repository
	digest  v1.Hash
	m       *v1.Manifest
	payload []byte
	sig     Signer
}

// newSigLayout signs a fresh digest and returns its .sig manifest.
func newSigLayout(t *testing.T, reg *testRegistry) *sigLayout {
	t.Helper()
	repo := reg.repo("team/cache")
	d := reg.push(repo)
	s := newSigner(t, "ci")
	if _, err := s.Sign(context.Background(), repo, d, nil); err != nil {
		t.Fatal(err)
	}
	_, m := manifestLayers(t, SigTag(repo, d))
	if len(m.Layers) != 1 || m.Layers[0].Data == nil {
		t.Fatalf("signature manifest = %+v; want one layer with data", m)
	}
	return &sigLayout{repo: repo, digest: d, m: m, payload: bytes.Clone(m.Layers[0].Data), sig: s}
}

// put writes m as the .sig manifest, as given.
func (sl *sigLayout) put(t *testing.T, reg *testRegistry, m *v1.Manifest) {
	t.Helper()
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	reg.seed(sl.repo, SigTag(sl.repo, sl.digest).TagStr(), m.MediaType, raw)
}

// TestReadLegacyInline: an embedded payload is used only when it is the
// content the descriptor's size and digest name; otherwise the blob is
// fetched and what it holds decides, exactly as for a signature without
// data. A payload that would verify never counts when the digest names
// something else.
func TestReadLegacyInline(t *testing.T) {
	// serveOther answers GETs of blob with other bytes.
	serveOther := func(reg *testRegistry, blob v1.Hash, body []byte) {
		reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+blob.String()) {
				return false
			}
			w.Write(body)
			return true
		})
	}
	for _, tc := range []struct {
		name string
		// tamper changes the manifest or the registry; it returns the
		// payload ReadLegacy must return (nil: an entry error).
		tamper     func(t *testing.T, reg *testRegistry, sl *sigLayout) []byte
		blobGets   int
		wantVerify bool
	}{{
		name:     "untouched: the embedded payload, no blob fetched",
		tamper:   func(t *testing.T, reg *testRegistry, sl *sigLayout) []byte { return sl.payload },
		blobGets: 0, wantVerify: true,
	}, {
		name: "valid data, the registry serves other bytes for the blob",
		tamper: func(t *testing.T, reg *testRegistry, sl *sigLayout) []byte {
			serveOther(reg, sl.m.Layers[0].Digest, flipped(sl.payload))
			return sl.payload
		},
		blobGets: 0, wantVerify: true,
	}, {
		name: "data swapped for other content of the same size, valid blob",
		tamper: func(t *testing.T, reg *testRegistry, sl *sigLayout) []byte {
			sl.m.Layers[0].Data = flipped(sl.payload)
			sl.put(t, reg, sl.m)
			return sl.payload
		},
		blobGets: 1, wantVerify: true,
	}, {
		name: "data that would verify, digest and size of another blob",
		tamper: func(t *testing.T, reg *testRegistry, sl *sigLayout) []byte {
			other := static.NewLayer(flipped(sl.payload), ctypes.SimpleSigningMediaType)
			if err := remote.WriteLayer(sl.repo, other); err != nil {
				t.Fatal(err)
			}
			sl.m.Layers[0].Digest, _ = other.Digest()
			sl.put(t, reg, sl.m) // data: still the genuine, signed payload
			return flipped(sl.payload)
		},
		blobGets: 1, wantVerify: false,
	}, {
		name: "declared size that does not match the data",
		tamper: func(t *testing.T, reg *testRegistry, sl *sigLayout) []byte {
			sl.m.Layers[0].Size++
			sl.put(t, reg, sl.m)
			return sl.payload
		},
		blobGets: 1, wantVerify: true,
	}, {
		name: "data that does not match, blob content that does not match either",
		tamper: func(t *testing.T, reg *testRegistry, sl *sigLayout) []byte {
			sl.m.Layers[0].Data = flipped(sl.payload)
			sl.put(t, reg, sl.m)
			serveOther(reg, sl.m.Layers[0].Digest, flipped(sl.payload))
			return nil
		},
		blobGets: 1, wantVerify: false,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, false)
			sl := newSigLayout(t, reg)
			want := tc.tamper(t, reg, sl)
			reg.Reset()
			sigs, err := ReadLegacy(context.Background(), sl.repo, sl.digest)
			if err != nil || len(sigs) != 1 {
				t.Fatalf("ReadLegacy = %+v, %v; want one entry", sigs, err)
			}
			s := sigs[0]
			if n := reg.Count("GET", "/blobs/"); n != tc.blobGets {
				t.Errorf("%d payload blob fetches; want %d", n, tc.blobGets)
			}
			if want == nil {
				if s.Err == nil || IsMalformed(s.Err) {
					t.Errorf("entry error = %v; want an unreadable entry, as for any blob that does not match its digest", s.Err)
				}
			} else if s.Err != nil || !bytes.Equal(s.Payload, want) {
				t.Errorf("payload = %q, %v; want %q", s.Payload, s.Err, want)
			}
			verifies := s.Err == nil && keys.VerifySignature(sl.sig.Key.Public(), s.Payload, s.Signature) == nil
			if verifies != tc.wantVerify {
				t.Errorf("signature verifies = %v; want %v", verifies, tc.wantVerify)
			}
		})
	}
}

// TestSignBundleEmbedsBundle: the bundle referrer's layer carries the
// bundle in data as well as in its blob, and ReadBundles reads it without
// fetching the blob.
func TestSignBundleEmbedsBundle(t *testing.T) {
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo := reg.repo("dev-bundle/cache")
		digest := reg.push(repo)
		k := testreg.Key(t)
		if _, err := (Signer{Key: k, Now: func() time.Time { return time.Unix(0, 0) }}).SignBundle(ctx, repo, digest, nil); err != nil {
			t.Fatal(err)
		}
		_, m := referrerManifest(t, repo, digest)
		l := m.Layers[0]
		if blob := blobContent(t, repo, l.Digest); l.Data == nil || !bytes.Equal(l.Data, blob) {
			t.Errorf("bundle layer data = %q; want the bundle blob %q", l.Data, blob)
		}
		if m.Config.Data != nil {
			t.Errorf("config descriptor has data %q; want it as before", m.Config.Data)
		}

		reg.Reset()
		sigs, err := ReadBundles(ctx, repo, digest)
		if err != nil || len(sigs) != 1 || sigs[0].Err != nil {
			t.Fatalf("ReadBundles = %+v, %v; want one bundle", sigs, err)
		}
		if err := keys.VerifySignature(k.Public(), sigs[0].SignedBytes(), sigs[0].Signature); err != nil {
			t.Errorf("the bundle does not verify: %v", err)
		}
		if n := reg.Count("GET", "/blobs/"); n != 0 {
			t.Errorf("%d bundle blob fetches; want 0 (embedded)", n)
		}
	})
}

// referrerManifest returns the one referrer of digest and its manifest.
func referrerManifest(t *testing.T, repo name.Repository, digest v1.Hash) (v1.Hash, *v1.Manifest) {
	t.Helper()
	idx, err := remote.Referrers(repo.Digest(digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("referrers = %+v, %v; want one", im, err)
	}
	_, m := manifestLayers(t, repo.Digest(im.Manifests[0].Digest.String()))
	return im.Manifests[0].Digest, m
}

// TestReadBundlesInline: the bundle path applies the same rule as the tag
// scheme. Each case attaches a referrer whose layer descriptor has been
// tampered with.
func TestReadBundlesInline(t *testing.T) {
	for _, tc := range []struct {
		name string
		// layer returns the bundle layer descriptor to attach, given the
		// genuine bundle and a garbage blob of the same size (both pushed).
		layer      func(genuine, garbage v1.Descriptor) v1.Descriptor
		blobGets   int
		wantVerify bool
	}{{
		name:     "data swapped for other content of the same size, valid blob",
		layer:    func(g, x v1.Descriptor) v1.Descriptor { g.Data = x.Data; return g },
		blobGets: 1, wantVerify: true,
	}, {
		name:     "data that would verify, digest of another blob",
		layer:    func(g, x v1.Descriptor) v1.Descriptor { x.Data = g.Data; return x },
		blobGets: 1, wantVerify: false,
	}, {
		name:     "declared size that does not match the data",
		layer:    func(g, x v1.Descriptor) v1.Descriptor { g.Size++; return g },
		blobGets: 1, wantVerify: true,
	}, {
		name:     "no data (as cosign writes)",
		layer:    func(g, x v1.Descriptor) v1.Descriptor { g.Data = nil; return g },
		blobGets: 1, wantVerify: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t, false)
			ctx := context.Background()
			repo := reg.repo("dev-bundle/cache")
			digest := reg.push(repo)
			k := testreg.Key(t)
			st, err := NewStatement(digest, nil)
			if err != nil {
				t.Fatal(err)
			}
			bundle, err := NewBundle(st, k)
			if err != nil {
				t.Fatal(err)
			}
			var descs [2]v1.Descriptor
			for i, b := range [][]byte{bundle, flipped(bundle)} {
				l := static.NewLayer(b, BundleMediaType)
				if err := remote.WriteLayer(repo, l); err != nil {
					t.Fatal(err)
				}
				if descs[i], err = layerDescriptor(l); err != nil {
					t.Fatal(err)
				}
				descs[i].Data = b
			}
			m := v1.Manifest{
				SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: BundleMediaType,
				Layers: []v1.Descriptor{tc.layer(descs[0], descs[1])},
			}
			attachRaw(t, repo, subjectOf(t, repo, digest), m)

			reg.Reset()
			sigs, err := ReadBundles(ctx, repo, digest)
			if err != nil || len(sigs) != 1 {
				t.Fatalf("ReadBundles = %+v, %v; want one entry", sigs, err)
			}
			if n := reg.Count("GET", "/blobs/"); n != tc.blobGets {
				t.Errorf("%d bundle blob fetches; want %d", n, tc.blobGets)
			}
			s := sigs[0]
			verifies := s.Err == nil && keys.VerifySignature(k.Public(), s.SignedBytes(), s.Signature) == nil
			if verifies != tc.wantVerify {
				t.Errorf("bundle verifies = %v (entry error %v); want %v", verifies, s.Err, tc.wantVerify)
			}
		})
	}
}

// attachRaw pushes m, with the empty config, as a referrer of subject.
func attachRaw(t *testing.T, repo name.Repository, subject *v1.Descriptor, m v1.Manifest) {
	t.Helper()
	config := static.NewLayer([]byte("{}"), EmptyMediaType)
	if err := remote.WriteLayer(repo, config); err != nil {
		t.Fatal(err)
	}
	var err error
	if m.Config, err = layerDescriptor(config); err != nil {
		t.Fatal(err)
	}
	m.Subject = subject
	rm, err := newRawManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(repo.Digest(rm.digest.String()), rm); err != nil {
		t.Fatal(err)
	}
}

// attachCosignBundle attaches a bundle by k over digest as cosign v3
// writes it: the referrer manifest of AppendBundle, its layer descriptor
// without data, so that readers fetch the bundle blob.
func attachCosignBundle(t *testing.T, repo name.Repository, digest v1.Hash, k crypto.Signer) {
	t.Helper()
	st, err := NewStatement(digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := NewBundle(st, k)
	if err != nil {
		t.Fatal(err)
	}
	attach(t, repo, subjectOf(t, repo, digest), v1.Manifest{
		ArtifactType: BundleMediaType,
		Annotations: map[string]string{
			annotationImageCreated:        time.Now().UTC().Format(time.RFC3339),
			annotationBundleContent:       "dsse-envelope",
			annotationBundlePredicateType: SignPredicateType,
		},
	}, static.NewLayer(bundle, BundleMediaType))
}
