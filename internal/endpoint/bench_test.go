package endpoint

// Benchmarks of pulling through the endpoint against pulling from the
// registry directly, measured in the same run. The "endpoint"
// sub-benchmarks report x-direct: their time per pull over the direct
// one's.
//
//	go test -run '^$' -bench . -benchmem ./internal/endpoint/
//
// The large layer is 1 GiB, streamed from a generator that holds one MiB;
// -short, or TRUSTCACHE_BENCH_LAYER_MIB=n, makes it smaller.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// generatedBlock is what the generated layer repeats.
const generatedBlock = 1 << 20

// generatedDigests caches the digest of the generated layer by size:
// hashing a GiB once per process is enough.
var generatedDigests = struct {
	sync.Mutex
	m map[int64]v1.Hash
}{m: map[int64]v1.Hash{}}

// generated returns the block the generated layer of size bytes repeats,
// and its digest.
func generated(size int64) ([]byte, v1.Hash) {
	block := randomBytes(generatedBlock, 42)
	generatedDigests.Lock()
	defer generatedDigests.Unlock()
	if d, ok := generatedDigests.m[size]; ok {
		return block, d
	}
	h := sha256.New()
	for left := size; left > 0; left -= generatedBlock {
		h.Write(block[:min(left, generatedBlock)])
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	generatedDigests.m[size] = d
	return block, d
}

// generator serves the generated layer without holding it.
func generator(block []byte, size int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		if r.Method == http.MethodHead {
			return
		}
		for left := size; left > 0; left -= generatedBlock {
			if _, err := w.Write(block[:min(left, generatedBlock)]); err != nil {
				return
			}
		}
	}
}

func benchLayerSize(b *testing.B) int64 {
	if s := os.Getenv("TRUSTCACHE_BENCH_LAYER_MIB"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("TRUSTCACHE_BENCH_LAYER_MIB=%q: want a number of MiB", s)
		}
		return n << 20
	}
	if testing.Short() {
		return 64 << 20
	}
	return 1 << 30
}

// benchCache is a cache manifest whose large layer is generated, in a
// test registry, registered with a Server: the same content reached
// directly and through the endpoint.
type benchCache struct {
	direct, endpoint name.Repository
	root, config     v1.Hash
	layer            v1.Hash
	size             int64
	directOpts       []remote.Option
	endpointOpts     []remote.Option
}

func newBenchCache(b *testing.B, size int64) *benchCache {
	b.Helper()
	tr := newTestRegistry(b)
	block, layer := generated(size)
	tr.lie(path("blobs", layer), generator(block, size))
	s := newSeeder(b, tr, "team/app-cache")
	layerDesc := map[string]any{"mediaType": mtLayerGzip, "digest": layer.String(), "size": size}
	cfg := s.blob(mustJSON(b, cacheRecords(layerDesc)), mtCacheConfig)
	m := s.manifest(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1,
		"config": cfg, "layers": []any{layerDesc},
	}, types.OCIManifestSchema1, "")

	srv := startServer(b)
	ref, err := srv.Add(s.repo, m.digest())
	if err != nil {
		b.Fatalf("Add: %v", err)
	}
	ep, err := name.NewDigest(ref)
	if err != nil {
		b.Fatalf("name.NewDigest(%q): %v", ref, err)
	}
	puller := func() []remote.Option {
		p, err := remote.NewPuller(clientOptions()...)
		if err != nil {
			b.Fatalf("remote.NewPuller: %v", err)
		}
		return append(clientOptions(), remote.Reuse(p))
	}
	return &benchCache{
		direct: s.repo, endpoint: ep.Context(),
		root: m.digest(), config: mustDigest(cfg), layer: layer, size: size,
		directOpts: puller(), endpointOpts: puller(),
	}
}

// pullLayer reads and verifies the layer d of repo as a registry client.
func pullLayer(b *testing.B, repo name.Repository, d v1.Hash, want int64, opts []remote.Option) {
	l, err := remote.Layer(repo.Digest(d.String()), opts...)
	if err != nil {
		b.Fatalf("remote.Layer: %v", err)
	}
	rc, err := l.Compressed()
	if err != nil {
		b.Fatalf("Get(%q) = %v; want the layer", repo.Digest(d.String()), err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if n != want || err != nil {
		b.Fatalf("Get(%q) = %d bytes, %v; want %d bytes, nil", repo.Digest(d.String()), n, err, want)
	}
}

// compare runs pull directly, then through the endpoint, and reports the
// second's time per pull over the first's as x-direct.
func compare(b *testing.B, bytes int64, pull func(b *testing.B, repo name.Repository, opts []remote.Option), c *benchCache) {
	var direct float64 // ns per pull
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(bytes)
		b.ReportAllocs()
		for b.Loop() {
			pull(b, c.direct, c.directOpts)
		}
		direct = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("endpoint", func(b *testing.B) {
		b.SetBytes(bytes)
		b.ReportAllocs()
		for b.Loop() {
			pull(b, c.endpoint, c.endpointOpts)
		}
		if direct > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/direct, "x-direct")
		}
	})
}

// BenchmarkLayerPull pulls the large layer (1 GiB by default).
func BenchmarkLayerPull(b *testing.B) {
	c := newBenchCache(b, benchLayerSize(b))
	compare(b, c.size, func(b *testing.B, repo name.Repository, opts []remote.Option) {
		pullLayer(b, repo, c.layer, c.size, opts)
	}, c)
}

// BenchmarkManifestAndConfig reads the cache manifest and the cache
// config, as BuildKit's cache importer does first.
func BenchmarkManifestAndConfig(b *testing.B) {
	c := newBenchCache(b, 1<<20)
	compare(b, 0, func(b *testing.B, repo name.Repository, opts []remote.Option) {
		d, err := remote.Get(repo.Digest(c.root.String()), opts...)
		if err != nil {
			b.Fatalf("Get(%q) = %v; want the manifest", repo.Digest(c.root.String()), err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			b.Fatalf("parsing the manifest: %v", err)
		}
		pullLayer(b, repo, m.Config.Digest, m.Config.Size, opts)
	}, c)
}
