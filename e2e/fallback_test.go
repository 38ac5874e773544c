//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// noFallback is the scope line that turns the fallback off (issue 23,
// docs/fallback.md), for the tests that show a forged cache dropped under
// a tag a trusted builder signed before (TestBuildHeadline, TestBake):
// with the fallback on, the tag's last trusted cache is used instead
// (TestFallbackBuild).
const noFallback = "    fallback: none"

// fallbackReport is the part of --trust-report TestFallbackBuild reads.
type fallbackReport struct {
	Caches []struct {
		Action string `json:"action"`
		Pinned string `json:"pinned"`
		Reason string `json:"reason"`
		Result *struct {
			Digest     string `json:"digest"`
			FromLedger bool   `json:"fromLedger"`
			Fallback   *struct {
				TagDigest string `json:"tagDigest"`
				TagStatus string `json:"tagStatus"`
				Source    string `json:"source"`
				Digest    string `json:"digest"`
			} `json:"fallback"`
		} `json:"result"`
	} `json:"caches"`
	Signed []struct {
		Reference string `json:"reference"`
	} `json:"signed"`
}

// TestFallbackBuild is issue 23's scenario on the real stack: a trusted
// builder signs two successive caches of :main with build --sign; an
// attacker then (a) pushes a forged cache under :main, (b) deletes :main,
// (c) re-points :main to the older trusted cache (and then rolls the head
// record back too), (d) attaches 300 junk signatures to the newest. A
// fresh agent (pruned builder, no ledger) building with --cache-from :main
// gets CACHED steps and the newest trusted cache's output in (a)–(c), a
// trusted cache in (d), never the attacker's; a host that used the newer
// cache never goes back to the older one.
func TestFallbackBuild(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	// The project's steps are this run's own (a first step naming the
	// repository): other tests build the common project on the same
	// shared builder at the same time, and BuildKit would let this test's
	// pruned builds reuse their records, or keep this test's records in
	// use by theirs past a prune.
	ctx := e.project(t)
	df := strings.ReplaceAll(dockerfile, "%BASE%", cfg.baseImage)
	df = strings.Replace(df, "RUN echo trustcache-e2e > /step1.txt", "RUN echo "+repo+" > /step1.txt", 1)
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := repo + ":main"
	headTag := repo + ":trustcache-head-main"
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})

	// Builder A: a pruned builder, build, export the cache, sign it.
	produce := func(t *testing.T, name string) (pinned, output string) {
		t.Helper()
		e.prune(t)
		out := filepath.Join(e.dir, "out-"+name)
		report := filepath.Join(e.dir, name+"-report.json")
		args := append([]string{"build"}, remoteBuildArgs()...)
		args = append(args, "--trust-policy", policy, "--trust-report", report, "--no-ledger", "--sign", "--key", "builder-a.key",
			"--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+out, ctx)
		e.trustcache(t, args...).must(t)
		rep := readFallbackReport(t, report)
		if len(rep.Signed) != 1 {
			t.Fatalf("builder A signed %+v; want its cache", rep.Signed)
		}
		return rep.Signed[0].Reference, readResult(t, out)
	}
	d1, honest1 := produce(t, "a1")
	head1 := strings.TrimSpace(e.crane(t, "digest", headTag).must(t).stdout)
	d2, honest2 := produce(t, "a2")
	head2 := strings.TrimSpace(e.crane(t, "digest", headTag).must(t).stdout)
	if honest1 == honest2 || d1 == d2 || head1 == head2 {
		t.Fatalf("two builds of builder A: outputs %q %q, caches %s %s, heads %s %s; want all different", honest1, honest2, d1, d2, head1, head2)
	}

	// consume builds on a pruned builder with --cache-from :main; fresh is
	// a host without a ledger, otherwise this host (its ledger).
	n := 0
	consume := func(t *testing.T, fresh bool) (result, fallbackReport, string, time.Duration) {
		t.Helper()
		n++
		e.prune(t)
		out := filepath.Join(e.dir, fmt.Sprintf("out-consumer-%d", n))
		report := out + "-report.json"
		args := append([]string{"build"}, remoteBuildArgs()...)
		args = append(args, "--trust-policy", policy, "--trust-report", report)
		if fresh {
			args = append(args, "--no-ledger")
		}
		args = append(args, "--cache-from", cache, "-o", "type=local,dest="+out, ctx)
		start := time.Now()
		r := e.trustcache(t, args...).must(t)
		took := time.Since(start)
		return r, readFallbackReport(t, report), readResult(t, out), took
	}
	// want checks that a consumer used the cache pinned, got its output with
	// its steps CACHED, through the fallback with status (or none: "").
	want := func(t *testing.T, label string, r result, rep fallbackReport, got, output, pinned, status string) {
		t.Helper()
		if got != output {
			t.Errorf("%s: built %q; want %q from %s; trust report %+v", label, got, output, pinned, rep.Caches)
			if len(rep.Caches) == 1 && rep.Caches[0].Result != nil {
				t.Logf("%s: result digest %s fallback %+v", label, rep.Caches[0].Result.Digest, rep.Caches[0].Result.Fallback)
			}
		}
		if len(rep.Caches) != 1 || rep.Caches[0].Action != "used" || rep.Caches[0].Pinned != pinned || rep.Caches[0].Result == nil {
			t.Fatalf("%s: trust report %+v; want the cache used, pinned to %s", label, rep.Caches, pinned)
		}
		fb := rep.Caches[0].Result.Fallback
		switch {
		case status == "" && fb != nil:
			t.Errorf("%s: fallback %+v; want none", label, fb)
		case status != "" && (fb == nil || fb.TagStatus != status):
			t.Errorf("%s: fallback %+v; want tag status %s", label, fb, status)
		case status != "" && !strings.Contains(r.stderr, "fallback: tag main is "+status):
			t.Errorf("%s: the build's summary does not name the fallback:\n%s", label, r.stderr)
		}
		if cached, total := cachedSteps(r.stderr); total == 0 || cached < total-1 {
			t.Errorf("%s: %d of %d RUN steps CACHED; want all (BuildKit may realize the last from its cached layers)", label, cached, total)
		}
	}

	// Unattacked: a fresh agent and this host (whose ledger then holds
	// d2 for :main) use d2.
	r, rep, got, base := consume(t, true)
	want(t, "unattacked, fresh", r, rep, got, honest2, d2, "")
	r, rep, got, _ = consume(t, false)
	want(t, "unattacked, this host", r, rep, got, honest2, d2, "")
	t.Logf("unattacked fresh agent: %s", base.Round(time.Millisecond))

	// (a) A forged cache under :main: the attacker's own unsigned build.
	e.prune(t)
	outX := filepath.Join(e.dir, "out-attacker")
	args := append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+outX, ctx)
	e.docker(t, args...).must(t)
	poison := readResult(t, outX)
	r, rep, got, took := consume(t, true)
	if got == poison {
		t.Fatalf("(a) forged: the fresh agent built the attacker's output %q; trust report %+v", poison, rep.Caches)
	}
	want(t, "(a) forged, fresh", r, rep, got, honest2, d2, "untrusted")
	t.Logf("(a) forged tag, fresh agent: %s (%.2f× unattacked)", took.Round(time.Millisecond), took.Seconds()/base.Seconds())

	// (b) :main deleted.
	if r := e.crane(t, "delete", cache); r.code != 0 {
		t.Fatalf("deleting the tag %s: %s", cache, r.stderr)
	}
	r, rep, got, took = consume(t, true)
	want(t, "(b) deleted, fresh", r, rep, got, honest2, d2, "missing")
	t.Logf("(b) deleted tag, fresh agent: %s (%.2f× unattacked)", took.Round(time.Millisecond), took.Seconds()/base.Seconds())

	// (c) :main re-pointed to the older trusted cache: the signed head
	// says there is a newer one.
	e.crane(t, "tag", d1, "main").must(t)
	r, rep, got, took = consume(t, true)
	want(t, "(c) rolled back, fresh", r, rep, got, honest2, d2, "rolledBack")
	t.Logf("(c) rolled-back tag, fresh agent: %s (%.2f× unattacked)", took.Round(time.Millisecond), took.Seconds()/base.Seconds())
	// The head record rolled back too: this host, which used d2, keeps it.
	e.crane(t, "tag", repo+"@"+head1, "trustcache-head-main").must(t)
	r, rep, got, _ = consume(t, false)
	want(t, "(c) tag and head rolled back, this host", r, rep, got, honest2, d2, "rolledBack")
	// A fresh agent has nothing newer to go by (docs/fallback.md: what
	// remains): it uses d1, which the policy trusts.
	_, rep, got, _ = consume(t, true)
	t.Logf("(c) tag and head rolled back, fresh agent: %s, built the output of %s", rep.Caches[0].Pinned, map[bool]string{true: "d1", false: "?"}[got == honest1])
	e.crane(t, "tag", repo+"@"+head2, "trustcache-head-main").must(t)

	// (d) 300 junk signatures on the newest cache, :main back on it.
	e.crane(t, "tag", d2, "main").must(t)
	addJunkSignatures(t, d2, 300)
	r, rep, got, took = consume(t, true)
	if got == poison {
		t.Fatalf("(d) junk: the fresh agent built the attacker's output")
	}
	want(t, "(d) junk signatures, fresh", r, rep, got, honest1, d1, "untrusted")
	t.Logf("(d) junk signatures, fresh agent: %s (%.2f× unattacked)", took.Round(time.Millisecond), took.Seconds()/base.Seconds())
	// This host verified d2 before the junk: its ledger keeps it.
	r, rep, got, _ = consume(t, false)
	want(t, "(d) junk signatures, this host", r, rep, got, honest2, d2, "")
}

