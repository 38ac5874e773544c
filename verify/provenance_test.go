package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// attachRecord signs st with k and attaches it to digest in repo as a
// provenance attestation referrer, as build --sign does.
func attachRecord(t *testing.T, k testKey, repo name.Repository, d v1.Hash, st provenance.Statement) {
	t.Helper()
	data, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	attachRecordBytes(t, k, repo, d, data)
}

func attachRecordBytes(t *testing.T, k testKey, repo name.Repository, d v1.Hash, data []byte) {
	t.Helper()
	bundle, err := signature.NewBundle(data, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signature.AppendBundle(context.Background(), repo, d, bundle, signature.AppendOptions{PredicateType: provenance.PredicateType}); err != nil {
		t.Fatal(err)
	}
}

// record is a record whose subject is repo@d and whose imports are caches.
func record(t *testing.T, p *trustpolicy.Policy, repo name.Repository, d v1.Hash, caches ...provenance.Cache) provenance.Statement {
	t.Helper()
	sub, err := provenance.NewSubject(repo.Name(), d.String())
	if err != nil {
		t.Fatal(err)
	}
	return provenance.New([]provenance.Subject{sub}, provenance.Predicate{
		Trustcache: "test",
		Policy:     provenance.Policy{File: p.File, Digest: p.Fingerprint(nil)},
		Caches:     caches,
		BuiltAt:    now.Add(-time.Hour).Format(time.RFC3339),
	})
}

// used is a cache import the build verified trusted and used, pinned to d.
func used(repo name.Repository, d v1.Hash) provenance.Cache {
	return provenance.Cache{
		Reference: "type=registry,ref=" + repo.Tag("main").String(), Type: "registry",
		Digest: d.String(), Verdict: "trusted", Action: provenance.ActionUsed, Guarantee: provenance.GuaranteeVerifiedBytes,
		Signers: []provenance.Signer{{Builder: "ci", KeyID: "sha256:" + strings.Repeat("a", 64)}},
	}
}

// provFixture: team/base (signed by ci, a record with no imports) and
// team/app (signed by ci), under a policy whose team/* scope requires
// provenance.
type provFixture struct {
	*fixture
	p         *trustpolicy.Policy
	base, app name.Repository
	dBase     v1.Hash
	dApp      v1.Hash
}

func newProvFixture(t *testing.T, scopeExtra string) *provFixture {
	t.Helper()
	f := &provFixture{fixture: newFixture(t)}
	f.p = f.policy(t, "    requireProvenance: true\n"+scopeExtra, "")
	f.base, f.app = f.reg.Repo(t, "team/base"), f.reg.Repo(t, "team/app")
	f.dBase = testreg.PushRandom(t, f.base.Tag("main"), 256, 1)
	f.dApp = testreg.PushRandom(t, f.app.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", f.base, f.dBase, now.Add(-2*time.Hour), nil)
	attachRecord(t, f.ci, f.base, f.dBase, record(t, f.p, f.base, f.dBase))
	sign(t, f.ci, "ci", f.app, f.dApp, now.Add(-time.Hour), nil)
	return f
}

func (f *provFixture) verifyApp(t *testing.T) *Result {
	t.Helper()
	return f.verify(t, f.p, f.app.Tag("main").String())
}

// TestRequireProvenance: every rule of requireProvenance, each with a case
// that passes without the rule.
func TestRequireProvenance(t *testing.T) {
	tests := []struct {
		name   string
		scope  string
		setup  func(t *testing.T, f *provFixture)
		want   Verdict
		reason string
	}{
		{
			name: "a record whose import re-verifies",
			setup: func(t *testing.T, f *provFixture) {
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.base, f.dBase)))
			},
			want: VerdictTrusted, reason: "provenance (requireProvenance, maxDepth 3, maxRequests 200): record",
		},
		{
			name: "dropped imports do not count",
			setup: func(t *testing.T, f *provFixture) {
				dropped := provenance.Cache{Reference: "type=registry,ref=evil.example/x:y", Type: "registry", Verdict: "untrusted", Action: provenance.ActionDropped}
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, dropped))
			},
			want: VerdictTrusted,
		},
		{
			name:   "no record",
			setup:  func(t *testing.T, f *provFixture) {},
			want:   VerdictUntrusted,
			reason: "no provenance record",
		},
		{
			name: "a record signed by no key of the policy",
			setup: func(t *testing.T, f *provFixture) {
				attachRecord(t, f.rand, f.app, f.dApp, record(t, f.p, f.app, f.dApp))
			},
			want: VerdictUntrusted, reason: "not signed by any key in the policy",
		},
		{
			name: "an unsigned record (its signature does not cover it)",
			setup: func(t *testing.T, f *provFixture) {
				// Signed, then the statement swapped: the signature no
				// longer covers what the envelope carries.
				good, _ := record(t, f.p, f.app, f.dApp).Marshal()
				bundle, err := signature.NewBundle(good, f.ci.priv)
				if err != nil {
					t.Fatal(err)
				}
				var b signature.Bundle
				if err := json.Unmarshal(bundle, &b); err != nil {
					t.Fatal(err)
				}
				b.DSSEEnvelope.Payload, _ = record(t, f.p, f.app, f.dApp, provenance.Cache{Reference: "x", Type: "local", Action: provenance.ActionDropped}).Marshal()
				forged, _ := json.Marshal(b)
				if _, err := signature.AppendBundle(context.Background(), f.app, f.dApp, forged, signature.AppendOptions{PredicateType: provenance.PredicateType}); err != nil {
					t.Fatal(err)
				}
			},
			want: VerdictUntrusted, reason: "not signed by any key in the policy",
		},
		{
			name: "a record signed by a builder the scope does not allow",
			setup: func(t *testing.T, f *provFixture) {
				attachRecord(t, f.other, f.app, f.dApp, record(t, f.p, f.app, f.dApp))
			},
			want: VerdictUntrusted, reason: "signed by builder other, which is not allowed",
		},
		{
			name: "a record for another digest",
			setup: func(t *testing.T, f *provFixture) {
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dBase))
			},
			want: VerdictUntrusted, reason: "subjects do not include",
		},
		{
			name: "a record for the digest in another repository",
			setup: func(t *testing.T, f *provFixture) {
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.base, f.dApp))
			},
			want: VerdictUntrusted, reason: "subjects do not include",
		},
		{
			name: "an import the record says was untrusted",
			setup: func(t *testing.T, f *provFixture) {
				c := used(f.base, f.dBase)
				c.Verdict = "untrusted" // an audit scope's import
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, c))
			},
			want: VerdictUntrusted, reason: `with verdict "untrusted"`,
		},
		{
			name: "an import passed on unverified",
			setup: func(t *testing.T, f *provFixture) {
				c := provenance.Cache{Reference: "type=local,src=/tmp/c", Type: "local", Action: provenance.ActionPassed}
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, c))
			},
			want: VerdictUntrusted, reason: "passed on type=local,src=/tmp/c without verifying it",
		},
		{
			name: "an import whose pinned digest no longer verifies",
			setup: func(t *testing.T, f *provFixture) {
				poisoned := testreg.PushRandom(t, f.base.Tag("poisoned"), 256, 1) // signed by nobody
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.base, poisoned)))
			},
			want: VerdictUntrusted, reason: "no longer verifies under this policy",
		},
		{
			name: "an import whose own record is missing",
			setup: func(t *testing.T, f *provFixture) {
				unrecorded := testreg.PushRandom(t, f.base.Tag("unrecorded"), 256, 1)
				sign(t, f.ci, "ci", f.base, unrecorded, now.Add(-time.Hour), nil)
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.base, unrecorded)))
			},
			want: VerdictUntrusted, reason: "no provenance record",
		},
		{
			name: "an import that is the cache itself",
			setup: func(t *testing.T, f *provFixture) {
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.app, f.dApp)))
			},
			want: VerdictUntrusted, reason: "a cycle proves nothing",
		},
		{
			name: "one good record among bad ones",
			setup: func(t *testing.T, f *provFixture) {
				attachRecord(t, f.rand, f.app, f.dApp, record(t, f.p, f.app, f.dApp))
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.app, f.dApp)))
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.base, f.dBase)))
			},
			want: VerdictTrusted,
		},
		{
			name:  "depth exceeded, the record made under another policy",
			scope: "    maxDepth: 0\n",
			setup: func(t *testing.T, f *provFixture) {
				st := record(t, f.p, f.app, f.dApp, used(f.base, f.dBase))
				st.Predicate.Policy.Digest = "sha256:" + strings.Repeat("0", 64)
				attachRecord(t, f.ci, f.app, f.dApp, st)
			},
			want: VerdictUntrusted, reason: "deeper than maxDepth 0",
		},
		{
			name:  "depth exceeded, the record made under this policy",
			scope: "    maxDepth: 0\n",
			setup: func(t *testing.T, f *provFixture) {
				poisoned := testreg.PushRandom(t, f.base.Tag("poisoned"), 256, 1) // not re-verified below maxDepth
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.base, poisoned)))
			},
			want: VerdictTrusted,
		},
		{
			name:  "request limit exceeded",
			scope: "    maxRequests: 3\n",
			setup: func(t *testing.T, f *provFixture) {
				attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.base, f.dBase)))
			},
			want: VerdictUntrusted, reason: "more than 3 registry requests",
		},
		{
			name: "a malformed record",
			setup: func(t *testing.T, f *provFixture) {
				good, _ := record(t, f.p, f.app, f.dApp).Marshal()
				bad := strings.Replace(string(good), `"caches":[]`, `"caches":[{"reference":"x","action":"imported"}]`, 1)
				attachRecordBytes(t, f.ci, f.app, f.dApp, []byte(bad))
			},
			want: VerdictUntrusted, reason: "malformed record",
		},
		{
			name: "a record that is not JSON",
			setup: func(t *testing.T, f *provFixture) {
				attachRecordBytes(t, f.ci, f.app, f.dApp, []byte("{not json"))
			},
			want: VerdictUntrusted, reason: "malformed record",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newProvFixture(t, tt.scope)
			tt.setup(t, f)
			res := f.verifyApp(t)
			wantVerdict(t, res, tt.want, tt.reason)
			if res.Provenance == nil {
				t.Errorf("Result.Provenance is nil; want the walk's findings")
			}
		})
	}
}

