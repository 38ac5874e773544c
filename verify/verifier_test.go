package verify

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// failWhen is a fault answering 500 to requests whose path contains
// substr.
func failWhen(substr string) testreg.Fault {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, substr) {
			http.Error(w, "injected fault", http.StatusInternalServerError)
			return true
		}
		return false
	}
}

// served is how many requests reg has had since its Reset.
func served(reg *testreg.Registry) int64 { return int64(len(reg.Requests())) }

type testKey struct {
	priv    *ecdsa.PrivateKey
	pubPath string
}

// newKey generates a key and writes its public key to dir/NAME.pub.
func newKey(t testing.TB, dir, name string) testKey {
	t.Helper()
	priv := testreg.Key(t)
	pemBytes, err := keys.MarshalPublicKeyPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".pub")
	if err := os.WriteFile(p, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv, pubPath: p}
}

func (k testKey) id(t *testing.T) string {
	t.Helper()
	id, err := keys.ID(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// sign signs digest in repo as builder with key k, created at "at".
func sign(t testing.TB, k testKey, builder string, repo name.Repository, d v1.Hash, at time.Time, ann map[string]string) {
	t.Helper()
	s := signature.Signer{Key: k.priv, Builder: builder, Now: func() time.Time { return at }}
	if _, err := s.Sign(context.Background(), repo, d, ann); err != nil {
		t.Fatalf("Sign: %v", err)
	}
}

// writePolicy writes a policy file into dir and parses it.
func writePolicy(t testing.TB, dir, text string) *trustpolicy.Policy {
	t.Helper()
	p := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := trustpolicy.Load(p)
	if err != nil {
		t.Fatalf("LoadPolicy: %v\n%s", err, text)
	}
	return pol
}

// copyTag copies the manifest at src to dst (same or another repository).
func copyTag(t *testing.T, src, dst name.Reference) {
	t.Helper()
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
}

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// fixture is one registry, three keys and a policy over them:
// ci (allowed for team/*), release (allowed for team/*, and alone for
// team/release-cache), other (a builder in the policy, allowed nowhere in
// team/), and a stranger key that is in no policy.
type fixture struct {
	reg                           *testreg.Registry
	dir                           string
	ci, ci2, release, other, rand testKey
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	return &fixture{
		reg:     testreg.New(t),
		dir:     dir,
		ci:      newKey(t, dir, "ci"),
		ci2:     newKey(t, dir, "ci2"),
		release: newKey(t, dir, "release"),
		other:   newKey(t, dir, "other"),
		rand:    newKey(t, dir, "stranger"),
	}
}

func (f *fixture) policy(t *testing.T, scopeExtra string, extra string) *trustpolicy.Policy {
	t.Helper()
	return writePolicy(t, f.dir, fmt.Sprintf(`version: 1
builders:
  - name: ci
    keys: [ci.pub, ci2.pub]
  - name: release
    key: release.pub
  - name: other
    key: other.pub
scopes:
  - repositories: ["%[1]s/team/*"]
    builders: [ci, release]
%[2]s
  - repositories: ["%[1]s/team/release-cache"]
    builders: [release]
  - repositories: ["%[1]s/elsewhere/**"]
    builders: [other]
%[3]s`, f.reg.Host, scopeExtra, extra))
}

func (f *fixture) verify(t *testing.T, p *trustpolicy.Policy, ref string) *Result {
	t.Helper()
	res, err := New(p, WithClock(func() time.Time { return now })).Verify(context.Background(), ref)
	if err != nil {
		t.Fatalf("Verify(%q) error: %v", ref, err)
	}
	return res
}

func wantVerdict(t *testing.T, res *Result, want Verdict, reason string) {
	t.Helper()
	if res.Verdict != want {
		t.Errorf("Verify(%q) = %s (%s); want %s", res.Reference, res.Verdict, res.Reason(), want)
	}
	if (want == VerdictTrusted) != res.Trusted {
		t.Errorf("Verify(%q).Trusted = %v; want %v", res.Reference, res.Trusted, want == VerdictTrusted)
	}
	if reason != "" && !strings.Contains(res.Reason(), reason) {
		t.Errorf("Verify(%q) reasons = %q; want one containing %q", res.Reference, res.Reason(), reason)
	}
}

func TestVerifyTrusted(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now.Add(-time.Hour), nil)

	res := f.verify(t, p, repo.Tag("main").String())
	wantVerdict(t, res, VerdictTrusted, "")
	if res.Digest != d.String() {
		t.Errorf("Verify digest = %s; want %s", res.Digest, d)
	}
	if res.Pinned() != repo.Name()+"@"+d.String() {
		t.Errorf("Pinned() = %s; want %s@%s", res.Pinned(), repo.Name(), d)
	}
	if len(res.Signers) != 1 || res.Signers[0].Builder != "ci" || res.Signers[0].KeyID != f.ci.id(t) {
		t.Errorf("Signers = %+v; want ci with %s", res.Signers, f.ci.id(t))
	}
	if res.Signers[0].SignedAt != now.Add(-time.Hour).Format(time.RFC3339) {
		t.Errorf("SignedAt = %q", res.Signers[0].SignedAt)
	}
	// A digest reference verifies the same way.
	wantVerdict(t, f.verify(t, p, repo.Digest(d.String()).String()), VerdictTrusted, "")
}

func TestVerifyRules(t *testing.T) {
	tests := []struct {
		name   string
		scope  string // extra scope lines for team/*
		extra  string // extra top-level policy
		setup  func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash)
		repo   string
		want   Verdict
		reason string
	}{{
		name:   "unsigned",
		setup:  func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {},
		want:   VerdictUntrusted,
		reason: "no signatures found",
	}, {
		name: "key not in the policy",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.rand, "ci", repo, d, now, nil)
		},
		want:   VerdictUntrusted,
		reason: "not signed by any key in the policy",
	}, {
		name: "builder of another scope",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.other, "other", repo, d, now, nil)
		},
		want:   VerdictUntrusted,
		reason: "builder other, which is not allowed",
	}, {
		name:  "revoked key",
		extra: "revoked: [REVOKED]",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
		},
		want:   VerdictUntrusted,
		reason: "revoked key",
	}, {
		name:  "rotated key of the same builder still counts",
		extra: "revoked: [REVOKED]",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci2, "ci", repo, d, now, nil)
		},
		want: VerdictTrusted,
	}, {
		name: "signature copied from another digest",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			other := testreg.PushRandom(t, repo.Tag("other"), 256, 1)
			sign(t, f.ci, "ci", repo, other, now, nil)
			copyTag(t, signature.SigTag(repo, other), signature.SigTag(repo, d))
		},
		want:   VerdictUntrusted,
		reason: "copied from another manifest",
	}, {
		name: "cache and signature copied from another repository",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			src := f.reg.Repo(t, "team/source-cache")
			copyTag(t, repo.Tag("main"), src.Tag("main"))
			sign(t, f.ci, "ci", src, d, now, nil)
			copyTag(t, signature.SigTag(src, d), signature.SigTag(repo, d))
		},
		want:   VerdictUntrusted,
		reason: "copied from another repository",
	}, {
		name:  "threshold 2 with one signer",
		scope: "    threshold: 2",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
		},
		want:   VerdictUntrusted,
		reason: "1 of the 2 required",
	}, {
		name:  "threshold 2 with one builder signing twice",
		scope: "    threshold: 2",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
			sign(t, f.ci2, "ci", repo, d, now, nil)
		},
		want:   VerdictUntrusted,
		reason: "1 of the 2 required",
	}, {
		name:  "threshold 2 with two builders",
		scope: "    threshold: 2",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
			sign(t, f.release, "release", repo, d, now, nil)
		},
		want: VerdictTrusted,
	}, {
		name: "no scope matches",
		repo: "nowhere/cache",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
		},
		want:   VerdictUntrusted,
		reason: "no policy scope matches",
	}, {
		name: "most specific scope wins",
		repo: "team/release-cache",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil) // ci is allowed by team/*, not by team/release-cache
		},
		want:   VerdictUntrusted,
		reason: "builder ci, which is not allowed",
	}, {
		name:  "older than maxAge",
		scope: "    maxAge: 24h",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now.Add(-25*time.Hour), nil)
		},
		want:   VerdictUntrusted,
		reason: "older than maxAge",
	}, {
		name:  "within maxAge",
		scope: "    maxAge: 24h",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now.Add(-23*time.Hour), nil)
		},
		want: VerdictTrusted,
	}, {
		name: "signed in the future",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now.Add(time.Hour), nil)
		},
		want:   VerdictUntrusted,
		reason: "in the future",
	}, {
		name:  "required annotation does not match",
		scope: "    annotations:\n      ref: refs/heads/main",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, map[string]string{"ref": "refs/pull/7/merge"})
		},
		want:   VerdictUntrusted,
		reason: `ref="refs/pull/7/merge" does not match`,
	}, {
		name:  "required annotation missing",
		scope: "    annotations:\n      ref: refs/heads/main",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
		},
		want:   VerdictUntrusted,
		reason: `"ref" is missing`,
	}, {
		name:  "required annotation glob matches",
		scope: "    annotations:\n      ref: refs/heads/main\n      repo: github.com/acme/*",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, map[string]string{"ref": "refs/heads/main", "repo": "github.com/acme/app"})
		},
		want: VerdictTrusted,
	}, {
		name: "registry fails fetching signatures",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
			f.reg.SetFault(failWhen("/manifests/sha256-"))
		},
		want:   VerdictInconclusive,
		reason: "500",
	}, {
		name: "registry fails fetching the payload",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
			stripData(t, repo, d) // as cosign writes it: the payload is fetched
			f.reg.SetFault(failWhen("/blobs/"))
		},
		want:   VerdictInconclusive,
		reason: "500",
	}, {
		name: "registry fails resolving the tag",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			sign(t, f.ci, "ci", repo, d, now, nil)
			f.reg.SetFault(failWhen("/manifests/main"))
		},
		want:   VerdictInconclusive,
		reason: "500",
	}, {
		name: "tag does not exist",
		setup: func(t *testing.T, f *fixture, repo name.Repository, d v1.Hash) {
			if err := remote.Delete(repo.Tag("main")); err != nil {
				t.Fatal(err)
			}
		},
		want:   VerdictMissing,
		reason: "does not exist in the registry",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			extra := strings.ReplaceAll(tc.extra, "REVOKED", f.ci.id(t))
			p := f.policy(t, tc.scope, extra)
			path := tc.repo
			if path == "" {
				path = "team/app-cache"
			}
			repo := f.reg.Repo(t, path)
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			tc.setup(t, f, repo, d)
			res := f.verify(t, p, repo.Tag("main").String())
			wantVerdict(t, res, tc.want, tc.reason)
		})
	}
}