func readFallbackReport(t *testing.T, path string) fallbackReport {
	t.Helper()
	var r fallbackReport
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("trust report: %v", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("trust report %s: %v", b, err)
	}
	return r
}

// addJunkSignatures appends n junk layers to the cosign signature list of
// pinned (REPO@sha256:…), as an attacker with push rights can.
func addJunkSignatures(t *testing.T, pinned string, n int) {
	t.Helper()
	d, err := name.NewDigest(pinned)
	if err != nil {
		t.Fatal(err)
	}
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
	desc, err := remote.Get(tag)
	if err != nil {
		t.Fatalf("reading %s: %v", tag, err)
	}
	m, err := v1.ParseManifest(strings.NewReader(string(desc.Manifest)))
	if err != nil {
		t.Fatal(err)
	}
	const mt = "application/vnd.dev.cosign.simplesigning.v1+json"
	junk := static.NewLayer([]byte(`{"junk":true}`), mt)
	jd, _ := junk.Digest()
	if err := remote.WriteLayer(d.Context(), junk); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Size: 13, Digest: jd,
			Annotations: map[string]string{"dev.cosignproject.cosign/signature": fmt.Sprintf("MEUCIQ%04d", i)}})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(tag, rawManifest{raw, m.MediaType}); err != nil {
		t.Fatalf("writing %s: %v", tag, err)
	}
}