// TestRequireProvenanceOff: a scope without requireProvenance trusts a
// signed cache without a record, and reads no records.
func TestRequireProvenanceOff(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now.Add(-time.Hour), nil)
	res := f.verify(t, p, repo.Tag("main").String())
	wantVerdict(t, res, VerdictTrusted, "")
	if res.Provenance != nil {
		t.Errorf("Provenance = %+v; want nil (the rule is off)", res.Provenance)
	}
}

// TestRequireProvenancePolicyEdit: a policy edit that revokes the key an
// import was signed with makes the cache built from it untrusted, though
// its own signature and record are still good: imports are re-verified,
// not taken from the record's fingerprint.
func TestRequireProvenancePolicyEdit(t *testing.T) {
	f := newProvFixture(t, "")
	// base re-signed by ci2 only (its ci signature removed: a new digest).
	d2 := testreg.PushRandom(t, f.base.Tag("v2"), 256, 1)
	sign(t, f.ci2, "ci", f.base, d2, now.Add(-time.Hour), nil)
	attachRecord(t, f.ci2, f.base, d2, record(t, f.p, f.base, d2))
	attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.base, d2)))
	wantVerdict(t, f.verifyApp(t), VerdictTrusted, "")

	edited := f.policy(t, "    requireProvenance: true\n", "revoked: ["+f.ci2.id(t)+"]\n")
	res := f.verify(t, edited, f.app.Tag("main").String())
	wantVerdict(t, res, VerdictUntrusted, "no longer verifies under this policy")
}