func TestVerifyLevels(t *testing.T) {
	f := newFixture(t)
	repo := f.reg.Repo(t, "team/app-cache")
	testreg.PushRandom(t, repo.Tag("main"), 256, 1)

	audit := f.verify(t, f.policy(t, "    level: audit", ""), repo.Tag("main").String())
	wantVerdict(t, audit, VerdictUntrusted, "no signatures found")
	if audit.Enforced() {
		t.Errorf("audit result Enforced() = true; want false")
	}
	if audit.Digest == "" {
		t.Errorf("audit result has no digest; the build pins audited caches")
	}

	before := served(f.reg)
	skip := f.verify(t, f.policy(t, "    level: skip", ""), repo.Tag("main").String())
	wantVerdict(t, skip, VerdictSkipped, "skip")
	if skip.Enforced() {
		t.Errorf("skip result Enforced() = true; want false")
	}
	if n := served(f.reg) - before; n != 0 {
		t.Errorf("skip level made %d registry requests; want 0", n)
	}

	strict := f.verify(t, f.policy(t, "    onUntrusted: fail", ""), repo.Tag("main").String())
	if !strict.Enforced() || strict.OnUntrusted != trustpolicy.Fail {
		t.Errorf("strict result Enforced() = %v, OnUntrusted = %s; want true, fail", strict.Enforced(), strict.OnUntrusted)
	}
}

