package endpoint

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestStreamMemory: a large blob is streamed, not buffered: the memory a
// request allocates does not grow with the blob.
func TestStreamMemory(t *testing.T) {
	const size = 32 << 20
	tr := newTestRegistry(t)
	c := seedCacheManifest(t, tr, "team/app-cache", size, 1)
	s := startServer(t)
	ref := mustAdd(t, s, c)
	client := newClient(t)
	do(t, client, "GET", endpointURL(ref, "manifests", c.root), nil)

	u := endpointURL(ref, "blobs", c.layers[1])
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("Get(%q): %v", u, err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if want := int64(len(c.blobs[c.layers[1]])); n != want || err != nil {
		t.Fatalf("Get(%q) = %d bytes, %v; want %d, nil", u, n, err, want)
	}
	const limit = 4 << 20
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Errorf("Get(%q) of %d bytes allocated %d bytes; want at most %d", u, n, got, limit)
	}
}

// TestRangeAnsweredWhole: a Range header is ignored; the whole verified
// blob comes back with 200, without Accept-Ranges.
func TestRangeAnsweredWhole(t *testing.T) {
	tr := newTestRegistry(t)
	c := seedCacheManifest(t, tr, "team/app-cache", largeLayer, 1)
	s := startServer(t)
	ref := mustAdd(t, s, c)
	client := newClient(t)
	for _, d := range []v1.Hash{c.config, c.layers[1]} {
		u := endpointURL(ref, "blobs", d)
		got := do(t, client, "GET", u, http.Header{"Range": {"bytes=100-"}})
		if got.status != http.StatusOK || !bytes.Equal(got.body, c.blobs[d]) || got.header.Get("Accept-Ranges") != "" || got.header.Get("Content-Range") != "" {
			t.Errorf("Get(%q) with Range = %d, %d bytes, Accept-Ranges %q; want 200, the %d bytes of the blob, none",
				u, got.status, len(got.body), got.header.Get("Accept-Ranges"), len(c.blobs[d]))
		}
	}
}

// TestCopyVerified checks the hold back directly: whatever the lie, what
// is written before the check is at most size-HoldBack bytes, and all of
// it only when the body is right.
func TestCopyVerified(t *testing.T) {
	blob := randomBytes(3*HoldBack+17, 9)
	small := randomBytes(HoldBack/2, 10)
	descOf := func(b []byte) v1.Descriptor { return v1.Descriptor{Digest: digestOf(b), Size: int64(len(b))} }
	tests := []struct {
		name    string
		desc    v1.Descriptor
		body    []byte
		wantErr bool
	}{
		{"right", descOf(blob), blob, false},
		{"right, smaller than the hold back", descOf(small), small, false},
		{"last byte changed", descOf(blob), flipped(blob, -1), true},
		{"first byte changed", descOf(blob), flipped(blob, 0), true},
		{"one byte more", descOf(blob), append(bytes.Clone(blob), 0), true},
		{"one byte less", descOf(blob), blob[:len(blob)-1], true},
		{"empty", descOf(blob), nil, true},
		{"smaller than the hold back, changed", descOf(small), flipped(small, 3), true},
	}
	buf := make([]byte, streamBuffer+HoldBack)
	for _, tc := range tests {
		var w bytes.Buffer
		err := copyVerified(&w, iotestHalf(tc.body), tc.desc, buf)
		if (err != nil) != tc.wantErr {
			t.Errorf("copyVerified(%s) = %v; want error %t", tc.name, err, tc.wantErr)
		}
		if err == nil && !bytes.Equal(w.Bytes(), tc.body) {
			t.Errorf("copyVerified(%s) wrote %d bytes; want the %d of the body", tc.name, w.Len(), len(tc.body))
		}
		if err != nil && int64(w.Len()) > max(tc.desc.Size-HoldBack, 0) {
			t.Errorf("copyVerified(%s) wrote %d bytes before failing; want at most %d", tc.name, w.Len(), max(tc.desc.Size-HoldBack, 0))
		}
	}
}

// iotestHalf reads b in uneven pieces.
func iotestHalf(b []byte) io.Reader {
	return &pieces{b: b}
}

type pieces struct {
	b []byte
	n int
}

func (p *pieces) Read(q []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, io.EOF
	}
	p.n++
	k := min(len(q), len(p.b), 1000*p.n+7)
	copy(q, p.b[:k])
	p.b = p.b[k:]
	return k, nil
}
