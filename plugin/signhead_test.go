package plugin

import (
	"context"
	"encoding/json"
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
	t.Parallel()
	te := newTestEnv(t, nil)
	host := newRegistry(t)
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	ref := host + "/team/cache:main"
	d := pushRandom(t, ref)
	repo, _ := name.NewRepository(host + "/team/cache")
	ctx := context.Background()

	if res := te.run("sign", "--key", te.path("ci.key"), ref); res.code != 0 {
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

	if res := te.run("sign", "--key", te.path("ci.key"), ref); res.code != 0 || !strings.Contains(res.stderr, "already signed") {
		t.Fatalf("sign again: %d %s", res.code, res.stderr)
	}
	if sigs, _ := signature.ReadLegacy(ctx, repo, d); len(sigs) != 1 {
		t.Errorf("signing an unchanged digest again: %d signatures, want 1", len(sigs))
	}
	if after := headDigest(); after != before {
		t.Errorf("signing an unchanged digest again rewrote the head (%s → %s)", before, after)
	}

	if res := te.run("sign", "--key", te.path("ci.key"), "-a", "tag=other", ref); res.code != ExitUsage || !strings.Contains(res.stderr, "contradicts") {
		t.Errorf("sign -a tag=other REPO:main = %d %q, want a usage error", res.code, res.stderr)
	}

	d2 := pushRandom(t, host+"/team/cache:dev")
	if res := te.run("sign", "--key", te.path("ci.key"), host+"/team/cache@"+d2.String()); res.code != 0 {
		t.Fatalf("sign by digest: %d %s", res.code, res.stderr)
	}
	if sh, _ := signature.ReadHead(ctx, repo, "dev"); sh != nil {
		t.Error("signing by digest wrote a head")
	}
}

// TestVerifyFallbackOutput: a forged cache under a tag that a trusted
// builder signed twice: verify uses the tag's last trusted digest, says so
// in text and JSON, and exits with ExitFallback; with fallback: none it is
// untrusted (ExitUntrusted).
func TestVerifyFallbackOutput(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	host := newRegistry(t)
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	trustPolicy(t, dir, host, "")
	ref := host + "/team/cache:main"
	pushRandom(t, ref)
	if res := te.run("sign", "--key", te.path("ci.key"), ref); res.code != 0 {
		t.Fatal(res.stderr)
	}
	good := pushRandom(t, ref)
	if res := te.run("sign", "--key", te.path("ci.key"), ref); res.code != 0 {
		t.Fatal(res.stderr)
	}
	forged := pushRandom(t, ref)

	res := te.run("verify", "--no-ledger", ref)
	if res.code != ExitFallback {
		t.Fatalf("verify of a forged tag = %d %q %q; want %d", res.code, res.stdout, res.stderr, ExitFallback)
	}
	for _, want := range []string{"trusted (fallback", "digest:  " + good.String(), "tag:     main is " + forged.String() + ", untrusted", "fallback: " + good.String() + " from head (head sequence "} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("verify text output lacks %q:\n%s", want, res.stdout)
		}
	}
	res = te.run("verify", "--no-ledger", "--format", "json", ref)
	var out struct {
		Digest   string `json:"digest"`
		Trusted  bool   `json:"trusted"`
		Fallback struct {
			TagDigest, TagStatus, Digest, Source, Age string
			Signers                                   []struct{ Builder string }
		} `json:"fallback"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || res.code != ExitFallback {
		t.Fatalf("verify --format json = %d %q: %v", res.code, res.stdout, err)
	}
	if !out.Trusted || out.Digest != good.String() || out.Fallback.TagDigest != forged.String() || out.Fallback.TagStatus != "untrusted" ||
		out.Fallback.Source != "head" || out.Fallback.Age == "" || len(out.Fallback.Signers) != 1 || out.Fallback.Signers[0].Builder != "ci" {
		t.Errorf("verify JSON %+v", out)
	}

	trustPolicy(t, dir, host, "    fallback: none\n")
	if res := te.run("verify", "--no-ledger", ref); res.code != ExitUntrusted || strings.Contains(res.stdout, "fallback") {
		t.Errorf("verify with fallback: none = %d %q; want %d, no fallback", res.code, res.stdout, ExitUntrusted)
	}
}