func TestVerifyBadReference(t *testing.T) {
	f := newFixture(t)
	_, err := New(f.policy(t, "", "")).Verify(context.Background(), "Not A Ref!")
	var re *ReferenceError
	if err == nil || !errors.As(err, &re) {
		t.Fatalf("Verify(bad ref) error = %v; want *ReferenceError", err)
	}
}

// TestVerifyRoundTrips counts registry requests: a cold verify of a tag is
// the ping, the tag's HEAD and the signature manifest, which carries the
// payload in its layer descriptor's data (no blob fetch); a digest
// reference skips the HEAD; the ping is not repeated for further
// references of the same repository. A signature without data (as cosign
// writes it) costs the payload fetch on top.
func TestVerifyRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		strip                   bool // as cosign writes signatures: no embedded payload
		tag, secondTag, digest  int64
		tagWhy, secondWhy, dWhy string
	}{
		{"payload embedded (trustcache's signatures)", false, 4, 3, 1,
			"ping, HEAD tag, GET .sig, GET head record (verify/fallback.go: a fresh host's rollback bound)", "no second ping", ".sig"},
		{"payload as a blob only (cosign's signatures)", true, 5, 4, 2,
			"ping, HEAD tag, GET .sig, GET payload, GET head record", "no second ping", ".sig, payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(t, "", "")
			repo := f.reg.Repo(t, "team/app-cache")
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			d2 := testreg.PushRandom(t, repo.Tag("second"), 256, 1)
			for _, dd := range []v1.Hash{d, d2} {
				sign(t, f.ci, "ci", repo, dd, now, nil)
				if tc.strip {
					stripData(t, repo, dd)
				}
			}

			v := New(p, WithClock(func() time.Time { return now }))
			count := func(ref string) int64 {
				t.Helper()
				before := served(f.reg)
				res, err := v.Verify(context.Background(), ref)
				if err != nil || !res.Trusted {
					t.Fatalf("Verify(%q) = %+v, %v; want trusted", ref, res, err)
				}
				return served(f.reg) - before
			}
			if n := count(repo.Tag("main").String()); n != tc.tag {
				t.Errorf("cold verify of a tag: %d requests; want %d (%s)", n, tc.tag, tc.tagWhy)
			}
			if n := count(repo.Tag("second").String()); n != tc.secondTag {
				t.Errorf("verify of a second tag in the same repository: %d requests; want %d (%s)", n, tc.secondTag, tc.secondWhy)
			}
			if n := count(repo.Digest(d.String()).String()); n != tc.digest {
				t.Errorf("verify of a digest reference: %d requests; want %d (%s)", n, tc.digest, tc.dWhy)
			}
		})
	}
}

