package endpoint

// The upstream of the tests: a real in-memory registry (go-containerregistry's
// pkg/registry) behind a handler that records what it was asked and can be
// told to lie; and BuildKit-shaped caches seeded into it.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

const (
	mtCacheConfig = "application/vnd.buildkit.cacheconfig.v0"
	mtLayerGzip   = string(types.OCILayer) // application/vnd.oci.image.layer.v1.tar+gzip
)

// testRegistry is the upstream registry of a test: the harness registry
// (internal/testreg) over a blob store the test seeds directly.
type testRegistry struct {
	*testreg.Registry
	srv   *httptest.Server
	reg   http.Handler // the registry, without faults
	blobs *memBlobs
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	blobs := &memBlobs{m: map[v1.Hash][]byte{}}
	r := testreg.New(t, testreg.Blobs(blobs))
	return &testRegistry{Registry: r, srv: r.Server, reg: r.Handler, blobs: blobs}
}

// memBlobs is the blob store of a test registry. Tests seed it directly:
// uploading megabytes through the registry API is slow under the race
// detector, and it is not what is tested.
type memBlobs struct {
	mu sync.Mutex
	m  map[v1.Hash][]byte
}

func (b *memBlobs) put(blob []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[digestOf(blob)] = blob
}

func (b *memBlobs) Get(_ context.Context, _ string, h v1.Hash) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	blob, ok := b.m[h]
	if !ok {
		return nil, ggcrregistry.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(blob)), nil
}

func (b *memBlobs) Stat(_ context.Context, _ string, h v1.Hash) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	blob, ok := b.m[h]
	if !ok {
		return 0, ggcrregistry.ErrNotFound
	}
	return int64(len(blob)), nil
}

// lie makes requests that match answer with fault, from now on (nil
// matches: no request).
func (tr *testRegistry) lie(matches func(*http.Request) bool, fault http.HandlerFunc) {
	if matches == nil || fault == nil {
		tr.SetFault(nil)
		return
	}
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !matches(r) {
			return false
		}
		fault(w, r)
		return true
	})
}

// reset forgets the requests seen so far.
func (tr *testRegistry) reset() { tr.Reset() }

// requests returns the requests seen since reset, without pings.
func (tr *testRegistry) requests() []string {
	var out []string
	for _, s := range tr.Requests() {
		if !strings.HasSuffix(s, " /v2/") {
			out = append(out, s)
		}
	}
	return out
}

// count is the number of requests seen since reset, pings included.
func (tr *testRegistry) count() int { return len(tr.Requests()) }

// requestHeaders returns the headers of the requests seen since reset.
func (tr *testRegistry) requestHeaders() []http.Header { return tr.Headers() }

// repo names a repository of the test registry.
func (tr *testRegistry) repo(t testing.TB, path string) name.Repository {
	t.Helper()
	return tr.Repo(t, path)
}

// path matches requests for the blob or manifest d.
func path(kind string, d v1.Hash) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return strings.HasSuffix(r.URL.Path, "/"+kind+"/"+d.String())
	}
}

// testCache is a cache seeded into a test registry: every manifest and
// blob reachable from root, by digest.
type testCache struct {
	repo      name.Repository
	root      v1.Hash
	manifests map[v1.Hash]rawManifest
	blobs     map[v1.Hash][]byte
	config    v1.Hash   // the cache config (or image config)
	layers    []v1.Hash // small, then large
}

// rawManifest is a manifest as pushed; it implements remote.Taggable.
type rawManifest struct {
	data      []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.data, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }
