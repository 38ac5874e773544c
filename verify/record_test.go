package verify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// attach signs d in repo as builder with k, as "docker trustcache sign"
// does, and returns the signature it attached.
func attach(t *testing.T, k testKey, builder string, format signature.Format, repo name.Repository, d v1.Hash) signature.Signature {
	t.Helper()
	s := signature.Signer{Key: k.priv, Builder: builder, Now: func() time.Time { return now }}
	sig, _, err := s.Attach(context.Background(), format, repo, d, nil)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return sig
}

// TestRecordSigned: a digest this host signed is recorded in the ledger
// only when the policy trusts it on that signature, by the same rules as a
// verification; recorded, the next verification here fetches no signature.
func TestRecordSigned(t *testing.T) {
	ci := func(f *fixture) testKey { return f.ci }
	for _, tc := range []struct {
		name    string
		extra   string // policy scopes/revocations, REVOKED = ci's key id
		repo    string
		key     func(f *fixture) testKey // signs as builder "ci"
		format  signature.Format
		ofOther bool // the signature is of another digest
		want    Verdict
		reason  string
	}{
		{name: "allowed key, legacy", repo: "team/app-cache", key: ci, format: signature.FormatLegacy, want: VerdictTrusted},
		{name: "allowed key, bundle (repository bound by the identity annotation)", repo: "team/app-cache", key: ci, format: signature.FormatBundle, want: VerdictTrusted},
		{name: "key the policy does not know", repo: "team/app-cache", key: func(f *fixture) testKey { return f.rand }, format: signature.FormatLegacy,
			want: VerdictUntrusted, reason: "not signed by any key in the policy"},
		{name: "builder of another scope", repo: "team/release-cache", key: ci, format: signature.FormatLegacy,
			want: VerdictUntrusted, reason: "not allowed"},
		{name: "revoked key", extra: "revoked: [REVOKED]", repo: "team/app-cache", key: ci, format: signature.FormatLegacy,
			want: VerdictUntrusted, reason: "revoked key"},
		{name: "signature of another digest", repo: "team/app-cache", key: ci, format: signature.FormatLegacy, ofOther: true,
			want: VerdictUntrusted, reason: "copied from another manifest"},
		{name: "one builder of the two the scope requires", extra: `  - repositories: ["HOST/team/two-builders"]
    builders: [ci, release]
    threshold: 2`, repo: "team/two-builders", key: ci, format: signature.FormatLegacy,
			want: VerdictUntrusted, reason: "1 of the 2 required allowed builders signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			extra := strings.ReplaceAll(strings.ReplaceAll(tc.extra, "REVOKED", f.ci.id(t)), "HOST", f.reg.Host)
			var p *trustpolicy.Policy
			if strings.HasPrefix(extra, "revoked") {
				p = f.policy(t, "", extra)
			} else {
				p = f.policy(t, extra, "")
			}
			repo := f.reg.Repo(t, tc.repo)
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			other := testreg.PushRandom(t, repo.Tag("other"), 256, 1)
			signed := d
			if tc.ofOther {
				signed = other
			}
			sig := attach(t, tc.key(f), "ci", tc.format, repo, signed)
			l := newLedger(t)
			ref := repo.Digest(d.String()).String()

			before := served(f.reg)
			res, err := ledgerVerifier(p, l, now).recordSigned(context.Background(), ref, []signature.Signature{sig})
			if err != nil {
				t.Fatalf("RecordSigned(%q): %v", ref, err)
			}
			if n := served(f.reg) - before; n != 0 {
				t.Errorf("RecordSigned made %d registry requests; want 0", n)
			}
			wantVerdict(t, res, tc.want, tc.reason)

			e, err := l.Lookup(context.Background(), res.Repository, d.String())
			if err != nil {
				t.Fatal(err)
			}
			if recorded := e != nil; recorded != (tc.want == VerdictTrusted) {
				t.Fatalf("ledger entry after RecordSigned: %v; want one only for a trusted digest", e)
			}
			// A verification by digest on this host: from the ledger, no
			// request, when recorded.
			before = served(f.reg)
			again, err := ledgerVerifier(p, l, now.Add(time.Minute)).Verify(context.Background(), ref)
			if err != nil {
				t.Fatal(err)
			}
			if n := served(f.reg) - before; again.FromLedger != (tc.want == VerdictTrusted) || (again.FromLedger && n != 0) {
				t.Errorf("Verify after RecordSigned: FromLedger %v, %d requests", again.FromLedger, n)
			}
			if again.Verdict != tc.want {
				t.Errorf("Verify after RecordSigned = %s; want %s as recorded", again.Verdict, tc.want)
			}
		})
	}
}

// TestRecordSignedReferences: only REPO@DIGEST is recorded; no scope or a
// skip scope records nothing; without a ledger the verdict is still given.
func TestRecordSignedReferences(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, `  - repositories: ["`+f.reg.Host+`/team/skipped"]
    level: skip`, "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sig := attach(t, f.ci, "ci", signature.FormatLegacy, repo, d)
	l := newLedger(t)
	v := ledgerVerifier(p, l, now)

	var rerr *ReferenceError
	if _, err := v.recordSigned(context.Background(), repo.Tag("main").String(), []signature.Signature{sig}); !errors.As(err, &rerr) {
		t.Errorf("RecordSigned(tag) error = %v; want a *ReferenceError", err)
	}
	for _, c := range []struct {
		repo string
		want Verdict
	}{{"nowhere/app", VerdictUntrusted}, {"team/skipped", VerdictSkipped}} {
		r := f.reg.Repo(t, c.repo)
		res, err := v.recordSigned(context.Background(), r.Digest(d.String()).String(), []signature.Signature{sig})
		if err != nil || res.Verdict != c.want {
			t.Errorf("RecordSigned(%s) = %v, %v; want %s", c.repo, res.Verdict, err, c.want)
		}
		if e, _ := l.Lookup(context.Background(), res.Repository, d.String()); e != nil {
			t.Errorf("RecordSigned(%s) recorded %v", c.repo, e)
		}
	}
	res, err := New(p, WithClock(func() time.Time { return now })).recordSigned(context.Background(), repo.Digest(d.String()).String(), []signature.Signature{sig})
	if err != nil || !res.Trusted {
		t.Errorf("RecordSigned without a ledger = %+v, %v; want trusted", res, err)
	}
}

// TestClockSkewAgrees: the signer refreshes a signature dated in the
// future by the same skew the verifier allows.
func TestClockSkewAgrees(t *testing.T) {
	if signature.ClockSkew != ClockSkew {
		t.Errorf("signature.ClockSkew = %s, verify.ClockSkew = %s; want the same", signature.ClockSkew, ClockSkew)
	}
}