// TestRequireProvenanceChain: the rule follows imports of imports: a
// three-level chain whose bottom record lists an untrusted import fails at
// the top; within maxDepth.
func TestRequireProvenanceChain(t *testing.T) {
	f := newProvFixture(t, "")
	mid := f.reg.Repo(t, "team/mid")
	dMid := testreg.PushRandom(t, mid.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", mid, dMid, now.Add(-time.Hour), nil)
	bad := used(f.base, f.dBase)
	bad.Verdict = "inconclusive"
	attachRecord(t, f.ci, mid, dMid, record(t, f.p, mid, dMid, bad))
	attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(mid, dMid)))
	res := f.verifyApp(t)
	wantVerdict(t, res, VerdictUntrusted, `with verdict "inconclusive"`)
	imp := res.Provenance.Records[0].Imports[0]
	if imp.Chain == nil || imp.Chain.OK || imp.Chain.Depth != 1 {
		t.Errorf("import chain = %+v; want mid's failed records at depth 1", imp.Chain)
	}
}

// TestRequireProvenanceInconclusive: a registry failure reading records
// gives no verdict, not a trusted one.
func TestRequireProvenanceInconclusive(t *testing.T) {
	f := newProvFixture(t, "")
	attachRecord(t, f.ci, f.app, f.dApp, record(t, f.p, f.app, f.dApp, used(f.base, f.dBase)))
	f.reg.SetFault(failWhen("/referrers/"))
	res := f.verifyApp(t)
	if res.Trusted || res.Verdict != VerdictInconclusive {
		t.Errorf("Verify = %s (%s); want inconclusive", res.Verdict, res.Reason())
	}
}

