package verify

// Signature payloads embedded in the .sig manifest's layer descriptors
// ("data", OCI image-spec 1.1): what they save, and that the verdict always
// follows the content the descriptor's digest names — embedded bytes that
// are not that content never count, and a signature without data (as
// cosign writes it) is fetched and verified as before.

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// stripData rewrites digest's .sig manifest without data in its layer
// descriptors: the signature list as cosign writes it.
func stripData(t *testing.T, repo name.Repository, d v1.Hash) {
	t.Helper()
	m := sigManifest(t, repo, d)
	for i := range m.Layers {
		if m.Layers[i].Data == nil {
			t.Fatalf("layer %d of the .sig manifest has no data; trustcache's signer embeds the payload", i)
		}
		m.Layers[i].Data = nil
	}
	putSigManifest(t, repo, d, m)
}

// blobWatch counts the registry's blob GETs and, when serve is set, answers
// GETs of that blob with body instead of the registry.
type blobWatch struct {
	gets  atomic.Int64
	serve *v1.Hash
	body  []byte
}

func (bw *blobWatch) install(f *fixture) {
	f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			return false
		}
		bw.gets.Add(1)
		if bw.serve == nil || !strings.HasSuffix(r.URL.Path, "/blobs/"+bw.serve.String()) {
			return false
		}
		w.Write(bw.body)
		return true
	})
}

// flip returns b with one byte changed: the same size, another digest.
func flip(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01
	return c
}

// TestVerifyInlineData: an attacker who can rewrite the signature list
// changes the embedded payload, the blob behind it, or the descriptor's
// size or digest. The verdict follows the content the digest names: the
// embedded payload when it is exactly that content (no blob fetched), else
// the blob, judged as a blob always is. Embedded bytes that are not what
// the digest names never make a cache trusted, even when they are a
// genuine signed payload.
func TestVerifyInlineData(t *testing.T) {
	tests := []struct {
		name string
		// attack gets the genuine .sig manifest (one layer, ci's signature
		// with its payload embedded) and changes it or the registry.
		attack   func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch)
		want     Verdict
		why      string
		blobGets int64
	}{{
		name:   "untouched",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {},
		want:   VerdictTrusted, blobGets: 0,
	}, {
		name: "valid data, the registry serves garbage for the blob",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {
			bw.serve, bw.body = &m.Layers[0].Digest, flip(m.Layers[0].Data)
		},
		want: VerdictTrusted, blobGets: 0,
	}, {
		name: "data swapped for other content of the same size, valid blob",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {
			m.Layers[0].Data = flip(m.Layers[0].Data)
			putSigManifest(t, repo, d, m)
		},
		want: VerdictTrusted, blobGets: 1,
	}, {
		name: "data swapped, blob garbage too",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {
			genuine := m.Layers[0].Data
			m.Layers[0].Data = flip(genuine)
			putSigManifest(t, repo, d, m)
			bw.serve, bw.body = &m.Layers[0].Digest, flip(genuine)
		},
		want: VerdictInconclusive, why: "checksum", blobGets: 1, // as TestRegistryFaults' blob of another digest
	}, {
		name: "genuine signed payload as data, digest of another blob",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {
			other := static.NewLayer(flip(m.Layers[0].Data), types.MediaType(m.Layers[0].MediaType))
			if err := remote.WriteLayer(repo, other); err != nil {
				t.Fatal(err)
			}
			m.Layers[0].Digest, _ = other.Digest()
			putSigManifest(t, repo, d, m)
		},
		want: VerdictUntrusted, why: "not signed by any key in the policy", blobGets: 1,
	}, {
		name: "genuine signed payload as data, digest of no blob",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {
			m.Layers[0].Digest = junkDigest
			putSigManifest(t, repo, d, m)
		},
		want: VerdictInconclusive, blobGets: 1, // as a signature whose payload blob is missing
	}, {
		name: "declared size larger than the data",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {
			m.Layers[0].Size++
			putSigManifest(t, repo, d, m)
		},
		want: VerdictTrusted, blobGets: 1, // the blob is what the digest names
	}, {
		name: "data cut short to a matching declared size",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {
			m.Layers[0].Size--
			m.Layers[0].Data = m.Layers[0].Data[:m.Layers[0].Size]
			putSigManifest(t, repo, d, m)
		},
		want: VerdictTrusted, blobGets: 1,
	}, {
		name: "digest that is not sha256",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {
			sum := sha512.Sum512(m.Layers[0].Data)
			m.Layers[0].Digest = v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(sum[:])}
			putSigManifest(t, repo, d, m)
		},
		// The data is ignored: the blob is fetched by its sha512 digest,
		// which the registry does not have.
		want: VerdictInconclusive, why: "fetching payload sha512:", blobGets: 1,
	}, {
		name: "tampered data next to an untouched signature",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash, m *v1.Manifest, bw *blobWatch) {
			bad := m.Layers[0]
			bad.Data = flip(bad.Data)
			bad.Digest = junkDigest
			m.Layers = append([]v1.Descriptor{bad}, m.Layers...)
			putSigManifest(t, repo, d, m)
		},
		want: VerdictTrusted, blobGets: 1,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(t, "", "")
			repo := f.reg.Repo(t, "team/app-cache")
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			sign(t, f.ci, "ci", repo, d, now, nil)
			m := sigManifest(t, repo, d)
			if len(m.Layers) != 1 || m.Layers[0].Data == nil {
				t.Fatalf("signature manifest = %+v; want one layer with the payload embedded", m)
			}
			bw := &blobWatch{}
			tc.attack(t, f, repo, d, m, bw)
			bw.install(f)
			res := f.verify(t, p, repo.Tag("main").String())
			wantVerdict(t, res, tc.want, tc.why)
			if n := bw.gets.Load(); n != tc.blobGets {
				t.Errorf("%d blob fetches; want %d", n, tc.blobGets)
			}
		})
	}
}

// TestVerifyBundleInline: a bundle written by trustcache carries the
// bundle in its referrer's layer descriptor: verifying it fetches no blob.
func TestVerifyBundleInline(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	s := signature.Signer{Key: f.ci.priv, Builder: "ci", Now: func() time.Time { return now }}
	if _, err := s.SignBundle(context.Background(), repo, d, nil); err != nil {
		t.Fatal(err)
	}
	bw := &blobWatch{}
	bw.install(f)
	before := served(f.reg)
	wantVerdict(t, f.verify(t, p, repo.Tag("main").String()), VerdictTrusted, "")
	if n := bw.gets.Load(); n != 0 {
		t.Errorf("%d blob fetches; want 0 (the bundle is embedded)", n)
	}
	// The test registry has no referrers API: the list is its 404, then
	// the referrers tag.
	if n := served(f.reg) - before; n != 7 {
		t.Errorf("cold verify of a bundle-signed tag: %d requests; want 7 (ping, HEAD tag, GET .sig: none, GET referrers: 404, GET referrers tag, GET referrer manifest, GET head record: none)", n)
	}
}