// TestVerifyMissing: a tag nothing was pushed to (a new branch's first
// build) is its own verdict, missing, never untrusted (a CI gate would
// take it for an attack) nor trusted; a tag that exists without
// signatures stays untrusted, and a registry failure inconclusive.
func TestVerifyMissing(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "    onUntrusted: fail", "")
	repo := f.reg.Repo(t, "team/app-cache")
	testreg.PushRandom(t, repo.Tag("unsigned"), 256, 1)
	for _, tc := range []struct {
		ref     string
		want    Verdict
		missing bool
	}{
		{repo.Tag("new-branch").String(), VerdictMissing, true},                         // repository exists, tag does not
		{f.reg.Repo(t, "team/never-pushed").Tag("main").String(), VerdictMissing, true}, // no such repository
		{repo.Tag("unsigned").String(), VerdictUntrusted, false},
	} {
		res := f.verify(t, p, tc.ref)
		wantVerdict(t, res, tc.want, "")
		if res.Missing != tc.missing || res.Trusted || res.Digest != "" && tc.missing {
			t.Errorf("Verify(%q): Missing %v, Trusted %v, Digest %q; want Missing %v, not trusted, no digest when missing", tc.ref, res.Missing, res.Trusted, res.Digest, tc.missing)
		}
		if tc.missing && (!strings.HasPrefix(res.Reason(), "missing: ") || !res.Enforced()) {
			t.Errorf("Verify(%q) reasons %q, Enforced %v; want a \"missing: \" reason, enforced (never imported)", tc.ref, res.Reason(), res.Enforced())
		}
	}
	f.reg.SetFault(failWhen("/manifests/"))
	wantVerdict(t, f.verify(t, p, repo.Tag("new-branch").String()), VerdictInconclusive, "500")
}
