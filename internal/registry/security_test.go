package registry

// Tests of the bounds every registry response goes through (docs/SECURITY.md,
// "endless data and slow retrieval"), and of the line between "not found"
// (an answer) and a failure.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestTransportBounds(t *testing.T) {
	const max, timeout = 1 << 10, 300 * time.Millisecond
	body := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name    string
		handler http.HandlerFunc
		// wantRT is the error RoundTrip must fail with; wantRead the one
		// reading the body must; nil: none.
		wantRT, wantRead error
		wantLen          int
	}{{
		name:    "body within the limit",
		handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body(max-1)) },
		wantLen: max - 1,
	}, {
		name:    "body exactly at the limit",
		handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body(max)) },
		wantLen: max,
	}, {
		name: "body one byte over the limit, no Content-Length",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush() // chunked: no Content-Length
			io.WriteString(w, body(max+1))
		},
		wantRead: ErrBodyTooLarge,
	}, {
		name: "endless body",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			for {
				if _, err := io.WriteString(w, body(32<<10)); err != nil {
					return
				}
			}
		},
		wantRead: ErrBodyTooLarge,
	}, {
		name: "Content-Length over the limit",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(64<<20))
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done() // not one byte: refused on the header alone
		},
		wantRT: ErrBodyTooLarge,
	}, {
		name: "Content-Length shorter than the body",
		handler: func(w http.ResponseWriter, r *http.Request) {
			writeRaw(w, "10", body(max*4))
		},
		wantLen: 10, // the rest is never read
	}, {
		name: "Content-Length longer than the body",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, body(10))
		},
		wantRead: io.ErrUnexpectedEOF,
	}, {
		name: "never answers",
		handler: func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		},
		wantRT: context.DeadlineExceeded,
	}, {
		name: "trickles bytes",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			for {
				if _, err := io.WriteString(w, "x"); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		},
		wantRead: context.DeadlineExceeded,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A bare hostile server, not testreg: the transport is tested
			// on raw HTTP (lengths, chunking, stalls) that no registry
			// handler would write.
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			client := &http.Client{Transport: Transport(http.DefaultTransport, max, timeout)}
			start := time.Now()
			resp, err := client.Get(srv.URL)
			if tc.wantRT != nil {
				if !errors.Is(err, tc.wantRT) {
					t.Fatalf("GET = %v; want %v", err, tc.wantRT)
				}
			} else if err != nil {
				t.Fatalf("GET = %v", err)
			}
			if err == nil {
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case tc.wantRead != nil && !errors.Is(err, tc.wantRead):
					t.Errorf("reading the body = %d bytes, %v; want %v", len(b), err, tc.wantRead)
				case tc.wantRead == nil && (err != nil || len(b) != tc.wantLen):
					t.Errorf("reading the body = %d bytes, %v; want %d bytes", len(b), err, tc.wantLen)
				}
				if len(b) > max {
					t.Errorf("read %d bytes; the limit is %d", len(b), max)
				}
			}
			if el := time.Since(start); el > timeout+5*time.Second { // a bound, with room for a loaded machine
				t.Errorf("took %s; the request timeout is %s", el, timeout)
			}
		})
	}
}

// writeRaw answers 200 with the Content-Length header given and body,
// whatever their lengths, as net/http will not.
func writeRaw(w http.ResponseWriter, contentLength, body string) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s", contentLength, body)
	buf.Flush()
}

func TestIsNotFound(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&transport.Error{StatusCode: http.StatusNotFound}, true},
		{&transport.Error{StatusCode: http.StatusBadRequest, Errors: []transport.Diagnostic{{Code: transport.ManifestUnknownErrorCode}}}, true},
		{&transport.Error{StatusCode: http.StatusBadRequest, Errors: []transport.Diagnostic{{Code: transport.NameUnknownErrorCode}}}, true},
		{&transport.Error{StatusCode: http.StatusBadRequest, Errors: []transport.Diagnostic{{Code: transport.BlobUnknownErrorCode}}}, true},
		{fmt.Errorf("wrapped: %w", &transport.Error{StatusCode: http.StatusNotFound}), true},
		// Failures, not answers: a verdict must not be reached on them.
		{&transport.Error{StatusCode: http.StatusUnauthorized}, false},
		{&transport.Error{StatusCode: http.StatusForbidden}, false},
		{&transport.Error{StatusCode: http.StatusInternalServerError}, false},
		{&transport.Error{StatusCode: http.StatusTooManyRequests, Errors: []transport.Diagnostic{{Code: transport.TooManyRequestsErrorCode}}}, false},
		{context.DeadlineExceeded, false},
		{ErrBodyTooLarge, false},
		{errors.New("404 not found"), false}, // only a registry's answer counts
		{nil, false},
	}
	for _, tc := range tests {
		if got := IsNotFound(tc.err); got != tc.want {
			t.Errorf("IsNotFound(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}

// TestOptionsBounds: the options every registry client in trustcache uses
// carry the bounds docs/SECURITY.md lists.
func TestOptionsBounds(t *testing.T) {
	if MaxResponseBody != 4<<20 || DefaultTimeout != 30*time.Second {
		t.Errorf("MaxResponseBody = %d, DefaultTimeout = %s; docs/SECURITY.md says 4 MiB and 30s", MaxResponseBody, DefaultTimeout)
	}
	if RetryBackoff.Steps != 3 || RetryBackoff.Duration != 250*time.Millisecond || RetryBackoff.Factor != 2 {
		t.Errorf("RetryBackoff = %+v; docs/SECURITY.md says 3 tries, 250 ms then 500 ms apart", RetryBackoff)
	}
}
