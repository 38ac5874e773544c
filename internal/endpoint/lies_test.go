package endpoint

// Tests against a registry that lies: other bytes for a pinned digest, more
// or fewer bytes than the verified descriptor says. The endpoint must refuse
// (or, once a streamed blob's status is sent, abort) and record why.

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// serveBytes answers with b as if it were what was asked for.
func serveBytes(b []byte, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Header().Set("Docker-Content-Digest", r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
		if r.Method != http.MethodHead {
			w.Write(b)
		}
	}
}

// serveChunked answers with b without a Content-Length.
func serveChunked(b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		w.Write(b)
	}
}

// flipped returns b with one byte changed at i (from the end if i < 0).
func flipped(b []byte, i int) []byte {
	b = bytes.Clone(b)
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 0xff
	return b
}

func TestLyingRegistry(t *testing.T) {
	tests := []struct {
		name string
		// seed is the verified cache; other is another one in the registry.
		seed func(testing.TB, *testRegistry, string, int, uint64) *testCache
		// method, kind and target say what the client asks for.
		method, kind string
		target       func(c *testCache) v1.Hash
		// lie is what the registry answers instead.
		lie func(c, other *testCache) http.HandlerFunc
		// streamed: the status was sent before the lie was found out.
		streamed bool
	}{{
		name: "cache manifest: another cache's manifest", seed: seedCacheManifest,
		method: "GET", kind: "manifests", target: root,
		lie: func(c, o *testCache) http.HandlerFunc { return serveBytes(o.manifests[o.root].data, mtOCIManifest) },
	}, {
		name: "cache manifest, HEAD: another cache's manifest", seed: seedCacheManifest,
		method: "HEAD", kind: "manifests", target: root,
		lie: func(c, o *testCache) http.HandlerFunc { return serveBytes(o.manifests[o.root].data, mtOCIManifest) },
	}, {
		name: "cache index: another cache's index", seed: seedCacheIndex,
		method: "GET", kind: "manifests", target: root,
		lie: func(c, o *testCache) http.HandlerFunc { return serveBytes(o.manifests[o.root].data, mtOCIIndex) },
	}, {
		name: "platform manifest of an index: the attestation manifest", seed: seedInlineIndex,
		method: "GET", kind: "manifests", target: platformManifest,
		lie: func(c, o *testCache) http.HandlerFunc {
			return serveBytes(c.manifests[attestationManifest(c)].data, mtOCIManifest)
		},
	}, {
		name: "cache config: another cache's config", seed: seedCacheManifest,
		method: "GET", kind: "blobs", target: config,
		lie: func(c, o *testCache) http.HandlerFunc {
			return serveBytes(o.blobs[o.config], "application/octet-stream")
		},
	}, {
		name: "cache config of an index: one byte more", seed: seedCacheIndex,
		method: "GET", kind: "blobs", target: config,
		lie: func(c, o *testCache) http.HandlerFunc {
			return serveBytes(append(bytes.Clone(c.blobs[c.config]), ' '), "application/octet-stream")
		},
	}, {
		name: "small layer: one byte less", seed: seedCacheManifest,
		method: "GET", kind: "blobs", target: smallLayer,
		lie: func(c, o *testCache) http.HandlerFunc {
			b := c.blobs[c.layers[0]]
			return serveBytes(b[:len(b)-1], "application/octet-stream")
		},
	}, {
		name: "large layer: Content-Length one byte short", seed: seedCacheManifest,
		method: "GET", kind: "blobs", target: largeLayerOf,
		lie: func(c, o *testCache) http.HandlerFunc {
			b := c.blobs[c.layers[1]]
			return serveBytes(b[:len(b)-1], "application/octet-stream")
		},
	}, {
		name: "large layer: last byte changed", seed: seedCacheManifest,
		method: "GET", kind: "blobs", target: largeLayerOf, streamed: true,
		lie: func(c, o *testCache) http.HandlerFunc {
			return serveBytes(flipped(c.blobs[c.layers[1]], -1), "application/octet-stream")
		},
	}, {
		name: "large layer: first byte changed", seed: seedCacheManifest,
		method: "GET", kind: "blobs", target: largeLayerOf, streamed: true,
		lie: func(c, o *testCache) http.HandlerFunc {
			return serveBytes(flipped(c.blobs[c.layers[1]], 0), "application/octet-stream")
		},
	}, {
		name: "large layer: another cache's layer of the same size", seed: seedCacheManifest,
		method: "GET", kind: "blobs", target: largeLayerOf, streamed: true,
		lie: func(c, o *testCache) http.HandlerFunc {
			return serveBytes(o.blobs[o.layers[1]], "application/octet-stream")
		},
	}, {
		name: "large layer of an index: one byte more, chunked", seed: seedCacheIndex,
		method: "GET", kind: "blobs", target: largeLayerOf, streamed: true,
		lie: func(c, o *testCache) http.HandlerFunc {
			return serveChunked(append(bytes.Clone(c.blobs[c.layers[1]]), 0))
		},
	}, {
		name: "large layer of an index: one byte less, chunked", seed: seedCacheIndex,
		method: "GET", kind: "blobs", target: largeLayerOf, streamed: true,
		lie: func(c, o *testCache) http.HandlerFunc {
			b := c.blobs[c.layers[1]]
			return serveChunked(b[:len(b)-1])
		},
	}, {
		name: "large layer of a platform manifest: last byte changed", seed: seedInlineIndex,
		method: "GET", kind: "blobs", target: largeLayerOf, streamed: true,
		lie: func(c, o *testCache) http.HandlerFunc {
			return serveBytes(flipped(c.blobs[c.layers[1]], -1), "application/octet-stream")
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestRegistry(t)
			c := tc.seed(t, tr, "team/app-cache", largeLayer, 1)
			other := tc.seed(t, tr, "team/app-cache", largeLayer, 5)
			target := tc.target(c)
			lie := tc.lie(c, other)
			tr.lie(path(tc.kind, target), lie)
			s := startServer(t)
			ref := mustAdd(t, s, c)
			if tc.kind == "blobs" || target != c.root {
				// The manifests on the way are honest; fetch them first.
				for d := range c.manifests {
					if d != target {
						do(t, newClient(t), "GET", endpointURL(ref, "manifests", d), nil)
					}
				}
			}

			u := endpointURL(ref, tc.kind, target)
			got := do(t, newClient(t), tc.method, u, nil)
			var want []byte
			if tc.kind == "blobs" {
				want = c.blobs[target]
			} else {
				want = c.manifests[target].data
			}
			if tc.streamed {
				// The status and Content-Length are sent; the held back
				// end is not, and the connection is cut.
				if got.status != http.StatusOK || got.err == nil || len(got.body) > len(want)-HoldBack {
					t.Errorf("%s(%q) = %d, %d bytes, %v; want 200, at most %d bytes, then an error",
						tc.method, u, got.status, len(got.body), got.err, len(want)-HoldBack)
				}
			} else {
				if got.status != http.StatusBadGateway || (tc.method == "GET" && errorCode(got.body) != codeDigestInvalid) {
					t.Errorf("%s(%q) = %d %s; want 502 %s", tc.method, u, got.status, errorCode(got.body), codeDigestInvalid)
				}
			}
			wantProblem := Problem{Cache: c.repo.Name() + "@" + c.root.String(), Digest: target, Kind: Mismatch}
			problems := s.Problems()
			if len(problems) != 1 || problems[0].Cache != wantProblem.Cache || problems[0].Digest != target || problems[0].Kind != Mismatch {
				t.Fatalf("Problems() = %v; want one %s of %s", problems, Mismatch, target)
			}
			if !strings.Contains(problems[0].Reason, target.String()) {
				t.Errorf("Problems()[0].Reason = %q; want it to name %s", problems[0].Reason, target)
			}
		})
	}
}

const (
	mtOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex    = "application/vnd.oci.image.index.v1+json"
)

func root(c *testCache) v1.Hash         { return c.root }
func config(c *testCache) v1.Hash       { return c.config }
func smallLayer(c *testCache) v1.Hash   { return c.layers[0] }
func largeLayerOf(c *testCache) v1.Hash { return c.layers[1] }

// platformManifest is the image manifest of an inline-cache index.
func platformManifest(c *testCache) v1.Hash {
	for d, m := range c.manifests {
		if d != c.root && bytes.Contains(m.data, []byte(c.config.String())) {
			return d
		}
	}
	panic("no platform manifest")
}

// attestationManifest is the attestation manifest of an inline-cache index.
func attestationManifest(c *testCache) v1.Hash {
	for d := range c.manifests {
		if d != c.root && d != platformManifest(c) {
			return d
		}
	}
	panic("no attestation manifest")
}
