//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// TestSignThenCosignVerify: what docker trustcache sign writes passes the
// real cosign v2 `verify --key`, with our key and with a key made by
// cosign generate-key-pair.
func TestSignThenCosignVerify(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "tc")
	e.cosign(t, "generate-key-pair").must(t) // cosign.key, cosign.pub in e.dir
	repo := uniqueRepo(t)
	ref, digest := pushRandomImage(t, repo)

	r := e.trustcache(t, "sign", "--key", "tc.key", "-a", "ref=refs/heads/main", ref).must(t)
	if want := repo + "@" + digest; strings.TrimSpace(r.stdout) != want {
		t.Errorf("sign printed %q; want %q", r.stdout, want)
	}
	pinned := repo + "@" + digest
	e.cosign(t, cosignVerifyArgs("tc.pub", pinned)...).must(t)

	// A cosign key signs through trustcache, and cosign verifies it.
	e.trustcache(t, "sign", "--key", "cosign.key", ref).must(t)
	e.cosign(t, cosignVerifyArgs("cosign.pub", pinned)...).must(t)

	// cosign refuses a key that did not sign: the check is real.
	e.genKey(t, "other")
	if r := e.cosign(t, cosignVerifyArgs("other.pub", pinned)...); r.code == 0 {
		t.Errorf("cosign verify with a key that never signed passed:\n%v", r)
	}

	// Signing again with the same key and annotations adds no layer.
	before := e.crane(t, "manifest", repo+":sha256-"+strings.TrimPrefix(digest, "sha256:")+".sig").must(t).stdout
	e.trustcache(t, "sign", "--key", "tc.key", "-a", "ref=refs/heads/main", ref).must(t)
	after := e.crane(t, "manifest", repo+":sha256-"+strings.TrimPrefix(digest, "sha256:")+".sig").must(t).stdout
	if before != after {
		t.Errorf("signing again changed the signature manifest:\nbefore %s\nafter  %s", before, after)
	}
}

// TestSignErrorsWriteNothing: a wrong password, a missing key and a ref that
// does not exist each fail clearly, and no signature appears.
func TestSignErrorsWriteNothing(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "tc")
	repo := uniqueRepo(t)
	ref, digest := pushRandomImage(t, repo)
	sigTag := repo + ":sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig"

	e.setenv("TRUSTCACHE_PASSWORD", "wrong")
	r := e.trustcache(t, "sign", "--key", "tc.key", ref).wantCode(t, 2)
	if !strings.Contains(r.stderr, "wrong password") {
		t.Errorf("wrong password: stderr %q", r.stderr)
	}
	e.setenv("TRUSTCACHE_PASSWORD", keyPassword)
	r = e.trustcache(t, "sign", "--key", "missing.key", ref).wantCode(t, 2)
	if !strings.Contains(r.stderr, "missing.key") {
		t.Errorf("missing key: stderr %q", r.stderr)
	}
	r = e.trustcache(t, "sign", "--key", "tc.key", ref, repo+":does-not-exist")
	if r.code == 0 || !strings.Contains(r.stderr, "does-not-exist") {
		t.Errorf("sign of a missing tag: %v", r)
	}
	if r := e.crane(t, "manifest", sigTag); r.code == 0 {
		t.Errorf("a failed sign wrote %s:\n%s", sigTag, r.stdout)
	}
	// No terminal and no password variable: a clear error.
	e.unsetenv("TRUSTCACHE_PASSWORD")
	r = e.trustcache(t, "sign", "--key", "tc.key", ref).wantCode(t, 2)
	if !strings.Contains(r.stderr, "TRUSTCACHE_PASSWORD") {
		t.Errorf("no password: stderr %q", r.stderr)
	}
}