// TestProvenanceCommandChain: Verifier.Provenance shows the records of a
// three-level chain with depth 2, each verified, and stops at depth.
func TestProvenanceCommandChain(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "") // no requireProvenance: the walk is the command's
	a, b, c := f.reg.Repo(t, "team/a"), f.reg.Repo(t, "team/b"), f.reg.Repo(t, "team/c")
	dA, dB, dC := testreg.PushRandom(t, a.Tag("main"), 256, 1), testreg.PushRandom(t, b.Tag("main"), 256, 1), testreg.PushRandom(t, c.Tag("main"), 256, 1)
	for _, x := range []struct {
		r name.Repository
		d v1.Hash
	}{{a, dA}, {b, dB}, {c, dC}} {
		sign(t, f.ci, "ci", x.r, x.d, now.Add(-time.Hour), nil)
	}
	attachRecord(t, f.ci, a, dA, record(t, p, a, dA))
	attachRecord(t, f.ci, b, dB, record(t, p, b, dB, used(a, dA)))
	attachRecord(t, f.ci, c, dC, record(t, p, c, dC, used(b, dB)))
	v := New(p, WithClock(func() time.Time { return now }))

	node, err := v.Provenance(context.Background(), c.Tag("main").String(), ProvenanceOptions{Depth: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !node.OK || len(node.Records) != 1 {
		t.Fatalf("C: %+v; want one record that holds", node)
	}
	nb := node.Records[0].Imports[0].Chain
	if nb == nil || !nb.OK || nb.Digest != dB.String() {
		t.Fatalf("C's import: %+v; want B's record", nb)
	}
	na := nb.Records[0].Imports[0].Chain
	if na == nil || !na.OK || na.Digest != dA.String() || na.Depth != 2 {
		t.Fatalf("B's import: %+v; want A's record at depth 2", na)
	}

	shallow, err := v.Provenance(context.Background(), c.Tag("main").String(), ProvenanceOptions{Depth: 0})
	if err != nil {
		t.Fatal(err)
	}
	if imp := shallow.Records[0].Imports[0]; imp.Chain != nil || imp.Now == nil || !imp.Now.Trusted {
		t.Errorf("depth 0: import %+v; want re-verified, its records not read", imp)
	}

	// No record: a reason, never an error.
	none, err := v.Provenance(context.Background(), a.Digest(testreg.PushRandom(t, a.Tag("bare"), 256, 1).String()).String(), ProvenanceOptions{})
	if err != nil || none.OK || !strings.Contains(fmt.Sprint(none.Reasons), "no provenance record") {
		t.Errorf("no record: %+v, %v; want a reason", none, err)
	}
	var re *ReferenceError
	if _, err := v.Provenance(context.Background(), "Not A Ref", ProvenanceOptions{}); !errors.As(err, &re) {
		t.Errorf("bad reference: %v; want a *ReferenceError", err)
	}
}

// TestProvenancePolicyFields: requireProvenance, maxDepth, maxRequests are
// parsed, defaulted and checked, each problem naming file:line and field.
func TestProvenancePolicyFields(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "    requireProvenance: true\n    maxDepth: 5\n    maxRequests: 50\n", "")
	if r := p.Scopes[0].Provenance; !r.Required || r.MaxDepth != 5 || r.MaxRequests != 50 {
		t.Errorf("rule = %+v; want required, 5, 50", r)
	}
	p = f.policy(t, "    requireProvenance: true\n", "")
	if r := p.Scopes[0].Provenance; r.MaxDepth != trustpolicy.DefaultProvenanceMaxDepth || r.MaxRequests != trustpolicy.DefaultProvenanceMaxRequests {
		t.Errorf("defaults = %+v", r)
	}
	if p.Scopes[1].Provenance.Required {
		t.Errorf("scope 1 requires provenance; want only the scope that says so")
	}
	for _, tt := range []struct{ scope, want string }{
		{"    maxDepth: 2\n", ":13:5: scopes[0].maxDepth: has no effect without requireProvenance: true"},
		{"    requireProvenance: false\n    maxRequests: 2\n", ":14:5: scopes[0].maxRequests: has no effect: requireProvenance is false"},
		{"    requireProvenance: true\n    maxDepth: 99\n", ":14:5: scopes[0].maxDepth: 99 is out of range: want 0 to 16"},
		{"    requireProvenance: true\n    maxRequests: 0\n", ":14:5: scopes[0].maxRequests: 0 is out of range"},
		{"    requireProvenance: yes please\n", ":13:5: scopes[0].requireProvenance: must be true or false"},
		{"    requireProvenance: true\n    maxDepth: three\n", ":14:5: scopes[0].maxDepth: must be an integer"},
		{"    level: skip\n    requireProvenance: true\n", ":14:5: scopes[0].requireProvenance: a skip scope verifies nothing"},
	} {
		text := fmt.Sprintf(`version: 1
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
    threshold: 1
%[2]s`, f.reg.Host, tt.scope)
		_, err := trustpolicy.Parse(f.dir+"/policy.yaml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v; want one containing %q", tt.scope, err, tt.want)
		}
	}
}