func (m rawManifest) digest() v1.Hash                     { return digestOf(m.data) }
func (m rawManifest) descriptor() map[string]any          { return desc(string(m.mediaType), m.data) }
func desc(mediaType string, b []byte) map[string]any      { return descWith(mediaType, b, nil) }
func descWith(mt string, b []byte, ann map[string]string) map[string]any {
	d := map[string]any{"mediaType": mt, "digest": digestOf(b).String(), "size": len(b)}
	if ann != nil {
		d["annotations"] = ann
	}
	return d
}

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// gzipped returns b in gzip format, as a layer blob: deflate's stored
// blocks (random bytes do not compress), written here because
// compress/gzip is slow under the race detector.
func gzipped(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/0xffff*5+32)
	out = append(out, 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255) // header: deflate, no flags, unknown OS
	for rest := b; ; {
		n := min(len(rest), 0xffff)
		final := byte(0)
		if n == len(rest) {
			final = 1
		}
		out = append(out, final, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		out = append(out, rest[:n]...)
		if rest = rest[n:]; final == 1 {
			break
		}
	}
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(b))
	return binary.LittleEndian.AppendUint32(out, uint32(len(b)))
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return b
}

// seeder pushes a cache's blobs and manifests to a test registry.
type seeder struct {
	t     testing.TB
	tr    *testRegistry
	repo  name.Repository
	cache *testCache
}

func newSeeder(t testing.TB, tr *testRegistry, path string) *seeder {
	repo := tr.repo(t, path)
	return &seeder{t: t, tr: tr, repo: repo, cache: &testCache{repo: repo, manifests: map[v1.Hash]rawManifest{}, blobs: map[v1.Hash][]byte{}}}
}

func (s *seeder) blob(b []byte, mt string) map[string]any {
	s.tr.blobs.put(b)
	s.cache.blobs[digestOf(b)] = b
	return desc(mt, b)
}

func (s *seeder) manifest(v any, mt types.MediaType, tag string) rawManifest {
	s.t.Helper()
	m := rawManifest{data: mustJSON(s.t, v), mediaType: mt}
	ref := name.Reference(s.repo.Digest(m.digest().String()))
	if tag != "" {
		ref = s.repo.Tag(tag)
	}
	if err := remote.Put(ref, m); err != nil {
		s.t.Fatalf("remote.Put(%s): %v", ref, err)
	}
	s.cache.manifests[m.digest()] = m
	return m
}

// cacheRecords is a BuildKit cache config (application/vnd.buildkit.cacheconfig.v0)
// over the given layer blobs.
func cacheRecords(layers ...map[string]any) map[string]any {
	var ls, rs []map[string]any
	for i, l := range layers {
		ls = append(ls, map[string]any{"blob": l["digest"], "parent": i - 1, "annotations": map[string]string{"createdAt": "2026-01-02T03:04:05Z"}})
		rs = append(rs, map[string]any{"digest": fmt.Sprintf("sha256:%064x", i+1), "results": []map[string]any{{"layer": i, "createdAt": "2026-01-02T03:04:05Z"}}})
	}
	return map[string]any{"layers": ls, "records": rs}
}

// layerPair pushes a small and a large (streamed) gzip layer.
func (s *seeder) layerPair(large int, seed uint64) (small, big map[string]any) {
	small = s.blob(gzipped(randomBytes(1500, seed)), mtLayerGzip)
	big = s.blob(gzipped(randomBytes(large, seed+1)), mtLayerGzip)
	s.cache.layers = []v1.Hash{mustDigest(small), mustDigest(big)}
	return small, big
}

func mustDigest(d map[string]any) v1.Hash {
	h, err := v1.NewHash(d["digest"].(string))
	if err != nil {
		panic(err)
	}
	return h
}

// seedCacheManifest seeds what `--cache-to type=registry` (image-manifest=true)
// pushes: an OCI manifest whose config is the BuildKit cache config and whose
// layers are the cached layers. large is the uncompressed size of the large
// layer.
func seedCacheManifest(t testing.TB, tr *testRegistry, path string, large int, seed uint64) *testCache {
	t.Helper()
	s := newSeeder(t, tr, path)
	small, big := s.layerPair(large, seed)
	cfg := s.blob(mustJSON(t, cacheRecords(small, big)), mtCacheConfig)
	s.cache.config = mustDigest(cfg)
	m := s.manifest(map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"config":        cfg,
		"layers":        []any{small, big},
	}, types.OCIManifestSchema1, "")
	s.cache.root = m.digest()
	return s.cache
}

