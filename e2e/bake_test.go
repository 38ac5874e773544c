//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bakeDockerfile is the e2e Dockerfile with the target's name in a build
// argument that its RUN steps see, so that each bake target has its own
// cache keys (and its own /result.txt), and a nonce, so that no other test
// builds the same steps.
const bakeDockerfile = `FROM %BASE%
ARG T
RUN echo trustcache-e2e-bake-%NONCE%-$T > /step1.txt
RUN sleep 2 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /expensive.txt
RUN cp /expensive.txt /result.txt
`

// bakeTargets are the targets of the test's bake file.
var bakeTargets = []string{"a", "b", "c"}

// bakeProject writes a build context with bakeDockerfile and a bake file
// whose targets each import their own cache, REPO:TARGET, and write their
// output to ${OUT}/TARGET; it returns the bake file's path.
func (e *env) bakeProject(t *testing.T, repo string) string {
	t.Helper()
	dir := filepath.Join(e.dir, "bake-project")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	df := strings.NewReplacer("%BASE%", cfg.baseImage, "%NONCE%", randomHex(t, 8)).Replace(bakeDockerfile)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("variable \"OUT\" {}\n")
	b.WriteString("group \"default\" {\n  targets = [\"" + strings.Join(bakeTargets, "\", \"") + "\"]\n}\n")
	for _, tg := range bakeTargets {
		b.WriteString("target \"" + tg + "\" {\n" +
			"  context = \"" + dir + "\"\n" +
			"  network = \"" + cfg.network + "\"\n" +
			"  args = { T = \"" + tg + "\" }\n" +
			"  cache-from = [\"" + repo + ":" + tg + "\"]\n" +
			"  output = [\"type=local,dest=${OUT}/" + tg + "\"]\n" +
			"}\n")
	}
	path := filepath.Join(dir, "docker-bake.hcl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// remoteBakeArgs are the flags every bake on the remote builder uses.
func remoteBakeArgs() []string {
	return []string{"--builder", cfg.builder, "--provenance=false"}
}

// bakeReport is the part of a bake's --trust-report the tests read.
type bakeReport struct {
	Caches []struct {
		Source    string `json:"source"`
		Target    string `json:"target"`
		Action    string `json:"action"`
		Pinned    string `json:"pinned"`
		Guarantee string `json:"guarantee"`
		Reason    string `json:"reason"`
	} `json:"caches"`
	Signed []struct {
		Reference string `json:"reference"`
		Kind      string `json:"kind"`
	} `json:"signed"`
	Built bool `json:"built"`
}

func readBakeReport(t *testing.T, path string) bakeReport {
	t.Helper()
	var r bakeReport
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("trust report: %v", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("trust report %s: %v", b, err)
	}
	return r
}

// TestBake is the headline scenario for bake: three targets, each with its
// own signed registry cache; an attacker who can push one target's tag
// poisons it; a fresh builder's docker trustcache bake imports the two
// honest caches (their outputs are builder A's) and builds the poisoned
// target without cache, or, under onUntrusted: fail, does not bake.
func TestBake(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "builder-a")
	e.genKey(t, "attacker")
	repo := uniqueRepo(t)
	bakeFile := e.bakeProject(t, repo)
	drop := e.writePolicy(t, "drop.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}, extra: noFallback}})
	fail := e.writePolicy(t, "fail.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}, extra: "    onUntrusted: fail\n" + noFallback}})
	results := func(t *testing.T, out string) map[string]string {
		t.Helper()
		m := map[string]string{}
		for _, tg := range bakeTargets {
			m[tg] = readResult(t, filepath.Join(out, tg))
		}
		return m
	}

	// Builder A bakes, exports each target's cache and signs the three.
	e.prune(t)
	outA := filepath.Join(e.dir, "out-a")
	reportA := filepath.Join(e.dir, "report-a.json")
	args := append([]string{"bake"}, remoteBakeArgs()...)
	args = append(args, "--trust-policy", drop, "--trust-report", reportA, "--sign", "--key", "builder-a.key",
		"-f", bakeFile, "--var", "OUT="+outA)
	for _, tg := range bakeTargets {
		args = append(args, "--set", tg+".cache-to=type=registry,ref="+repo+":"+tg+",mode=max")
	}
	e.trustcache(t, args...).must(t)
	honest := results(t, outA)
	if honest["a"] == honest["b"] || honest["b"] == honest["c"] || honest["a"] == honest["c"] {
		t.Fatalf("builder A's targets share a result %v; want one build each", honest)
	}
	rep := readBakeReport(t, reportA)
	signed := map[string]bool{}
	for _, s := range rep.Signed {
		if s.Kind != "cache" || !strings.HasPrefix(s.Reference, repo+"@sha256:") {
			t.Errorf("builder A signed %+v; want only cache manifests in %s", s, repo)
		}
		signed[s.Reference] = true
	}
	if len(signed) != len(bakeTargets) {
		t.Fatalf("builder A signed %+v; want the %d targets' caches", rep.Signed, len(bakeTargets))
	}

	// The attacker bakes target c on its own state, without A's cache, and
	// pushes its cache to c's tag, signed with a key the policy does not
	// allow.
	e.prune(t)
	outX := filepath.Join(e.dir, "out-attacker")
	args = append([]string{"buildx", "bake"}, remoteBakeArgs()...)
	args = append(args, "-f", bakeFile, "--var", "OUT="+outX, "--set", "c.cache-from=",
		"--set", "c.cache-to=type=registry,ref="+repo+":c,mode=max", "c")
	e.docker(t, args...).must(t)
	poison := readResult(t, filepath.Join(outX, "c"))
	if poison == honest["c"] {
		t.Fatalf("the attacker's build reused builder A's cache")
	}
	e.trustcache(t, "sign", "--key", "attacker.key", repo+":c").must(t)

	// A fresh builder bakes through trustcache, as a fresh host would
	// (without this host's ledger).
	consume := func(t *testing.T, policy, out string) (result, bakeReport) {
		t.Helper()
		e.prune(t)
		report := filepath.Join(e.dir, filepath.Base(out)+"-report.json")
		args := append([]string{"bake"}, remoteBakeArgs()...)
		args = append(args, "--no-ledger", "--trust-policy", policy, "--trust-report", report, "-f", bakeFile, "--var", "OUT="+out)
		r := e.trustcache(t, args...)
		return r, readBakeReport(t, report)
	}
	outC := filepath.Join(e.dir, "out-consumer")
	r, rep := consume(t, drop, outC)
	r.must(t)
	got := results(t, outC)
	for _, tg := range []string{"a", "b"} {
		if got[tg] != honest[tg] {
			t.Errorf("consumer target %s built %q; want builder A's %q from the verified cache", tg, got[tg], honest[tg])
		}
	}
	if got["c"] == poison {
		t.Fatalf("consumer target c built the attacker's output %q", poison)
	}
	if got["c"] == honest["c"] {
		t.Errorf("consumer target c built builder A's output without a trusted cache")
	}
	byTarget := map[string]int{}
	for i, c := range rep.Caches {
		byTarget[c.Target] = i
	}
	if len(rep.Caches) != 3 || len(byTarget) != 3 {
		t.Fatalf("trust report caches %+v; want one per target", rep.Caches)
	}
	for _, tg := range []string{"a", "b"} {
		c := rep.Caches[byTarget[tg]]
		if c.Action != "used" || !signed[c.Pinned] || c.Guarantee != "verified-bytes" {
			t.Errorf("trust report, target %s: %+v; want used, pinned to the digest builder A signed, through the verified content endpoint", tg, c)
		}
	}
	if c := rep.Caches[byTarget["c"]]; c.Action != "dropped" || !strings.Contains(c.Reason, "not signed by any key in the policy") {
		t.Errorf("trust report, target c: %+v; want dropped as signed by an unknown key", c)
	}
	if !strings.Contains(r.stderr, "WARNING: trustcache: dropped cache type=registry,ref="+repo+":c of target c") {
		t.Errorf("no warning for target c's dropped cache:\n%s", r.stderr)
	}

	// Under onUntrusted: fail, the bake does not start.
	outF := filepath.Join(e.dir, "out-consumer-fail")
	r, rep = consume(t, fail, outF)
	r.wantCode(t, 3)
	if _, err := os.Stat(outF); err == nil {
		t.Errorf("onUntrusted: fail baked anyway")
	}
	if rep.Built {
		t.Errorf("trust report says built under onUntrusted: fail")
	}
	for _, c := range rep.Caches {
		if c.Target == "c" && c.Action != "blocked" {
			t.Errorf("trust report, target c: %+v; want blocked", c)
		}
	}
}

// TestBakeCompose: docker trustcache bake reads a compose file as buildx
// bake does (what "docker compose build" builds, verified): the service's
// cache_from signed by builder A is imported, the attacker's under the
// same tag is not.
func TestBakeCompose(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	e.bakeProject(t, repo) // the Dockerfile
	dir := filepath.Join(e.dir, "bake-project")
	compose := "services:\n  app:\n    build:\n      context: " + dir + "\n      network: " + cfg.network +
		"\n      args:\n        T: app\n      cache_from:\n        - " + repo + ":app\n"
	composeFile := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(composeFile, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	bake := func(t *testing.T, out string, extra ...string) result {
		t.Helper()
		e.prune(t)
		args := append([]string{"bake"}, remoteBakeArgs()...)
		args = append(args, "--trust-policy", policy, "--no-ledger", "-f", composeFile, "--set", "app.output=type=local,dest="+out)
		return e.trustcache(t, append(args, extra...)...)
	}

	outA := filepath.Join(e.dir, "out-a")
	bake(t, outA, "--sign", "--key", "builder-a.key", "--set", "app.cache-to=type=registry,ref="+repo+":app,mode=max").must(t)
	honest := readResult(t, outA)
	outC := filepath.Join(e.dir, "out-consumer")
	r := bake(t, outC).must(t)
	if got := readResult(t, outC); got != honest {
		t.Errorf("compose service built %q; want builder A's %q from the verified cache\n%s", got, honest, r.stderr)
	}

	// The attacker pushes its own cache to the tag, unsigned.
	e.prune(t)
	outX := filepath.Join(e.dir, "out-x")
	args := append([]string{"buildx", "bake"}, remoteBakeArgs()...)
	args = append(args, "-f", composeFile, "--set", "app.cache-from=", "--set", "app.cache-to=type=registry,ref="+repo+":app,mode=max",
		"--set", "app.output=type=local,dest="+outX)
	e.docker(t, args...).must(t)
	poison := readResult(t, outX)
	outD := filepath.Join(e.dir, "out-consumer-2")
	r = bake(t, outD).must(t)
	// The tag's own digest is the attacker's: the build takes the tag's last trusted digest
	// instead (docs/fallback.md), builder A's, and says so.
	if got := readResult(t, outD); got == poison || got != honest {
		t.Errorf("compose service built %q after the attack; want builder A's %q through the fallback, never the attacker's %q\n%s", got, honest, poison, r.stderr)
	}
	if !strings.Contains(r.stderr, "fallback: tag app is untrusted") {
		t.Errorf("the summary does not name the fallback for the attacker's tag:\n%s", r.stderr)
	}
}