// FuzzRecordCheck feeds arbitrary statements through the check of a
// record whose signature holds (at maxDepth 0: no registry request): it
// never panics, and a record holds only when it parses, names the cache,
// and every import it lists was dropped, or used with verdict trusted under
// this very policy.
func FuzzRecordCheck(f *testing.F) {
	p, err := trustpolicy.Parse("policy.yaml", []byte("version: 1\nbuilders:\n  - name: ci\n    key: |\n"+fuzzPubPEM(f)+"scopes:\n  - repositories: [\"127.0.0.1:1/team/*\"]\n    builders: [ci]\n    requireProvenance: true\n"))
	if err != nil {
		f.Fatal(err)
	}
	repo, _ := name.NewRepository("127.0.0.1:1/team/app")
	d, _ := v1.NewHash("sha256:" + strings.Repeat("ab", 32))
	other, _ := v1.NewHash("sha256:" + strings.Repeat("cd", 32))
	sub, _ := provenance.NewSubject(repo.Name(), d.String())
	mk := func(caches ...provenance.Cache) []byte {
		data, _ := provenance.New([]provenance.Subject{sub}, provenance.Predicate{Policy: provenance.Policy{Digest: p.Fingerprint(nil)}, Caches: caches}).Marshal()
		return data
	}
	f.Add(mk())
	f.Add(mk(used(repo, other)))
	f.Add(mk(provenance.Cache{Reference: "type=registry,ref=x/y:z", Type: "registry", Action: provenance.ActionDropped}))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	f.Add([]byte("null"))
	v := New(p)
	f.Fuzz(func(t *testing.T, data []byte) {
		w := &walk{maxDepth: 0, limit: 1} // no request: imports are judged at the depth limit
		fr := &walkFrame{w: w, path: []string{repo.Name() + "@" + d.String()}}
		r := v.checkStatement(context.WithValue(context.Background(), walkKey{}, fr), fr, repo.Name(), d, data, RecordResult{Source: "fuzz"})
		if w.used.Load() != 0 {
			t.Fatalf("%d registry requests at maxDepth 0", w.used.Load())
		}
		if !r.OK {
			return
		}
		st, err := provenance.Parse(data)
		if err != nil {
			t.Fatalf("a record that does not parse holds: %v", err)
		}
		if !namesSubject(st.Subject, repo.Name(), d) {
			t.Fatalf("a record for another subject holds: %+v", st.Subject)
		}
		for _, c := range st.Predicate.Caches {
			if c.Action != provenance.ActionDropped && (c.Action != provenance.ActionUsed || c.Verdict != "trusted" || st.Predicate.Policy.Digest != p.Fingerprint(nil)) {
				t.Fatalf("import %+v passed below maxDepth without a trusted verdict under this policy", c)
			}
		}
	})
}

