package decision

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

type allowDir struct{}

func (allowDir) AllowsUnsigned(typ string) bool { return typ == "local" }

const dig = "sha256:0123456789012345678901234567890123456789012345678901234567890123"

func res(v verify.Verdict, trusted bool, level trustpolicy.Level, on trustpolicy.OnUntrusted, digest string) *verify.Result {
	return &verify.Result{Reference: "reg.example/c:t", Repository: "reg.example/c", Digest: digest, Trusted: trusted, Verdict: v, Level: level, OnUntrusted: on, Reasons: []string{"why"}}
}

// Every row of the verdict → action table: a row changed or lost fails here.
func TestCacheTable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		typ    string
		ref    string
		res    *verify.Result
		err    error
		want   Action
		reason string
	}{
		{"allowed unsigned type", "local", "", nil, nil, Passed, "allows unsigned local"},
		{"unsigned type not allowed", "gha", "", nil, nil, Dropped, "type=gha caches cannot carry"},
		{"registry without ref", "registry", "", nil, nil, Dropped, "without ref"},
		{"verify error", "registry", "r", res(verify.VerdictInconclusive, false, trustpolicy.LevelStrict, trustpolicy.Fail, ""), errors.New("boom"), Dropped, "boom"},
		{"skip", "registry", "r", res(verify.VerdictSkipped, false, trustpolicy.LevelSkip, trustpolicy.Fail, ""), nil, Passed, "scope level skip"},
		{"trusted", "registry", "r", res(verify.VerdictTrusted, true, trustpolicy.LevelStrict, trustpolicy.Fail, dig), nil, Used, ""},
		{"audit with digest", "registry", "r", res(verify.VerdictUntrusted, false, trustpolicy.LevelAudit, trustpolicy.Drop, dig), nil, Used, "level audit: used although untrusted: why"},
		{"audit without digest", "registry", "r", res(verify.VerdictInconclusive, false, trustpolicy.LevelAudit, trustpolicy.Drop, ""), nil, Passed, "no digest resolved (why)"},
		{"strict fail", "registry", "r", res(verify.VerdictUntrusted, false, trustpolicy.LevelStrict, trustpolicy.Fail, dig), nil, Blocked, "untrusted: why"},
		{"strict drop", "registry", "r", res(verify.VerdictInconclusive, false, trustpolicy.LevelStrict, trustpolicy.Drop, dig), nil, Dropped, "inconclusive: why"},
		{"missing, on untrusted fail", "registry", "r", res(verify.VerdictMissing, false, trustpolicy.LevelStrict, trustpolicy.Fail, ""), nil, Dropped, "why"},
		{"missing, audit", "registry", "r", res(verify.VerdictMissing, false, trustpolicy.LevelAudit, trustpolicy.Drop, ""), nil, Dropped, "why"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			vf := func(context.Context, string) (*verify.Result, error) { called = true; return tc.res, tc.err }
			o := Cache(ctx, allowDir{}, vf, tc.typ, tc.ref)
			if o.Action != tc.want || !strings.Contains(o.Reason, tc.reason) || (tc.reason == "" && o.Reason != "") {
				t.Fatalf("Cache = %q %q, want %q containing %q", o.Action, o.Reason, tc.want, tc.reason)
			}
			if called != (tc.typ == "registry" && tc.ref != "") {
				t.Fatalf("verified = %v for type %q ref %q", called, tc.typ, tc.ref)
			}
			if o.Result != tc.res {
				t.Fatalf("Result not passed on")
			}
			if o.Action.Removes() != (tc.want == Dropped || tc.want == Blocked) {
				t.Fatalf("Removes wrong for %q", o.Action)
			}
		})
	}
}

func TestWorst(t *testing.T) {
	unt := res(verify.VerdictUntrusted, false, trustpolicy.LevelStrict, trustpolicy.Fail, dig)
	inc := res(verify.VerdictInconclusive, false, trustpolicy.LevelStrict, trustpolicy.Fail, "")
	ok := res(verify.VerdictTrusted, true, trustpolicy.LevelStrict, trustpolicy.Fail, dig)
	audit := res(verify.VerdictUntrusted, false, trustpolicy.LevelAudit, trustpolicy.Fail, dig)
	skip := res(verify.VerdictSkipped, false, trustpolicy.LevelSkip, trustpolicy.Fail, "")
	miss := res(verify.VerdictMissing, false, trustpolicy.LevelStrict, trustpolicy.Fail, "")
	for _, tc := range []struct {
		rs   []*verify.Result
		want Status
	}{
		{nil, OK},
		{[]*verify.Result{ok, audit, skip}, OK},
		{[]*verify.Result{ok, inc}, Inconclusive},
		{[]*verify.Result{inc, unt, inc}, Untrusted},
		{[]*verify.Result{unt, inc}, Untrusted},
		{[]*verify.Result{ok, miss}, Missing},
		{[]*verify.Result{miss, inc}, Inconclusive},
		{[]*verify.Result{miss, unt}, Untrusted},
	} {
		if got := Worst(tc.rs); got != tc.want {
			t.Errorf("Worst(%d results) = %d, want %d", len(tc.rs), got, tc.want)
		}
	}
	if StatusOf(nil) != Untrusted || StatusOf(inc) != Inconclusive || StatusOf(unt) != Untrusted || StatusOf(miss) != Missing {
		t.Fatal("StatusOf")
	}
}

// TestActionZeroDrops: an Action never set removes its import, and the
// words round-trip through JSON; a value outside the vocabulary has no
// word and removes.
func TestActionZeroDrops(t *testing.T) {
	var zero Action
	if zero != Dropped || !zero.Removes() {
		t.Fatalf("zero Action = %v (removes %v); want dropped", zero, zero.Removes())
	}
	for _, a := range []Action{Dropped, Blocked, Passed, Used} {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var back Action
		if err := json.Unmarshal(b, &back); err != nil || back != a {
			t.Errorf("%v → %s → %v (%v)", a, b, back, err)
		}
	}
	odd := Action(9)
	if !odd.Removes() {
		t.Error("an action outside the vocabulary does not remove its import")
	}
	if _, err := json.Marshal(odd); err == nil {
		t.Error("an action outside the vocabulary marshals")
	}
	var back Action
	if err := json.Unmarshal([]byte(`"kept"`), &back); err == nil {
		t.Error(`"kept" unmarshals as an action`)
	}
}