// rawManifest is a manifest written as given.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// TestFallbackBake: the same through docker trustcache bake. Builder A
// bakes three targets and signs their caches (bake --sign: the tag
// annotation and each tag's head); the attacker pushes a forged cache
// under target c's tag; a fresh agent's bake imports A's three caches —
// c's through the fallback — and builds A's outputs, never the attacker's.
func TestFallbackBake(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	bakeFile := e.bakeProject(t, repo)
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	results := func(t *testing.T, out string) map[string]string {
		t.Helper()
		m := map[string]string{}
		for _, tg := range bakeTargets {
			m[tg] = readResult(t, filepath.Join(out, tg))
		}
		return m
	}

	e.prune(t)
	outA := filepath.Join(e.dir, "out-a")
	args := append([]string{"bake"}, remoteBakeArgs()...)
	args = append(args, "--trust-policy", policy, "--no-ledger", "--sign", "--key", "builder-a.key", "-f", bakeFile, "--var", "OUT="+outA)
	for _, tg := range bakeTargets {
		args = append(args, "--set", tg+".cache-to=type=registry,ref="+repo+":"+tg+",mode=max")
	}
	e.trustcache(t, args...).must(t)
	honest := results(t, outA)
	e.crane(t, "digest", repo+":trustcache-head-c").must(t) // bake --sign wrote c's head

	// The attacker's cache under c's tag.
	e.prune(t)
	outX := filepath.Join(e.dir, "out-attacker")
	args = append([]string{"buildx", "bake"}, remoteBakeArgs()...)
	args = append(args, "-f", bakeFile, "--var", "OUT="+outX, "--set", "c.cache-from=",
		"--set", "c.cache-to=type=registry,ref="+repo+":c,mode=max", "c")
	e.docker(t, args...).must(t)
	poison := readResult(t, filepath.Join(outX, "c"))

	e.prune(t)
	outC := filepath.Join(e.dir, "out-consumer")
	report := filepath.Join(e.dir, "consumer-report.json")
	args = append([]string{"bake"}, remoteBakeArgs()...)
	args = append(args, "--no-ledger", "--trust-policy", policy, "--trust-report", report, "-f", bakeFile, "--var", "OUT="+outC)
	r := e.trustcache(t, args...).must(t)
	got := results(t, outC)
	if got["c"] == poison {
		t.Fatalf("target c built the attacker's output %q", poison)
	}
	for _, tg := range bakeTargets {
		if got[tg] != honest[tg] {
			t.Errorf("target %s built %q; want builder A's %q from its cache", tg, got[tg], honest[tg])
		}
	}
	rep := readFallbackReport(t, report)
	fallbacks := 0
	for _, c := range rep.Caches {
		if c.Action != "used" {
			t.Errorf("cache %+v; want used", c)
		}
		if c.Result != nil && c.Result.Fallback != nil {
			fallbacks++
		}
	}
	if fallbacks != 1 || !strings.Contains(r.stderr, "fallback: tag c is untrusted") {
		t.Errorf("%d caches through the fallback (want 1, target c); summary:\n%s", fallbacks, r.stderr)
	}
}

