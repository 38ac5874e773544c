package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestClose: Close cancels the upstream fetches in flight, closes the
// listener, waits for its goroutines, and may be called again.
func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	tr := newTestRegistry(t)
	c := seedCacheManifest(t, tr, "team/app-cache", largeLayer, 1)
	started, canceled := make(chan struct{}), make(chan struct{})
	b := c.blobs[c.layers[1]]
	tr.lie(path("blobs", c.layers[1]), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(int64(len(b))))
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
		close(canceled)
	})
	s := New(WithRequestTimeout(time.Minute))
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ref := mustAdd(t, s, c)
	client := newClient(t)
	got := make(chan error, 1)
	go func() {
		resp, err := client.Get(endpointURL(ref, "blobs", c.layers[1]))
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// Close may land before the response starts: then the
			// client gets the endpoint's error status, whole — also
			// not the blob.
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		got <- err
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the blob request never reached the registry")
	}

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Error("the upstream request was not canceled by Close")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close() = %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close() did not return within 5s")
	}
	if err := <-got; err == nil {
		t.Error("the client read the whole blob; want an error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close() again = %v; want nil", err)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("Dial(%q) after Close succeeded; want connection refused", s.Addr())
	}
	if _, err := s.Add(c.repo, c.root); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close = %v; want %v", err, ErrClosed)
	}
	if err := s.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v; want %v", err, ErrClosed)
	}

	// No goroutine of the Server outlives it: once the test's own
	// registry and client are gone, the count is back where it was.
	tr.srv.Close()
	client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close; want at most %d as before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestStartContext: the Server stops when Start's context is done.
func TestStartContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := New()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("Dial(%q) succeeds after Start's context is done; want connection refused", s.Addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Add(name.MustParseReference("registry.example/a").Context(), v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Start's context is done = %v; want %v", err, ErrClosed)
	}
}

// TestAdd: what Add accepts, and the references it returns.
func TestAdd(t *testing.T) {
	repo := name.MustParseReference("registry.example/team/app-cache").Context()
	other := name.MustParseReference("registry.example/team/other").Context()
	d1 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}
	d2 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("2", 64)}

	if _, err := New().Add(repo, d1); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Add before Start = %v; want %v", err, ErrNotStarted)
	}
	s := startServer(t)
	tests := []struct {
		repo    name.Repository
		digest  v1.Hash
		want    string // "": an error
		wantErr bool
	}{
		{repo, d1, s.Addr() + "/" + s.token + "/1@" + d1.String(), false},
		{repo, d2, s.Addr() + "/" + s.token + "/2@" + d2.String(), false},
		{other, d1, s.Addr() + "/" + s.token + "/3@" + d1.String(), false},
		{repo, d1, s.Addr() + "/" + s.token + "/1@" + d1.String(), false}, // again: the same
		{repo, v1.Hash{Algorithm: "sha512", Hex: strings.Repeat("1", 128)}, "", true},
		{repo, v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("A", 64)}, "", true},
	}
	for _, tc := range tests {
		got, err := s.Add(tc.repo, tc.digest)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("Add(%s, %s) = %q, %v; want %q, error %t", tc.repo, tc.digest, got, err, tc.want, tc.wantErr)
		}
		if err == nil {
			if _, err := name.NewDigest(got); err != nil {
				t.Errorf("Add(%s, %s) = %q, which does not parse as a reference: %v", tc.repo, tc.digest, got, err)
			}
		}
	}
}
