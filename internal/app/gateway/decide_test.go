package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// countingVerifier counts the verifications of each reference.
type countingVerifier struct {
	fakeVerifier
	mu sync.Mutex
	n  map[string]int
}

func (v *countingVerifier) Verify(ctx context.Context, ref string) (*verify.Result, error) {
	v.mu.Lock()
	v.n[ref]++
	v.mu.Unlock()
	return v.fakeVerifier.Verify(ctx, ref)
}

func (v *countingVerifier) count(ref string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n[ref]
}

func TestDecideReusesVerdicts(t *testing.T) {
	base := testVerifier(t)
	base.results["reg.example/team/cache:flaky"] = &verify.Result{
		Reference: "reg.example/team/cache:flaky", Verdict: verify.VerdictInconclusive, Level: trustpolicy.LevelStrict, OnUntrusted: trustpolicy.Drop,
	}
	// A tag not pushed yet: the build that pushes it may end a moment
	// later, and the next build must see it.
	base.results["reg.example/team/cache:new"] = &verify.Result{
		Reference: "reg.example/team/cache:new", Verdict: verify.VerdictMissing, Missing: true, Level: trustpolicy.LevelStrict, OnUntrusted: trustpolicy.Drop,
	}
	v := &countingVerifier{fakeVerifier: base, n: map[string]int{}}
	d := NewDecider(v, fakeEndpoint{}, slog.New(slog.DiscardHandler))
	imp := func(ref string) Import {
		return Import{Type: "registry", Attrs: map[string]string{"ref": ref}, Where: "test"}
	}
	signed, flaky, missing := "reg.example/team/cache:signed", "reg.example/team/cache:flaky", "reg.example/team/cache:new"
	for range 3 {
		ds, err := d.Decide(t.Context(), "test", "/m", []Import{imp(signed), imp(signed), imp(flaky), imp(missing)}, fakeEndpoint{})
		if err != nil {
			t.Fatal(err)
		}
		if ds[0].Action != decision.Used || ds[1].Action != decision.Used || ds[2].Action != decision.Dropped || ds[3].Action != decision.Dropped {
			t.Fatalf("Decide = %+v; want used, used, dropped, dropped", ds)
		}
	}
	if n := v.count(missing); n != 3 {
		t.Errorf("%s (missing) verified %d times; want every time: a missing verdict is not reused", missing, n)
	}
	if n := v.count(signed); n != 1 {
		t.Errorf("%s verified %d times; want once, the verdict reused", signed, n)
	}
	if n := v.count(flaky); n != 3 {
		t.Errorf("%s (inconclusive) verified %d times; want every time", flaky, n)
	}
	// A new policy: verified afresh.
	d.SetVerifier(v)
	if _, err := d.Decide(t.Context(), "test", "/m", []Import{imp(signed)}, fakeEndpoint{}); err != nil {
		t.Fatal(err)
	}
	if n := v.count(signed); n != 2 {
		t.Errorf("after SetVerifier, %s verified %d times in all; want 2", signed, n)
	}
}

// The decisions are those of docker trustcache build's decideCache.
func TestDecideMapping(t *testing.T) {
	base := testVerifier(t)
	base.results["reg.example/audit:1"] = &verify.Result{Reference: "reg.example/audit:1", Repository: "reg.example/audit", Digest: digestA, Verdict: verify.VerdictUntrusted, Level: trustpolicy.LevelAudit}
	base.results["reg.example/audit:nodigest"] = &verify.Result{Reference: "reg.example/audit:nodigest", Verdict: verify.VerdictInconclusive, Level: trustpolicy.LevelAudit}
	base.results["reg.example/skip:1"] = &verify.Result{Reference: "reg.example/skip:1", Verdict: verify.VerdictSkipped, Level: trustpolicy.LevelSkip}
	d := NewDecider(base, fakeEndpoint{}, slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		imp  Import
		want decision.Action
	}{
		{Import{Type: "registry", Attrs: map[string]string{"ref": "reg.example/team/cache:signed"}}, decision.Used},
		{Import{Type: "registry", Attrs: map[string]string{"ref": "reg.example/team/cache:unsigned"}}, decision.Dropped},
		{Import{Type: "registry", Attrs: map[string]string{}}, decision.Dropped},
		{Import{Type: "registry", Attrs: map[string]string{"ref": "reg.example/audit:1"}}, decision.Used},
		{Import{Type: "registry", Attrs: map[string]string{"ref": "reg.example/audit:nodigest"}}, decision.Passed},
		{Import{Type: "registry", Attrs: map[string]string{"ref": "reg.example/skip:1"}}, decision.Passed},
		{Import{Type: "local", Attrs: map[string]string{"src": "/x"}}, decision.Passed}, // allowUnsignedTypes: [local]
		{Import{Type: "gha", Attrs: map[string]string{}}, decision.Dropped},
		{Import{Type: "", Attrs: map[string]string{"ref": "reg.example/team/cache:signed"}}, decision.Dropped},
	} {
		ds, err := d.Decide(t.Context(), "test", "/m", []Import{tc.imp}, fakeEndpoint{})
		if err != nil {
			t.Fatalf("Decide(%+v): %v", tc.imp, err)
		}
		if ds[0].Action != tc.want {
			t.Errorf("Decide(%+v) = %+v; want action %d", tc.imp, ds[0], tc.want)
		}
	}
}

// TestLogDecisionFallback: a verdict reached through the fallback says so
// in the decision log — why the tag's own digest was not used and what the
// tag pointed at — beside the digest used.
func TestLogDecisionFallback(t *testing.T) {
	const digestOther = "sha256:" + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	var buf bytes.Buffer
	d := NewDecider(nil, fakeEndpoint{}, slog.New(slog.NewJSONHandler(&buf, nil)))
	res := &verify.Result{Reference: "reg.example/team/cache:main", Digest: digestA, Verdict: verify.VerdictTrusted, Trusted: true,
		Fallback: &verify.Fallback{Tag: "main", TagDigest: digestOther, TagStatus: verify.TagUntrusted, Digest: digestA, Source: verify.FromHead}}
	imp := Import{Type: "registry", Attrs: map[string]string{"ref": "reg.example/team/cache:main"}, Where: "cache-imports"}
	d.logDecision(t.Context(), "uid=1000", "Control/Solve", imp, outcome{Decision: Decision{Action: decision.Used, Ref: "ep/1@" + digestA}, res: res})
	want := `"digest":"` + digestA + `","verdict":"trusted","action":"used","signers":[],"fallback":"untrusted","tagDigest":"` + digestOther + `"`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("decision log:\n%s\nlacks %s", buf.String(), want)
	}
}
