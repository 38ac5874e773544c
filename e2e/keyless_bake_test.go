//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestKeylessBake: docker trustcache bake --sign --keyless, end to end against the real BuildKit,
// Fulcio and TSA. Each target's exported cache gets a keyless signature (the main-branch run's
// identity) that docker trustcache verify trusts under the main-branch identity policy, refuses
// under the pull-request one, and cosign v3 verifies; each carries the provenance record. A
// second bake of the same targets (a rebuild: the same cache digests, their records already
// there) signs and records again without error.
func TestKeylessBake(t *testing.T) {
	k := keyless(t)
	gh := oidcIssuer(t, k.githubIssuer)
	main := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/heads/main", event: "push"}
	pr := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/pull/7/merge", event: "pull_request"}
	e := trustEnv(t)
	mainPolicy := e.keylessPolicy(t, k, "main.yaml", main)
	prPolicy := e.keylessPolicy(t, k, "pr.yaml", pr)
	repo := uniqueRepo(t)
	bakeFile := e.bakeProject(t, repo)

	bake := func(t *testing.T, tag string) (signed, attested []string) {
		t.Helper()
		out := filepath.Join(e.dir, "out-"+tag)
		report := filepath.Join(e.dir, "report-"+tag+".json")
		args := append([]string{"trustcache", "bake"}, remoteBakeArgs()...)
		args = append(args, "--trust-policy", mainPolicy, "--trust-report", report, "--no-ledger", "--sign", "--keyless",
			"--signing-config", k.signingConfig, "--identity-token", e.tokenFile(t, tag+".jwt", gh.token(t, main.claims())),
			"-f", bakeFile, "--var", "OUT="+out)
		for _, tg := range bakeTargets {
			args = append(args, "--set", tg+".cache-to=type=registry,ref="+repo+":"+tg+",mode=max")
		}
		e.runWith(t, deadProxy, nil, cfg.docker, args...).must(t)
		b, err := os.ReadFile(report)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Signed   []struct{ Reference, Kind string } `json:"signed"`
			Attested []struct{ Reference, Kind string } `json:"attested"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("trust report %s: %v", b, err)
		}
		for _, s := range rep.Signed {
			if s.Kind != "cache" || !strings.HasPrefix(s.Reference, repo+"@sha256:") {
				t.Errorf("%s signed %+v; want only cache manifests in %s", tag, s, repo)
			}
			signed = append(signed, s.Reference)
		}
		for _, a := range rep.Attested {
			attested = append(attested, a.Reference)
		}
		slices.Sort(signed)
		slices.Sort(attested)
		return slices.Compact(signed), attested
	}

	e.prune(t)
	signed, attested := bake(t, "first")
	if len(signed) != len(bakeTargets) {
		t.Fatalf("bake signed %v; want the %d targets' caches", signed, len(bakeTargets))
	}
	if !slices.Equal(signed, attested) {
		t.Errorf("provenance record attested to %v; want the signed caches %v", attested, signed)
	}
	for _, ref := range signed {
		r := e.trustcache(t, "verify", "--policy", mainPolicy, "--no-ledger", "--format", "json", ref).must(t)
		if v := parseVerify(t, r.stdout); len(v) != 1 || !v[0].Trusted || len(v[0].Signers) != 1 || v[0].Signers[0].Builder != "gha-main" {
			t.Errorf("verify %s under the main identity: %+v; want trusted by gha-main", ref, v)
		}
		r = e.trustcache(t, "verify", "--policy", prPolicy, "--no-ledger", "--format", "json", ref).wantCode(t, 3)
		if v := parseVerify(t, r.stdout); len(v) != 1 || v[0].Trusted {
			t.Errorf("verify %s under the pull-request identity: %+v; want untrusted", ref, v)
		}
	}
	e.cosign3(t, cosignKeylessVerifyArgs(k, main.identity(), gh.url, signed[0])...).must(t)

	// The rebuild: every step cached, the same cache digests, their signatures and records there.
	again, _ := bake(t, "again")
	if !slices.Equal(again, signed) {
		t.Errorf("the rebuild signed %v; want the same caches %v", again, signed)
	}
	for _, ref := range again {
		r := e.trustcache(t, "verify", "--policy", mainPolicy, "--no-ledger", "--format", "json", ref).must(t)
		if v := parseVerify(t, r.stdout); len(v) != 1 || !v[0].Trusted {
			t.Errorf("verify %s after the rebuild: %+v; want trusted", ref, v)
		}
	}
}
