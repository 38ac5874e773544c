package endpoint

// Tests of a registry that fails (rather than lies): the endpoint answers
// with a registry error, records a Problem, and never passes on unchecked
// bytes.

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// stallAfter sends the first n bytes of b with b's Content-Length, then
// nothing until the request is canceled.
func stallAfter(b []byte, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b[:n])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}

// dropAfter sends the first n bytes of b with b's Content-Length, then
// closes the connection.
func dropAfter(b []byte, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b[:n])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"failing"}]}`, code)
	}
}

func TestUpstreamFailures(t *testing.T) {
	const timeout = 500 * time.Millisecond
	tests := []struct {
		name   string
		kind   string
		target func(*testCache) v1.Hash
		// fault is the registry's answer; all: to every request, pings included.
		fault    func(c *testCache) http.HandlerFunc
		all      bool
		want     int    // the status the client gets
		wantCode string // the error code in its body
		wantKind Kind
		streamed bool // 200 was sent, then the connection cut
	}{{
		name: "manifest: 500", kind: "manifests", target: root,
		fault: func(*testCache) http.HandlerFunc { return status(500) },
		want:  502, wantCode: codeUnavailable, wantKind: Unavailable,
	}, {
		name: "manifest: 404", kind: "manifests", target: root,
		fault: func(*testCache) http.HandlerFunc { return status(404) },
		want:  404, wantCode: codeManifestUnknown, wantKind: NotFound,
	}, {
		name: "manifest: no answer within the timeout", kind: "manifests", target: root,
		fault: func(*testCache) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
		},
		want: 502, wantCode: codeUnavailable, wantKind: Unavailable,
	}, {
		name: "manifest: more than the size limit", kind: "manifests", target: root,
		fault: func(*testCache) http.HandlerFunc {
			return serveBytes(bytes.Repeat([]byte(" "), 5<<20), mtOCIManifest)
		},
		want: 502, wantCode: codeUnavailable, wantKind: Unavailable,
	}, {
		name: "cache config: 404", kind: "blobs", target: config,
		fault: func(*testCache) http.HandlerFunc { return status(404) },
		want:  404, wantCode: codeBlobUnknown, wantKind: NotFound,
	}, {
		name: "cache config: 503", kind: "blobs", target: config,
		fault: func(*testCache) http.HandlerFunc { return status(503) },
		want:  502, wantCode: codeUnavailable, wantKind: Unavailable,
	}, {
		name: "large layer: 503", kind: "blobs", target: largeLayerOf,
		fault: func(*testCache) http.HandlerFunc { return status(503) },
		want:  502, wantCode: codeUnavailable, wantKind: Unavailable,
	}, {
		name: "large layer: stalls half way", kind: "blobs", target: largeLayerOf,
		fault: func(c *testCache) http.HandlerFunc {
			b := c.blobs[c.layers[1]]
			return stallAfter(b, len(b)/2)
		},
		want: 200, wantKind: Unavailable, streamed: true,
	}, {
		name: "large layer: connection dropped half way", kind: "blobs", target: largeLayerOf,
		fault: func(c *testCache) http.HandlerFunc {
			b := c.blobs[c.layers[1]]
			return dropAfter(b, len(b)/2)
		},
		want: 200, wantKind: Unavailable, streamed: true,
	}, {
		name: "registry drops every connection", kind: "manifests", target: root, all: true,
		fault: func(*testCache) http.HandlerFunc { return hangUp },
		want:  502, wantCode: codeUnavailable, wantKind: Unavailable,
	}, {
		name: "registry refuses the credentials", kind: "manifests", target: root, all: true,
		fault: func(*testCache) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				}
				status(401)(w, r)
			}
		},
		want: 502, wantCode: codeUnavailable, wantKind: Unavailable,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := newTestRegistry(t)
			c := seedCacheManifest(t, tr, "team/app-cache", largeLayer, 1)
			target := tc.target(c)
			match := path(tc.kind, target)
			if tc.all {
				match = func(*http.Request) bool { return true }
			}
			tr.lie(match, tc.fault(c))
			s := startServer(t, WithRequestTimeout(timeout))
			ref := mustAdd(t, s, c)
			if tc.kind == "blobs" {
				do(t, newClient(t), "GET", endpointURL(ref, "manifests", c.root), nil)
			}

			u := endpointURL(ref, tc.kind, target)
			got := do(t, newClient(t), "GET", u, nil)
			if code := errorCode(got.body); got.status != tc.want || (!tc.streamed && code != tc.wantCode) {
				t.Errorf("Get(%q) = %d %s; want %d %s", u, got.status, code, tc.want, tc.wantCode)
			}
			if tc.streamed && (got.err == nil || len(got.body) >= len(c.blobs[target])) {
				t.Errorf("Get(%q) = %d bytes, %v; want fewer than %d, then an error", u, len(got.body), got.err, len(c.blobs[target]))
			}
			problems := s.Problems()
			if len(problems) != 1 || problems[0].Digest != target || problems[0].Kind != tc.wantKind {
				t.Errorf("Problems() = %v; want one %s of %s", problems, tc.wantKind, target)
			}
		})
	}
}
