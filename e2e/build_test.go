//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dockerfile has an expensive RUN whose output is unique per real run: a
// consumer whose /result.txt equals the builder's imported the builder's
// cache; a different one means the step ran again (or someone else's cache
// was used).
const dockerfile = `FROM %BASE%
RUN echo trustcache-e2e > /step1.txt
RUN sleep 2 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /expensive.txt
RUN cp /expensive.txt /result.txt
`

// project is a build context with the Dockerfile, in its own directory.
func (e *env) project(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(e.dir, "project")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(dockerfile, "%BASE%", cfg.baseImage)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// remoteBuildArgs are the flags every build on the remote builder uses.
func remoteBuildArgs() []string {
	return []string{"--builder", cfg.builder, "--network", cfg.network, "--provenance=false"}
}

// prune empties the remote builder's cache: a fresh BuildKit state.
func (e *env) prune(t *testing.T) {
	t.Helper()
	e.docker(t, "buildx", "prune", "--builder", cfg.builder, "--all", "--force").must(t)
}

// result reads /result.txt of a build exported to dir.
func readResult(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "result.txt"))
	if err != nil {
		t.Fatalf("build output: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// cachedSteps counts the Dockerfile RUN steps BuildKit's plain progress
// reports as CACHED, and the total.
func cachedSteps(stderr string) (cached, total int) {
	seen := map[string]bool{}
	for _, line := range strings.Split(stderr, "\n") {
		// "#7 [3/4] RUN sleep 2 && …" then "#7 CACHED"
		f := strings.Fields(line)
		if len(f) >= 3 && strings.HasPrefix(f[1], "[") && f[2] == "RUN" && !seen[f[0]] {
			seen[f[0]] = true
			total++
			if strings.Contains(stderr, f[0]+" CACHED\n") {
				cached++
			}
		}
	}
	return cached, total
}

// trustReport is the part of --trust-report the tests read.
type trustReport struct {
	Caches []struct {
		Source    string   `json:"source"`
		Action    string   `json:"action"`
		Pinned    string   `json:"pinned"`
		Guarantee string   `json:"guarantee"`
		Refused   []string `json:"refused"`
		Reason    string   `json:"reason"`
		Result    *struct {
			FromLedger bool `json:"fromLedger"`
		} `json:"result"`
	} `json:"caches"`
	Signed []struct {
		Reference string `json:"reference"`
		Kind      string `json:"kind"`
	} `json:"signed"`
	Built bool `json:"built"`
}

func readReport(t *testing.T, path string) trustReport {
	t.Helper()
	var r trustReport
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("trust report: %v", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("trust report %s: %v", b, err)
	}
	return r
}

// TestBuildHeadline is the seed's scenario: a shared registry cache that a
// trusted builder signs, that a fresh builder reuses, and that an attacker
// who can push the tag cannot poison.
func TestBuildHeadline(t *testing.T) {
	e := trustEnv(t)
	ctx := e.project(t)
	e.genKey(t, "builder-a")
	e.genKey(t, "attacker")
	repo := uniqueRepo(t)
	cache := repo + ":cache"
	drop := e.writePolicy(t, "drop.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}, extra: noFallback}})
	fail := e.writePolicy(t, "fail.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}, extra: "    onUntrusted: fail\n" + noFallback}})

	// consumeWith builds on a pruned builder with --cache-from the tag and
	// extra flags; consume does so as a fresh host would: without this
	// host's ledger, which holds what builder A signed here.
	consumeWith := func(t *testing.T, policy, out string, extra ...string) (result, trustReport) {
		t.Helper()
		e.prune(t)
		report := filepath.Join(e.dir, filepath.Base(out)+"-report.json")
		args := append([]string{"build"}, remoteBuildArgs()...)
		args = append(args, extra...)
		args = append(args, "--trust-policy", policy, "--trust-report", report, "--cache-from", cache,
			"-o", "type=local,dest="+out, ctx)
		r := e.trustcache(t, args...)
		return r, readReport(t, report)
	}
	consume := func(t *testing.T, policy, out string) (result, trustReport) {
		t.Helper()
		return consumeWith(t, policy, out, "--no-ledger")
	}

	// Builder A builds, exports its cache and signs it.
	e.prune(t)
	outA := filepath.Join(e.dir, "out-a")
	reportA := filepath.Join(e.dir, "report-a.json")
	start := time.Now()
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", drop, "--trust-report", reportA, "--sign", "--key", "builder-a.key",
		"--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+outA, ctx)
	e.trustcache(t, args...).must(t)
	t.Logf("builder A: full build + cache export + sign in %s", time.Since(start).Round(time.Millisecond))
	honest := readResult(t, outA)
	rep := readReport(t, reportA)
	if len(rep.Signed) != 1 || rep.Signed[0].Kind != "cache" || !strings.HasPrefix(rep.Signed[0].Reference, repo+"@sha256:") {
		t.Fatalf("builder A signed %+v; want the cache manifest in %s", rep.Signed, repo)
	}
	signedCache := rep.Signed[0].Reference
	// The real cosign CLI accepts the build's signature of the exported digest.
	e.cosign(t, cosignVerifyArgs("builder-a.pub", signedCache)...).must(t)

	// A fresh builder reuses A's cache: every step CACHED, A's output.
	start = time.Now()
	r, rep := consume(t, drop, filepath.Join(e.dir, "out-consumer-1"))
	r = r.must(t)
	t.Logf("consumer with verified cache: %s", time.Since(start).Round(time.Millisecond))
	if got := readResult(t, filepath.Join(e.dir, "out-consumer-1")); got != honest {
		t.Errorf("consumer built %q; want builder A's %q from the verified cache", got, honest)
	}
	if len(rep.Caches) != 1 || rep.Caches[0].Action != "used" || rep.Caches[0].Pinned != signedCache {
		t.Errorf("trust report %+v; want the cache used, pinned to %s", rep.Caches, signedCache)
	}
	if rep.Caches[0].Result == nil || rep.Caches[0].Result.FromLedger {
		t.Errorf("the fresh builder's verification came from a ledger: %+v", rep.Caches[0])
	}
	if !strings.Contains(r.stderr, signedCache) {
		t.Errorf("the build did not import the pinned digest %s:\n%s", signedCache, r.stderr)
	}
	cached, total := cachedSteps(r.stderr)
	t.Logf("consumer: %d of %d RUN steps CACHED", cached, total)
	if total == 0 || cached < total-1 {
		t.Errorf("consumer: %d of %d RUN steps CACHED; want all (BuildKit may realize the last from its cached layers)", cached, total)
	}

	// Builder A's own host: the ledger recorded the digest it signed, so
	// its next build verifies the cache without fetching the signature.
	r, rep = consumeWith(t, drop, filepath.Join(e.dir, "out-a-again"))
	r.must(t)
	if len(rep.Caches) != 1 || rep.Caches[0].Pinned != signedCache || rep.Caches[0].Result == nil || !rep.Caches[0].Result.FromLedger {
		t.Errorf("builder A's next build: trust report %+v; want the cache used from the ledger, pinned to %s", rep.Caches, signedCache)
	}

	// The attacker builds on its own state and pushes its cache to the same
	// tag, signed with a key the policy does not allow.
	e.prune(t)
	outX := filepath.Join(e.dir, "out-attacker")
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+outX, ctx)
	e.docker(t, args...).must(t)
	poison := readResult(t, outX)
	e.trustcache(t, "sign", "--key", "attacker.key", cache).must(t)

	start = time.Now()
	r, rep = consume(t, drop, filepath.Join(e.dir, "out-consumer-2"))
	r = r.must(t)
	t.Logf("consumer with poisoned cache dropped (no cache): %s", time.Since(start).Round(time.Millisecond))
	got := readResult(t, filepath.Join(e.dir, "out-consumer-2"))
	if got == poison {
		t.Fatalf("consumer built the attacker's output %q", poison)
	}
	if got == honest {
		t.Errorf("consumer built builder A's output without a trusted cache")
	}
	if len(rep.Caches) != 1 || rep.Caches[0].Action != "dropped" || !strings.Contains(rep.Caches[0].Reason, "not signed by any key in the policy") {
		t.Errorf("trust report %+v; want the cache dropped as signed by an unknown key", rep.Caches)
	}
	if !strings.Contains(r.stderr, "WARNING: trustcache: dropped cache") {
		t.Errorf("no warning for the dropped cache:\n%s", r.stderr)
	}

	// With onUntrusted: fail, nothing is built.
	outFail := filepath.Join(e.dir, "out-consumer-fail")
	r, rep = consume(t, fail, outFail)
	r.wantCode(t, 3)
	if _, err := os.Stat(outFail); err == nil {
		t.Errorf("onUntrusted: fail built anyway")
	}
	if rep.Built || len(rep.Caches) != 1 || rep.Caches[0].Action != "blocked" {
		t.Errorf("trust report %+v; want blocked, not built", rep)
	}

	// Unsigned poison: dropped likewise.
	e.prune(t)
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+outX+"-2", ctx)
	e.docker(t, args...).must(t)
	poison2 := readResult(t, outX+"-2")
	r, rep = consume(t, drop, filepath.Join(e.dir, "out-consumer-3"))
	r.must(t)
	if got := readResult(t, filepath.Join(e.dir, "out-consumer-3")); got == poison2 {
		t.Fatalf("consumer built the unsigned attacker output %q", poison2)
	}
	if len(rep.Caches) != 1 || rep.Caches[0].Action != "dropped" || !strings.Contains(rep.Caches[0].Reason, "no signatures found") {
		t.Errorf("trust report %+v; want dropped: no signatures", rep.Caches)
	}

	// The tag is moved back to A's digest: A's output, from the cache, again.
	e.crane(t, "tag", signedCache, "cache").must(t)
	r, rep = consume(t, drop, filepath.Join(e.dir, "out-consumer-4"))
	r.must(t)
	if got := readResult(t, filepath.Join(e.dir, "out-consumer-4")); got != honest {
		t.Errorf("after the tag moved back, consumer built %q; want %q", got, honest)
	}
	if cached, total := cachedSteps(r.stderr); total == 0 || cached < total-1 {
		t.Errorf("after the tag moved back: %d of %d RUN steps CACHED", cached, total)
	}

	// For the record: the same build with plain, unverified --cache-from.
	e.prune(t)
	start = time.Now()
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-from", cache, "-o", "type=local,dest="+filepath.Join(e.dir, "out-plain"), ctx)
	e.docker(t, args...).must(t)
	t.Logf("plain docker buildx build with unverified --cache-from: %s", time.Since(start).Round(time.Millisecond))
}

// TestBuildTagMovedAfterVerification: the tag is moved to the attacker's
// cache after trustcache verified it and before BuildKit imports it (the
// buildx plugin the build runs moves it first). The build imports the
// verified digest anyway.
func TestBuildTagMovedAfterVerification(t *testing.T) {
	e := trustEnv(t)
	ctx := e.project(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	cache := repo + ":cache"
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})

	e.prune(t)
	report := filepath.Join(e.dir, "report-a.json")
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--trust-report", report, "--sign", "--key", "builder-a.key",
		"--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-a"), ctx)
	e.trustcache(t, args...).must(t)
	honest := readResult(t, filepath.Join(e.dir, "out-a"))

	// The attacker's cache, under another tag for now.
	e.prune(t)
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+repo+":evil,mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-x"), ctx)
	e.docker(t, args...).must(t)
	poison := readResult(t, filepath.Join(e.dir, "out-x"))

	// The buildx plugin the build runs: move the tag when it is run to
	// build (the docker CLI also runs it for its metadata), then run the
	// real one.
	mover := filepath.Join(e.dockerConfig, "cli-plugins", "docker-buildx")
	script := "#!/bin/sh\ncase \" $* \" in *\" buildx build \"*)\n\t" + cfg.crane + " copy " + repo + ":evil " + cache + " >/dev/null 2>&1 || exit 99 ;;\nesac\nexec " + cfg.buildx + " \"$@\"\n"
	if err := os.Remove(mover); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mover, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.prune(t)
	out := filepath.Join(e.dir, "out-consumer")
	args = append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--cache-from", cache, "-o", "type=local,dest="+out, ctx)
	e.trustcache(t, args...).must(t)
	if got := readResult(t, out); got != honest {
		t.Errorf("consumer built %q; want the verified cache's %q (attacker's: %q)", got, honest, poison)
	}
	moved := strings.TrimSpace(e.crane(t, "digest", cache).must(t).stdout)
	evil := strings.TrimSpace(e.crane(t, "digest", repo+":evil").must(t).stdout)
	if moved != evil {
		t.Errorf("the tag was not moved during the build (%s, attacker's %s): the test proves nothing", moved, evil)
	}
}