// fuzzPubPEM is a public key PEM, indented for an inline policy key.
func fuzzPubPEM(f *testing.F) string {
	pemBytes, err := keys.MarshalPublicKeyPEM(testreg.Key(f).Public())
	if err != nil {
		f.Fatal(err)
	}
	var b strings.Builder
	for _, l := range strings.SplitAfter(strings.TrimSpace(string(pemBytes)), "\n") {
		b.WriteString("      " + strings.TrimSuffix(l, "\n") + "\n")
	}
	return b.String()
}

// TestProvenanceShortcutKeyRotation: the "same policy" shortcut below
// maxDepth must see a key rotated by replacing its .pub file (the policy
// file's bytes unchanged). The chain: an attacker signs poison A
// (with a record) with builder a's stolen key; honest builder b builds B
// from A, then C from B; a's key is rotated by replacing a.pub. With
// maxDepth 1, C's import B is re-verified, and B's import A lies below
// maxDepth: accepted only if B's record was made under this very policy —
// which it was not, since a's key changed.
func TestProvenanceShortcutKeyRotation(t *testing.T) {
	reg := testreg.New(t)
	dir := t.TempDir()
	stolen, kb := newKey(t, dir, "a"), newKey(t, dir, "b")
	text := fmt.Sprintf(`version: 1
builders:
  - name: a
    key: a.pub
  - name: b
    key: b.pub
scopes:
  - repositories: ["%s/team/*"]
    builders: [a, b]
    requireProvenance: true
    maxDepth: 1
`, reg.Host)
	p := writePolicy(t, dir, text)
	ra, rb, rc := reg.Repo(t, "team/a"), reg.Repo(t, "team/b"), reg.Repo(t, "team/c")
	dA := testreg.PushRandom(t, ra.Tag("main"), 256, 1)
	dB := testreg.PushRandom(t, rb.Tag("main"), 256, 1)
	dC := testreg.PushRandom(t, rc.Tag("main"), 256, 1)
	sign(t, stolen, "a", ra, dA, now.Add(-3*time.Hour), nil)
	attachRecord(t, stolen, ra, dA, record(t, p, ra, dA))
	sign(t, kb, "b", rb, dB, now.Add(-2*time.Hour), nil)
	attachRecord(t, kb, rb, dB, record(t, p, rb, dB, used(ra, dA)))
	sign(t, kb, "b", rc, dC, now.Add(-time.Hour), nil)
	attachRecord(t, kb, rc, dC, record(t, p, rc, dC, used(rb, dB)))
	verifyC := func(p *trustpolicy.Policy) *Result {
		t.Helper()
		res, err := New(p, WithClock(func() time.Time { return now })).Verify(context.Background(), rc.Tag("main").String())
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		return res
	}
	// Before the rotation: C holds, A accepted below maxDepth by B's
	// record, made under this policy.
	wantVerdict(t, verifyC(p), VerdictTrusted, "record")

	newKey(t, dir, "a") // rotate: a.pub now holds a new key
	rotated, err := trustpolicy.Load(p.File)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Digest != p.Digest {
		t.Fatalf("the policy file's digest changed (%s → %s); the test wants a rotation that leaves the file as it is", p.Digest, rotated.Digest)
	}
	if rotated.Fingerprint(nil) == p.Fingerprint(nil) {
		t.Fatalf("Fingerprint(nil) unchanged by a key rotation")
	}
	wantVerdict(t, verifyC(rotated), VerdictUntrusted, "made under another policy")
}

// TestProvenanceShortcutOldRecord: a record written before the policy
// fingerprint stored the policy file's digest; below maxDepth it never
// counts as "made under this policy", even under the very same policy and
// keys (it cannot tell a key rotation).
func TestProvenanceShortcutOldRecord(t *testing.T) {
	f := newProvFixture(t, "    maxDepth: 0\n")
	st := record(t, f.p, f.app, f.dApp, used(f.base, f.dBase))
	st.Predicate.Policy.Digest = f.p.Digest
	attachRecord(t, f.ci, f.app, f.dApp, st)
	wantVerdict(t, f.verifyApp(t), VerdictUntrusted, "made under another policy")
}
