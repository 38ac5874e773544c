package endpoint

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// largeLayer is the uncompressed size of the large layer of the test
// caches: over SmallBlob, so it is streamed.
const largeLayer = SmallBlob + 1<<20

// clientOptions are the options of the go-containerregistry client that
// plays BuildKit: no retries, so that a refusal is seen once.
func clientOptions() []remote.Option {
	return []remote.Option{remote.WithRetryBackoff(remote.Backoff{Steps: 1}), remote.WithRetryStatusCodes()}
}

// seeds are the shapes of cache the endpoint must serve.
var seeds = []struct {
	name string
	seed func(testing.TB, *testRegistry, string, int, uint64) *testCache
}{
	{"registry cache manifest", seedCacheManifest},
	{"registry cache index (image-manifest=false)", seedCacheIndex},
	{"image index with inline cache and attestations", seedInlineIndex},
}

// TestRoundTrip pulls every manifest and blob of a verified cache through
// the endpoint, as a registry client, and gets the registry's exact bytes
// and media types; HEAD of a blob gives its size.
func TestRoundTrip(t *testing.T) {
	for _, tc := range seeds {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestRegistry(t)
			c := tc.seed(t, tr, "team/app-cache", largeLayer, 1)
			s := startServer(t)
			ref, err := name.NewDigest(mustAdd(t, s, c))
			if err != nil {
				t.Fatalf("the endpoint reference does not parse: %v", err)
			}
			for d, want := range c.manifests {
				r := ref.Context().Digest(d.String())
				got, err := remote.Get(r, clientOptions()...)
				if err != nil {
					t.Errorf("Get(%q) = %v; want the manifest", r, err)
					continue
				}
				if !bytes.Equal(got.Manifest, want.data) || got.MediaType != want.mediaType {
					t.Errorf("Get(%q) = %s %q; want %s %q", r, got.MediaType, got.Manifest, want.mediaType, want.data)
				}
			}
			for d, want := range c.blobs {
				r := ref.Context().Digest(d.String())
				got, size, err := pullBlob(r)
				if err != nil || !bytes.Equal(got, want) || size != int64(len(want)) {
					t.Errorf("Get(%q) = %d bytes (HEAD: %d), %v; want %d bytes, nil", r, len(got), size, err, len(want))
				}
			}
			if p := s.Problems(); len(p) != 0 {
				t.Errorf("Problems() = %v; want none", p)
			}
		})
	}
}

// pullBlob reads the blob ref names as a registry client does, and its
// size as HEAD gives it.
func pullBlob(ref name.Digest) ([]byte, int64, error) {
	l, err := remote.Layer(ref, clientOptions()...)
	if err != nil {
		return nil, 0, err
	}
	size, err := l.Size()
	if err != nil {
		return nil, 0, fmt.Errorf("HEAD: %w", err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, size, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, size, err
}

// TestManifestCached: a verified manifest is fetched from the registry
// once, however often it is asked for.
func TestManifestCached(t *testing.T) {
	tr := newTestRegistry(t)
	c := seedCacheManifest(t, tr, "team/app-cache", 1<<10, 1)
	s := startServer(t)
	ref := mustAdd(t, s, c)
	tr.reset()
	client := newClient(t)
	for _, method := range []string{http.MethodHead, http.MethodGet, http.MethodGet, http.MethodHead} {
		u := endpointURL(ref, "manifests", c.root)
		if got := do(t, client, method, u, nil); got.status != http.StatusOK {
			t.Errorf("%s(%q) = %d; want 200", method, u, got.status)
		}
	}
	want := []string{"GET /v2/team/app-cache/manifests/" + c.root.String()}
	if got := tr.requests(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the registry was asked %q; want %q", got, want)
	}
}

// TestManifestHeaders: a manifest is served with its verified media type,
// length and digest.
func TestManifestHeaders(t *testing.T) {
	tr := newTestRegistry(t)
	c := seedInlineIndex(t, tr, "team/app-cache", 1<<10, 1)
	s := startServer(t)
	ref := mustAdd(t, s, c)
	client := newClient(t)
	for d, m := range c.manifests {
		u := endpointURL(ref, "manifests", d)
		got := do(t, client, http.MethodHead, u, nil)
		want := http.Header{
			"Content-Type":          {string(m.mediaType)},
			"Content-Length":        {fmt.Sprint(len(m.data))},
			"Docker-Content-Digest": {d.String()},
		}
		for k := range want {
			if got.header.Get(k) != want.Get(k) {
				t.Errorf("HEAD(%q) %s = %q; want %q", u, k, got.header.Get(k), want.Get(k))
			}
		}
		if len(got.body) != 0 {
			t.Errorf("HEAD(%q) = %d bytes of body; want none", u, len(got.body))
		}
	}
}