// TestBuildExitCodePassThrough: a failing RUN fails the build with buildx's
// exit code, and the plugin adds nothing.
func TestBuildExitCodePassThrough(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "ci")
	policy := e.writePolicy(t, "policy.yaml", []builder{{"ci", []string{"ci.pub"}}},
		[]scope{{repos: []string{"**"}, builders: []string{"ci"}}})
	dir := filepath.Join(e.dir, "failing")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+cfg.baseImage+"\nRUN exit 3\n"), 0o644)
	args := append([]string{"buildx", "build"}, remoteBuildArgs()...)
	want := e.docker(t, append(args, dir)...).code
	if want == 0 {
		t.Fatal("a failing RUN did not fail docker buildx build")
	}
	args = append([]string{"build"}, remoteBuildArgs()...)
	// With a cache tag nothing was pushed to yet: a note, and a summary
	// that says the build failed (never "used").
	missing := uniqueRepo(t) + ":never-pushed"
	got := e.trustcache(t, append(args, "--trust-policy", policy, "--cache-from", missing, dir)...)
	if got.code != want {
		t.Errorf("docker trustcache build exit = %d; want buildx's %d", got.code, want)
	}
	for _, w := range []string{"trustcache: no cache at " + missing + " yet", "trustcache: summary: the build failed"} {
		if !strings.Contains(got.stderr, w) {
			t.Errorf("docker trustcache build stderr lacks %q:\n%s", w, got.stderr)
		}
	}
	// buildx's --policy naming the trustcache policy: stopped before buildx
	// runs (its "RUN exit 3" would fail otherwise), saying which flag.
	got = e.trustcache(t, append(args, "--policy", policy, dir)...)
	if got.code != 2 || !strings.Contains(got.stderr, "did you mean --trust-policy "+policy+"?") || strings.Contains(got.stderr+got.stdout, "exit 3") {
		t.Errorf("docker trustcache build --policy TRUSTCACHE-POLICY = exit %d\n%s%s\nwant exit 2 before buildx runs, naming --trust-policy", got.code, got.stdout, got.stderr)
	}
}
