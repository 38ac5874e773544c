package signature

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

func TestHeadWriteRead(t *testing.T) {
	ctx := context.Background()
	reg := testreg.New(t)
	repo := reg.Repo(t, "team/cache")
	d1, d2 := pushRandom(t, repo), pushRandom(t, repo)
	key := testreg.Key(t)
	clock := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	ho := HeadOptions{Now: func() time.Time { return clock }}

	h1, written, err := WriteHead(ctx, key, "ci-main", repo, "main", d1, ho)
	if err != nil || !written {
		t.Fatalf("first WriteHead: written=%v err=%v", written, err)
	}
	if h1.Sequence != uint64(clock.UnixMilli()) || h1.Previous != "" {
		t.Fatalf("first head: sequence %d previous %q", h1.Sequence, h1.Previous)
	}

	// Signing the same digest again writes nothing (issue 23, item 5).
	reg.Reset()
	if _, written, err := WriteHead(ctx, key, "ci-main", repo, "main", d1, ho); err != nil || written {
		t.Fatalf("re-signing an unchanged digest: written=%v err=%v", written, err)
	}
	if n := reg.Count("PUT", "/manifests/"); n != 0 {
		t.Fatalf("re-signing wrote %d manifests, want 0", n)
	}

	// The next head continues the sequence even when the clock went back.
	clock = clock.Add(-time.Hour)
	h2, written, err := WriteHead(ctx, key, "ci-main", repo, "main", d2, ho)
	if err != nil || !written {
		t.Fatalf("second WriteHead: written=%v err=%v", written, err)
	}
	if h2.Sequence != h1.Sequence+1 || h2.Previous != d1.String() {
		t.Fatalf("second head: sequence %d (want %d) previous %q (want %s)", h2.Sequence, h1.Sequence+1, h2.Previous, d1)
	}

	reg.Reset()
	sh, err := ReadHead(ctx, repo, "main")
	if err != nil || sh == nil {
		t.Fatalf("ReadHead: %v %v", sh, err)
	}
	if got := reg.Requests(); len(got) != 2 { // the ping, the manifest: the payload is embedded
		t.Fatalf("ReadHead made %d requests, want 2 (ping + manifest): %v", len(got), got)
	}
	if err := keys.VerifySignature(key.Public(), sh.Payload, sh.Signature); err != nil {
		t.Fatalf("head signature: %v", err)
	}
	h, err := ParseHead(sh.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if h.Digest != d2 || h.Tag != "main" || h.Repository != repo.Name() || h.Sequence != h2.Sequence || h.Builder != "ci-main" {
		t.Fatalf("read head %+v, want %+v", h, h2)
	}
	if none, err := ReadHead(ctx, repo, "other"); none != nil || err != nil {
		t.Fatalf("head of a tag without one: %v %v", none, err)
	}
}

func TestHeadOfAnotherKeyIsNotContinued(t *testing.T) {
	ctx := context.Background()
	repo := newRepo(t)
	d1, d2 := pushRandom(t, repo), pushRandom(t, repo)
	mine, theirs := testreg.Key(t), testreg.Key(t)
	clock := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	// An attacker's head with a huge sequence: not continued (a writer
	// does not trust it), and not kept as previous.
	if _, _, err := WriteHead(ctx, theirs, "x", repo, "main", d1, HeadOptions{Now: func() time.Time { return clock.Add(1000 * time.Hour) }}); err != nil {
		t.Fatal(err)
	}
	h, written, err := WriteHead(ctx, mine, "ci", repo, "main", d2, HeadOptions{Now: func() time.Time { return clock }})
	if err != nil || !written {
		t.Fatal(written, err)
	}
	if h.Sequence != uint64(clock.UnixMilli()) || h.Previous != "" {
		t.Fatalf("head after an untrusted one: sequence %d previous %q", h.Sequence, h.Previous)
	}
	// The same digest under another key's head is written again: the
	// no-op is for this key's own head only.
	if _, _, err := WriteHead(ctx, theirs, "x", repo, "main", d2, HeadOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, written, _ := WriteHead(ctx, mine, "ci", repo, "main", d2, HeadOptions{}); !written {
		t.Fatal("a head signed by another key for the same digest made this key's write a no-op")
	}
}

func TestHeadTagName(t *testing.T) {
	repo := newRepo(t)
	if got := HeadTag(repo, "main").TagStr(); got != "trustcache-head-main" {
		t.Fatalf("HeadTag(main) = %s", got)
	}
	long := strings.Repeat("a", 128)
	got := HeadTag(repo, long).TagStr()
	if len(got) > 128 || !strings.HasPrefix(got, "trustcache-head-sha256-") {
		t.Fatalf("HeadTag(128 chars) = %s", got)
	}
	if !IsHeadTag("trustcache-head-main") || IsHeadTag("main") {
		t.Fatal("IsHeadTag")
	}
}

// A head is not a signature and a signature is not a head: the payload
// types keep them apart, so neither can be copied into the other's place.
func TestHeadAndSignaturePayloadsDoNotMix(t *testing.T) {
	repo := newRepo(t)
	d := pushRandom(t, repo)
	hp, err := NewHeadPayload(Head{Repository: repo.Name(), Tag: "main", Digest: d, Sequence: 1, Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePayload(hp); err == nil {
		t.Fatal("a head payload parsed as a signature payload")
	}
	sp, err := NewPayload(repo.Name(), d, map[string]string{"tag": "main", "created": time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseHead(sp); err == nil {
		t.Fatal("a signature payload parsed as a head")
	}
}

func TestReadHeadMalformed(t *testing.T) {
	ctx := context.Background()
	reg := testreg.New(t)
	repo := reg.Repo(t, "team/cache")
	d := pushRandom(t, repo)
	// A random image under the head tag: not a head.
	if err := remote.Write(HeadTag(repo, "main"), mustRandomImage(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHead(ctx, repo, "main"); err == nil || !IsMalformed(err) {
		t.Fatalf("random image as head: err %v, want malformed", err)
	}
	// A writer replaces it.
	if _, written, err := WriteHead(ctx, testreg.Key(t), "ci", repo, "main", d, HeadOptions{}); err != nil || !written {
		t.Fatalf("WriteHead over a malformed head: %v %v", written, err)
	}
	// A registry failure is not "no head".
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	})
	if sh, err := ReadHead(ctx, repo, "main"); err == nil || IsMalformed(err) {
		t.Fatalf("403 reading the head: %v %v, want a registry error", sh, err)
	}
}

func mustRandomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
