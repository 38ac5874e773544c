package signature

// Attack tests for docs/SECURITY.md on the referrers path: nested, deep
// and self-referring indexes in the referrers list, lying media types, and
// content that does not match its digest.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// TestReadBundlesNestedIndexes: a registry without the referrers API
// (the tag fallback) whose referrers tag lists, next to one valid bundle, a
// chain of 64 nested indexes, a descriptor that calls an index a manifest,
// one that points at the signed image itself, and the previous version of
// the referrers tag (the only "cycle" content addressing allows: through a
// tag). Nothing is followed past one level: the read ends, the valid bundle
// is found, and no nested index is fetched.
func TestReadBundlesNestedIndexes(t *testing.T) {
	const depth = 64
	reg := newTestRegistry(t, false)
	ctx := context.Background()
	repo := reg.repo("dev-bundle/cache")
	digest := reg.push(repo)
	subject := subjectOf(t, repo, digest)
	k := testreg.Key(t)
	if _, err := (Signer{Key: k}).SignBundle(ctx, repo, digest, nil); err != nil {
		t.Fatal(err)
	}
	fallbackTag := repo.Tag("sha256-" + digest.Hex)
	prev, err := remote.Get(fallbackTag)
	if err != nil {
		t.Fatal(err)
	}
	var fallback v1.IndexManifest
	if err := json.Unmarshal(prev.Manifest, &fallback); err != nil {
		t.Fatal(err)
	}
	if len(fallback.Manifests) != 1 {
		t.Fatalf("referrers tag lists %d entries; want the one bundle", len(fallback.Manifests))
	}

	// idx[0] lists the signed image; idx[i] lists idx[i-1].
	chain := map[string]bool{}
	child := *subject
	var top v1.Descriptor
	for i := range depth {
		rm, err := newRawIndex(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{child}})
		if err != nil {
			t.Fatal(err)
		}
		reg.seed(repo, rm.digest.String(), types.OCIImageIndex, rm.raw)
		top = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: rm.digest, Size: int64(len(rm.raw)), ArtifactType: BundleMediaType}
		child = top
		if i < depth-1 {
			chain[rm.digest.String()] = true
		}
	}
	lying := top
	lying.MediaType = types.OCIManifestSchema1 // an index that says it is a manifest
	self := *subject
	self.MediaType = types.OCIManifestSchema1 // the signed image itself, as a referrer
	old := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: prev.Digest, Size: prev.Size}
	fallback.Manifests = append(fallback.Manifests, top, lying, self, old)
	raw, err := json.Marshal(fallback)
	if err != nil {
		t.Fatal(err)
	}
	reg.seed(repo, fallbackTag.TagStr(), types.OCIImageIndex, raw)

	reg.Reset()
	sigs, err := ReadBundles(ctx, repo, digest)
	if err != nil || len(sigs) != 1 || sigs[0].Err != nil {
		t.Fatalf("ReadBundles = %+v, %v; want the one bundle", sigs, err)
	}
	if err := keys.VerifySignature(k.Public(), sigs[0].SignedBytes(), sigs[0].Signature); err != nil {
		t.Errorf("the bundle found does not verify: %v", err)
	}
	for d := range chain {
		if n := reg.Count("GET", "/manifests/"+d); n != 0 {
			t.Errorf("nested index %s was fetched %d times; want 0", d, n)
		}
	}
	if n := reg.Count("GET", "/manifests/"+prev.Digest.String()); n != 0 {
		t.Errorf("the previous referrers list was fetched %d times; want 0", n)
	}
	// The bundle, the index that lied about its type and the image itself:
	// one fetch each, and no further.
	if n := reg.Count("GET", "/manifests/sha256:"); n != 3 {
		t.Errorf("%d manifests fetched by digest; want 3", n)
	}
}

// newRawIndex serializes an index as it will be pushed.
func newRawIndex(im v1.IndexManifest) (rawManifest, error) {
	raw, err := json.Marshal(im)
	if err != nil {
		return rawManifest{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return rawManifest{}, err
	}
	return rawManifest{raw: raw, digest: h}, nil
}

// TestReadBundlesContentMismatch: a registry that serves, for a referrer
// manifest or a bundle blob fetched by digest, bytes of another digest. The
// client checks what it received: the entry is unreadable (an error that is
// not "malformed", so the verifier reports inconclusive), never a
// signature.
func TestReadBundlesContentMismatch(t *testing.T) {
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
		desc, err := remote.Get(repo.Digest(referrer))
		if err != nil {
			t.Fatal(err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			t.Fatal(err)
		}
		blob := m.Layers[0].Digest

		// Another, valid bundle signed by the same key over another digest:
		// what a lying registry would substitute.
		other := reg.push(repo)
		st, err := NewStatement(other, nil)
		if err != nil {
			t.Fatal(err)
		}
		otherBundle, err := NewBundle(st, k)
		if err != nil {
			t.Fatal(err)
		}
		otherManifest := strings.Replace(string(desc.Manifest), `"dsse-envelope"`, `"dsse-envelope "`, 1)

		for _, tc := range []struct {
			name  string
			path  string
			body  []byte
			ctype string
		}{
			{"referrer manifest", "/manifests/" + referrer, []byte(otherManifest), string(types.OCIManifestSchema1)},
			{"bundle blob", "/blobs/" + blob.String(), otherBundle, BundleMediaType},
		} {
			t.Run(tc.name, func(t *testing.T) {
				reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, tc.path) {
						return false
					}
					w.Header().Set("Content-Type", tc.ctype)
					w.Write(tc.body)
					return true
				})
				t.Cleanup(func() { reg.SetFault(nil) })
				sigs, err := ReadBundles(ctx, repo, digest)
				if err != nil || len(sigs) != 1 {
					t.Fatalf("ReadBundles = %+v, %v; want one entry", sigs, err)
				}
				if sigs[0].Err == nil || IsMalformed(sigs[0].Err) {
					t.Errorf("ReadBundles with %s bytes of another digest: entry error %v; want an unreadable (not malformed) entry", tc.name, sigs[0].Err)
				}
				t.Log(sigs[0].Err)
			})
		}
	})
}