// seedCacheIndex seeds what `--cache-to type=registry,image-manifest=false`
// pushes: an OCI index whose entries are the layers and the cache config as
// plain descriptors.
func seedCacheIndex(t testing.TB, tr *testRegistry, path string, large int, seed uint64) *testCache {
	t.Helper()
	s := newSeeder(t, tr, path)
	small, big := s.layerPair(large, seed)
	cfg := s.blob(mustJSON(t, cacheRecords(small, big)), mtCacheConfig)
	s.cache.config = mustDigest(cfg)
	m := s.manifest(map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIImageIndex,
		"manifests":     []any{small, big, cfg},
	}, types.OCIImageIndex, "")
	s.cache.root = m.digest()
	return s.cache
}

// seedInlineIndex seeds an image built with inline cache, as buildx pushes
// it: an OCI index of a platform manifest (whose image config carries the
// inline cache) and an attestation manifest.
func seedInlineIndex(t testing.TB, tr *testRegistry, path string, large int, seed uint64) *testCache {
	t.Helper()
	s := newSeeder(t, tr, path)
	small, big := s.layerPair(large, seed)
	cfg := s.blob(mustJSON(t, map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs":                 map[string]any{"type": "layers", "diff_ids": []string{fmt.Sprintf("sha256:%064x", 1), fmt.Sprintf("sha256:%064x", 2)}},
		"moby.buildkit.cache.v0": cacheRecords(small, big),
	}), string(types.OCIConfigJSON))
	s.cache.config = mustDigest(cfg)
	img := s.manifest(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1,
		"config": cfg, "layers": []any{small, big},
	}, types.OCIManifestSchema1, "")
	stmt := s.blob([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document"}`), "application/vnd.in-toto+json")
	attCfg := s.blob([]byte(`{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[]}}`), string(types.OCIConfigJSON))
	att := s.manifest(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1,
		"config": attCfg, "layers": []any{stmt},
	}, types.OCIManifestSchema1, "")
	imgDesc := img.descriptor()
	imgDesc["platform"] = map[string]string{"architecture": "amd64", "os": "linux"}
	attDesc := descWith(string(types.OCIManifestSchema1), att.data, map[string]string{
		"vnd.docker.reference.digest": img.digest().String(), "vnd.docker.reference.type": "attestation-manifest",
	})
	attDesc["platform"] = map[string]string{"architecture": "unknown", "os": "unknown"}
	m := s.manifest(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIImageIndex,
		"manifests": []any{imgDesc, attDesc},
	}, types.OCIImageIndex, "")
	s.cache.root = m.digest()
	return s.cache
}

// startServer starts a Server for the test, closed at its end.
func startServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := New(append([]Option{WithRequestTimeout(5 * time.Second)}, opts...)...)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// mustAdd registers c with s and returns the endpoint reference.
func mustAdd(t testing.TB, s *Server, c *testCache) string {
	t.Helper()
	ref, err := s.Add(c.repo, c.root)
	if err != nil {
		t.Fatalf("Add(%s, %s): %v", c.repo, c.root, err)
	}
	return ref
}

// endpointURL is the URL of the manifest or blob d under ref's name.
func endpointURL(ref, kind string, d v1.Hash) string {
	repo, _, _ := strings.Cut(ref, "@")
	host, path, _ := strings.Cut(repo, "/")
	return fmt.Sprintf("http://%s/v2/%s/%s/%s", host, path, kind, d)
}

// response is what a raw client got.
type response struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

// newClient returns a plain HTTP client whose connections are closed at
// the end of the test.
func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// do sends one request with c; a failure to send is a test failure.
func do(t testing.TB, c *http.Client, method, url string, hdr http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("http.NewRequest: %v", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// errorCode is the first registry error code of a response body.
func errorCode(body []byte) string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}