// TestFallbackGateway: the same through the gateway with plain docker
// buildx build. Builder A signs :main; the attacker pushes a forged cache
// under :main; a build through the gateway imports A's cache (the
// gateway decides through the same Verify), never the attacker's.
func TestFallbackGateway(t *testing.T) {
	e := trustEnv(t)
	ctx := e.serveProject(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	cache := repo + ":main"
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{filepath.Join(e.dir, "builder-a.pub")}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})

	e.prune(t)
	report := filepath.Join(e.dir, "report-a.json")
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--trust-report", report, "--no-ledger", "--sign", "--key", "builder-a.key",
		"--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-a"), ctx)
	e.trustcache(t, args...).must(t)
	honest := readResult(t, filepath.Join(e.dir, "out-a"))
	rep := readFallbackReport(t, report)
	if len(rep.Signed) != 1 {
		t.Fatalf("builder A signed %+v; want its cache", rep.Signed)
	}
	signedDigest := strings.SplitN(rep.Signed[0].Reference, "@", 2)[1]

	e.prune(t)
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-x"), ctx)
	e.docker(t, args...).must(t)
	poison := readResult(t, filepath.Join(e.dir, "out-x"))

	gw := e.startGateway(t, policy)
	gwBuilder := "gw-" + randomHex(t, 4)
	e.docker(t, "buildx", "create", "--name", gwBuilder, "--driver", "remote", "unix://"+gw.sock).must(t)
	e.prune(t)
	r := e.docker(t, "buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false",
		"--cache-from", cache, "-o", "type=local,dest="+filepath.Join(e.dir, "out-gw"), ctx).must(t)
	got := readResult(t, filepath.Join(e.dir, "out-gw"))
	if got == poison {
		t.Fatalf("the build through the gateway built the attacker's output %q", poison)
	}
	if got != honest {
		t.Errorf("the build through the gateway built %q; want builder A's %q\n%s", got, honest, r.stderr)
	}
	lines := gw.decisionLines(cache)
	if len(lines) == 0 || !strings.Contains(lines[0], `"action":"used"`) || !strings.Contains(lines[0], signedDigest) || !strings.Contains(lines[0], `"fallback":"untrusted"`) {
		t.Errorf("decision lines for %s: %q; want used, builder A's digest %s, fallback untrusted", cache, lines, signedDigest)
	}
}
