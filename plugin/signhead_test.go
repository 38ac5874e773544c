package plugin

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
)

// TestSignWritesTagAndHead: signing REPO:TAG signs the tag (annotation
// "tag") and writes the tag's head; signing it again adds neither a
// signature nor a head (issue 23, item 5); a contradicting -a tag= is a
// usage error; signing by digest writes no head.
func TestSignWritesTagAndHead(t *testing.T) {
	isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	ref := host + "/team/cache:main"
	d := pushRandom(t, ref)
	repo, _ := name.NewRepository(host + "/team/cache")
	ctx := context.Background()

	if res := run(t, "sign", "--key", "ci.key", ref); res.code != 0 {
		t.Fatalf("sign: %d %s", res.code, res.stderr)
	}
	sigs, err := signature.ReadLegacy(ctx, repo, d)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("signatures: %d %v", len(sigs), err)
	}
	p, err := signature.ParsePayload(sigs[0].Payload)
	if err != nil || p.Annotations()[signature.AnnotationTag] != "main" {
		t.Fatalf("signed annotations %v (%v), want tag=main", p.Annotations(), err)
	}
	sh, err := signature.ReadHead(ctx, repo, "main")
	if err != nil || sh == nil {
		t.Fatalf("head after sign: %v %v", sh, err)
	}
	h, err := signature.ParseHead(sh.Payload)
	if err != nil || h.Digest != d || h.Tag != "main" || h.Builder != "ci" {
		t.Fatalf("head %+v %v", h, err)
	}
	headDigest := func() string {
		desc, err := remote.Head(signature.HeadTag(repo, "main"))
		if err != nil {
			t.Fatal(err)
		}
		return desc.Digest.String()
	}
	before := headDigest()

	if res := run(t, "sign", "--key", "ci.key", ref); res.code != 0 || !strings.Contains(res.stderr, "already signed") {
		t.Fatalf("sign again: %d %s", res.code, res.stderr)
	}
	if sigs, _ := signature.ReadLegacy(ctx, repo, d); len(sigs) != 1 {
		t.Errorf("signing an unchanged digest again: %d signatures, want 1", len(sigs))
	}
	if after := headDigest(); after != before {
		t.Errorf("signing an unchanged digest again rewrote the head (%s → %s)", before, after)
	}

	if res := run(t, "sign", "--key", "ci.key", "-a", "tag=other", ref); res.code != ExitUsage || !strings.Contains(res.stderr, "contradicts") {
		t.Errorf("sign -a tag=other REPO:main = %d %q, want a usage error", res.code, res.stderr)
	}

	d2 := pushRandom(t, host+"/team/cache:dev")
	if res := run(t, "sign", "--key", "ci.key", host+"/team/cache@"+d2.String()); res.code != 0 {
		t.Fatalf("sign by digest: %d %s", res.code, res.stderr)
	}
	if sh, _ := signature.ReadHead(ctx, repo, "dev"); sh != nil {
		t.Error("signing by digest wrote a head")
	}
}
