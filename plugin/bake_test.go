package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	"github.com/google/go-cmp/cmp"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// fakeBakeFiles are the files of a fake docker-buildx installed by
// fakeBake.
type fakeBakeFiles struct {
	args       string // the argv of the bake that builds, one per line
	printArgs  string // the argv of the last run with --print
	def        string // what a run with --print prints: write the definition here
	metadata   string // copied to --metadata-file by the bake that builds, when present
	printStdin string // what the run with --print read on stdin
	bakeStdin  string // what the bake that builds read on stdin
	printCode  string // the exit code of a run with --print, when present (else 0)
}

// fakeBake installs a docker-buildx (and docker CLI) that answers a bake
// with --print with the definition in def, and records the argv of every
// other run; those exit with code.
func fakeBake(t *testing.T, dir string, code int) fakeBakeFiles {
	t.Helper()
	f := fakeBakeFiles{
		args:       filepath.Join(dir, "bake-args"),
		printArgs:  filepath.Join(dir, "print-args"),
		def:        filepath.Join(dir, "definition.json"),
		metadata:   filepath.Join(dir, "fake-metadata.json"),
		printStdin: filepath.Join(dir, "print-stdin"),
		bakeStdin:  filepath.Join(dir, "bake-stdin"),
		printCode:  filepath.Join(dir, "print-code"),
	}
	body := `#!/bin/sh
for a in "$@"; do
	if [ "$a" = --print ]; then
		for b in "$@"; do printf '%s\n' "$b"; done > ` + f.printArgs + `
		cat > ` + f.printStdin + `
		cat ` + f.def + `
		if [ -f ` + f.printCode + ` ]; then exit "$(cat ` + f.printCode + `)"; fi
		exit 0
	fi
done
for a in "$@"; do printf '%s\n' "$a"; done > ` + f.args + `
cat > ` + f.bakeStdin + `
while [ $# -gt 0 ]; do if [ "$1" = --metadata-file ]; then md="$2"; fi; shift; done
if [ -n "$md" ] && [ -f ` + f.metadata + ` ]; then cp ` + f.metadata + ` "$md"; fi
exit ` + strconv.Itoa(code) + "\n"
	script := filepath.Join(dir, "docker")
	buildx := filepath.Join(config.Dir(), "cli-plugins", "docker-buildx")
	if err := os.MkdirAll(filepath.Dir(buildx), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{script, buildx} {
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", script)
	return f
}

// bakeDef writes a bake definition as docker buildx bake --print v0.38.2
// prints it: target name → attributes.
func bakeDef(t *testing.T, path string, targets map[string]map[string]any) {
	t.Helper()
	data, err := json.Marshal(map[string]any{"target": targets})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// registryCache is a cache-from entry as bake prints it.
func registryCache(ref string) map[string]string {
	return map[string]string{"type": "registry", "ref": ref}
}

func notRun(t *testing.T, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Errorf("%s ran", what)
	}
}

// bakePolicy writes policy.yaml trusting key ci for REGISTRY/team/*, with
// extra lines for the scope.
func bakePolicy(t *testing.T, dir, host, extra string) {
	t.Helper()
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"" + host + "/team/*\"]\n    builders: [ci]\n" + extra
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pinnedRef matches a cache-from pinned to the verified content endpoint.
var pinnedRef = regexp.MustCompile(`^type=registry,(mode=max,)?ref=127\.0\.0\.1:\d+/[0-9a-f]{32}/\d+@sha256:[0-9a-f]{64}$`)

// TestBakeRewritesCacheFrom: three targets, one cache poisoned (signed by
// a key the policy does not know). The bake runs with the two honest
// targets' caches pinned to the verified content endpoint and every
// target's cache-from set on the command line, the poisoned one's to
// nothing.
func TestBakeRewritesCacheFrom(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	run(t, "keys", "generate", "--name", "attacker")
	bakePolicy(t, dir, host, "")
	app, db, web := host+"/team/cache:app", host+"/team/cache:db", host+"/team/cache:web"
	dApp, dDB := pushRandom(t, app), pushRandom(t, db)
	pushRandom(t, web)
	for _, c := range []struct{ key, ref string }{{"ci.key", app}, {"ci.key", db}, {"attacker.key", web}} {
		if res := run(t, "sign", "--key", c.key, c.ref); res.code != 0 {
			t.Fatal(res.stderr)
		}
	}
	f := fakeBake(t, dir, 0)
	bakeDef(t, f.def, map[string]map[string]any{
		"app": {"context": ".", "cache-from": []any{map[string]string{"type": "registry", "ref": app, "mode": "max"}}},
		"db":  {"cache-from": []any{registryCache(db), registryCache(app)}},
		"web": {"cache-from": []any{registryCache(web)}, "output": []any{map[string]string{"type": "image", "push": "true"}}},
	})
	res := run(t, "bake", "--trust-policy", "policy.yaml", "--trust-report", "report.json",
		"-f", "docker-bake.hcl", "--set", "*.platform=linux/amd64", "app", "db", "web")
	if res.code != 0 {
		t.Fatalf("bake = %d %s", res.code, res.stderr)
	}
	wantPrint := []string{"buildx", "bake", "-f", "docker-bake.hcl", "--set", "*.platform=linux/amd64", "app", "db", "web", "--print", "--progress=quiet"}
	if diff := cmp.Diff(wantPrint, readArgs(t, f.printArgs)); diff != "" {
		t.Errorf("bake --print argv (-want +got):\n%s", diff)
	}
	got := readArgs(t, f.args)
	want := []string{"buildx", "bake", "-f", "docker-bake.hcl", "--set", "*.platform=linux/amd64", "app", "db", "web",
		"--set", "*.cache-from=",
		"--set", "app.cache-from=type=registry,mode=max,ref=ENDPOINT@" + dApp.String(),
		"--set", "db.cache-from=type=registry,ref=ENDPOINT@" + dDB.String(),
		"--set", "db.cache-from=type=registry,ref=ENDPOINT@" + dApp.String(),
	}
	// Target web pushes: the provenance record in --trust-report reads
	// its digest from the bake's metadata file.
	if len(got) > 3 && got[2] == "--metadata-file" {
		want = append(want[:2], append([]string{"--metadata-file", got[3]}, want[2:]...)...)
	}
	if diff := cmp.Diff(want, viaEndpoint(got)); diff != "" {
		t.Errorf("bake argv (-want +got):\n%s", diff)
	}
	for _, a := range got {
		if v, ok := strings.CutPrefix(a, "app.cache-from="); ok && !pinnedRef.MatchString(v) {
			t.Errorf("app's cache %q is not pinned to the verified content endpoint", v)
		}
		if strings.HasPrefix(a, "web.cache-from=") {
			t.Errorf("the poisoned target's cache was passed on: %q", a)
		}
	}
	for _, w := range []string{"WARNING: trustcache: dropped cache type=registry,ref=" + web + " of target web", "not signed by any key in the policy",
		"used     target app: type=registry,mode=max,ref=" + app, "pinned to " + host + "/team/cache@" + dApp.String() + " (verified bytes)"} {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("bake stderr lacks %q:\n%s", w, res.stderr)
		}
	}
	var rep pipeline.Report
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(data, &rep) != nil {
		t.Fatalf("trust report: %v %s", err, data)
	}
	var actions []string
	for _, c := range rep.Caches {
		actions = append(actions, c.Target+" "+c.Action.String()+" "+c.Guarantee)
	}
	wantActions := []string{"app used verified-bytes", "db used verified-bytes", "db used verified-bytes", "web dropped "}
	if diff := cmp.Diff(wantActions, actions); diff != "" || !rep.Built {
		t.Errorf("report (-want +got):\n%s built=%v", diff, rep.Built)
	}
}

// TestBakeFailPolicyDoesNotBake: under onUntrusted: fail, an untrusted
// cache of any target stops the bake (exit 3), an unreachable registry
// too (exit 4); only the --print run happened.
func TestBakeFailPolicyDoesNotBake(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	bakePolicy(t, dir, host, "    onUntrusted: fail\n  - repositories: [\"127.0.0.1:1/**\"]\n    builders: [ci]\n    onUntrusted: fail\n")
	good, unsigned := host+"/team/cache:good", host+"/team/cache:unsigned"
	pushRandom(t, good)
	pushRandom(t, unsigned)
	if res := run(t, "sign", "--key", "ci.key", good); res.code != 0 {
		t.Fatal(res.stderr)
	}
	f := fakeBake(t, dir, 0)
	for _, tc := range []struct {
		bad  string
		code int
	}{{unsigned, ExitUntrusted}, {"127.0.0.1:1/team/cache:x", ExitInconclusive}} {
		bakeDef(t, f.def, map[string]map[string]any{
			"a": {"cache-from": []any{registryCache(good)}},
			"b": {"cache-from": []any{registryCache(tc.bad)}},
		})
		res := run(t, "bake", "--trust-policy", "policy.yaml", "--trust-report", "report.json")
		if res.code != tc.code || !strings.Contains(res.stderr, "trustcache: not baking: cache type=registry,ref="+tc.bad+" of target b is ") || !strings.Contains(res.stderr, "trustcache: summary: the bake did not run") {
			t.Errorf("bake with %s under onUntrusted: fail = %d %q; want %d", tc.bad, res.code, res.stderr, tc.code)
		}
		readArgs(t, f.printArgs)
		notRun(t, f.args, "the bake (onUntrusted: fail)")
		var rep pipeline.Report
		data, _ := os.ReadFile(filepath.Join(dir, "report.json"))
		if err := json.Unmarshal(data, &rep); err != nil || rep.Built || len(rep.Caches) != 2 || rep.Caches[1].Action != decision.Blocked || rep.Caches[1].Target != "b" {
			t.Errorf("trust report %s (%v); want b's cache blocked, nothing built", data, err)
		}
	}
}

// TestBakeWithoutPolicy: a bake whose targets import no cache needs no
// policy and exits with buildx's code; one that imports a cache fails
// closed without one, naming --trust-policy, before the bake starts.
func TestBakeWithoutPolicy(t *testing.T) {
	dir := isolate(t)
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755) // nothing above the test dir
	for _, code := range []int{0, 7} {
		f := fakeBake(t, dir, code)
		bakeDef(t, f.def, map[string]map[string]any{
			"app": {"context": ".", "cache-to": []any{map[string]string{"type": "inline"}}},
			"db":  {"tags": []string{"db:dev"}},
		})
		res := run(t, "bake", "--load", "app", "db")
		if res.code != code || res.stderr != "" || res.stdout != "" {
			t.Errorf("bake without cache or policy, buildx exit %d = exit %d %q %q; want %d, nothing printed", code, res.code, res.stdout, res.stderr, code)
		}
		want := []string{"buildx", "bake", "--load", "app", "db", "--set", "*.cache-from="}
		if diff := cmp.Diff(want, readArgs(t, f.args)); diff != "" {
			t.Errorf("bake argv (-want +got):\n%s", diff)
		}
	}

	f := fakeBake(t, dir, 0)
	os.Remove(f.args)
	bakeDef(t, f.def, map[string]map[string]any{
		"app": {},
		"db":  {"cache-from": []any{registryCache("127.0.0.1:1/team/cache:db")}},
	})
	res := run(t, "bake")
	if res.code != ExitUsage || !strings.Contains(res.stderr, "--trust-policy FILE") {
		t.Errorf("bake importing a cache without a policy = %d %q; want %d naming --trust-policy", res.code, res.stderr, ExitUsage)
	}
	notRun(t, f.args, "the bake without a policy to verify its cache")
}

// TestBakeUsageErrors: a bad command line or trustcache option exits 2
// and runs nothing; --sign on a bake that exports nothing exits 2 before
// the bake starts.
func TestBakeUsageErrors(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	bakePolicy(t, dir, host, "")
	f := fakeBake(t, dir, 0)
	bakeDef(t, f.def, map[string]map[string]any{"app": {"output": []any{map[string]string{"type": "local", "dest": "out"}}}})
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"bake", "--no-such-flag", "app"}, "--no-such-flag"},
		{[]string{"bake", "--cache-from=x", "app"}, "--cache-from"},
		{[]string{"bake", "-t", "x"}, "-t"},
		{[]string{"bake", "--set"}, "needs an argument"},
		{[]string{"bake", "--key", "ci.key"}, "need --sign"},
		{[]string{"bake", "--sign-annotation", "novalue"}, "key=value"},
		{[]string{"bake", "--trust-policy", "nope.yaml"}, "nope.yaml"},
		{[]string{"bake", "--signature-format", "pgp"}, "legacy or bundle"},
	} {
		res := run(t, tc.args...)
		if res.code != ExitUsage || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("%v = %d %q; want %d containing %q", tc.args, res.code, res.stderr, ExitUsage, tc.msg)
		}
		notRun(t, f.printArgs, "bake --print despite a usage error")
		notRun(t, f.args, "bake despite a usage error")
	}
	for _, tc := range []struct {
		args []string
		def  map[string]map[string]any
		msg  string
	}{
		{[]string{"bake", "--trust-policy", "policy.yaml", "--sign", "--key", "ci.key"}, nil, "exports nothing to sign"},
		{[]string{"bake", "--trust-policy", "policy.yaml", "--sign"}, map[string]map[string]any{"app": {"output": []any{map[string]string{"type": "registry"}}}}, "--key is required"},
		{[]string{"bake", "--trust-policy", "policy.yaml", "--sign", "--key", "ci.key"}, map[string]map[string]any{"app": {"cache-to": []any{registryCache(host + "/team/a:c"), registryCache(host + "/team/b:c")}}}, "one registry cache-to per target"},
	} {
		if tc.def != nil {
			bakeDef(t, f.def, tc.def)
		}
		res := run(t, tc.args...)
		if res.code != ExitUsage || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("%v = %d %q; want %d containing %q", tc.args, res.code, res.stderr, ExitUsage, tc.msg)
		}
		notRun(t, f.args, "bake despite a usage error")
	}
}

// TestBakeResolveFails: when buildx cannot resolve the definition (its
// --print fails, or prints what is not a definition), nothing is baked;
// buildx's exit code passes through.
func TestBakeResolveFails(t *testing.T) {
	dir := isolate(t)
	f := fakeBake(t, dir, 0)
	if err := os.WriteFile(f.def, []byte("ERROR: docker-bake.hcl:2,1-1: Missing expression\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := run(t, "bake")
	if res.code != ExitFailure || !strings.Contains(res.stderr, "reading what docker buildx bake --print printed") {
		t.Errorf("bake with a definition that does not parse = %d %q; want %d", res.code, res.stderr, ExitFailure)
	}
	os.WriteFile(f.printCode, []byte("17"), 0o644)
	res = run(t, "bake")
	if res.code != 17 || !strings.Contains(res.stderr, "could not resolve the bake definition") {
		t.Errorf("bake with --print failing = %d %q; want buildx's 17", res.code, res.stderr)
	}
	notRun(t, f.args, "the bake without a resolved definition")
}

// TestBakeSign: --sign signs each target's exported cache and pushed image
// by the digests bake reported, keyed by target; a signing bake that
// would import a cache not verified trusted does not start.
func TestBakeSign(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	bakePolicy(t, dir, host, "  - repositories: [\""+host+"/audit/*\"]\n    builders: [ci]\n    level: audit\n")
	cacheA, cacheB, image := host+"/team/cache:a", host+"/team/cache:b", host+"/team/app"
	dA, dB, dImage := pushRandom(t, cacheA), pushRandom(t, cacheB), pushRandom(t, image+":1")
	f := fakeBake(t, dir, 0)
	bakeDef(t, f.def, map[string]map[string]any{
		"a":    {"cache-to": []any{map[string]string{"type": "registry", "ref": cacheA, "mode": "max"}}},
		"b":    {"cache-to": []any{registryCache(cacheB)}, "tags": []string{image + ":1"}, "output": []any{map[string]string{"type": "image", "push": "true"}}},
		"test": {"output": []any{map[string]string{"type": "cacheonly"}}},
	})
	md, _ := json.Marshal(map[string]any{
		"a":                     map[string]any{"cache.manifest": map[string]string{"digest": dA.String()}},
		"b":                     map[string]any{"cache.manifest": map[string]string{"digest": dB.String()}, "containerimage.digest": dImage.String(), "image.name": image + ":1"},
		"test":                  map[string]any{},
		"buildx.build.warnings": []any{},
	})
	os.WriteFile(f.metadata, md, 0o644)
	res := run(t, "bake", "--trust-policy", "policy.yaml", "--trust-report", "report.json", "--sign", "--key", "ci.key", "--push")
	if res.code != 0 {
		t.Fatalf("bake --sign = %d %s", res.code, res.stderr)
	}
	got := readArgs(t, f.args)
	if len(got) < 4 || got[2] != "--metadata-file" {
		t.Fatalf("bake argv %q; want a --metadata-file for --sign", got)
	}
	var rep pipeline.Report
	data, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	want := []pipeline.Signed{
		{Reference: host + "/team/cache@" + dA.String(), Kind: "cache"},
		{Reference: host + "/team/cache@" + dB.String(), Kind: "cache"},
		{Reference: image + "@" + dImage.String(), Kind: "image"},
	}
	if diff := cmp.Diff(want, rep.Signed); diff != "" {
		t.Errorf("signed (-want +got):\n%s", diff)
	}
	if res := run(t, "verify", "--policy", "policy.yaml", "--no-ledger", cacheA, cacheB); res.code != 0 {
		t.Errorf("verify the signed caches = %d %s", res.code, res.stderr)
	}

	// A cache an audit scope lets through untrusted: no signing bake.
	audited := host + "/audit/cache:x"
	pushRandom(t, audited)
	os.Remove(f.args)
	bakeDef(t, f.def, map[string]map[string]any{
		"a": {"cache-to": []any{registryCache(cacheA)}, "cache-from": []any{registryCache(audited)}},
	})
	res = run(t, "bake", "--trust-policy", "policy.yaml", "--sign", "--key", "ci.key")
	if res.code != ExitUntrusted || !strings.Contains(res.stderr, "not signing a build that imports caches not verified trusted") {
		t.Errorf("signing bake importing an audited cache = %d %q; want %d", res.code, res.stderr, ExitUntrusted)
	}
	notRun(t, f.args, "the signing bake with an unverified import")
}

// TestBakePassThrough: --print and --list build nothing and run buildx as
// given (trustcache's flags taken out); --help prints bake's help first.
func TestBakePassThrough(t *testing.T) {
	dir := isolate(t)
	f := fakeBake(t, dir, 0)
	bakeDef(t, f.def, map[string]map[string]any{"app": {"cache-from": []any{registryCache("r/x:c")}}})
	res := run(t, "bake", "--no-ledger", "--print", "--set", "*.cache-from=x", "app")
	if res.code != 0 || !strings.Contains(res.stdout, `"r/x:c"`) {
		t.Errorf("bake --print = %d %q %q; want buildx's definition", res.code, res.stdout, res.stderr)
	}
	if diff := cmp.Diff([]string{"buildx", "bake", "--print", "--set", "*.cache-from=x", "app"}, readArgs(t, f.printArgs)); diff != "" {
		t.Errorf("bake --print argv (-want +got):\n%s", diff)
	}
	for _, args := range [][]string{{"--list", "targets"}, {"--list-variables"}, {"--help"}} {
		os.Remove(f.args)
		res := run(t, append([]string{"f"}, args...)...)
		if res.code != 0 {
			t.Errorf("bake %q = %d %q", args, res.code, res.stderr)
		}
		if diff := cmp.Diff(append([]string{"buildx", "bake"}, args...), readArgs(t, f.args)); diff != "" {
			t.Errorf("bake %q argv (-want +got):\n%s", args, diff)
		}
		if args[0] == "--help" {
			golden(t, "help/trustcache-bake", res.stdout)
		}
	}
}

// TestBakeDefinitionOnStdin: with -f -, both runs of buildx read the
// definition the user gave on stdin.
func TestBakeDefinitionOnStdin(t *testing.T) {
	dir := isolate(t)
	f := fakeBake(t, dir, 0)
	bakeDef(t, f.def, map[string]map[string]any{"app": {}})
	const hcl = "target \"app\" {}\n"
	var out, errOut bytes.Buffer
	dockerCLI, err := command.NewDockerCli(
		command.WithInputStream(io.NopCloser(strings.NewReader(hcl))),
		command.WithOutputStream(&out), command.WithErrorStream(&errOut))
	if err != nil {
		t.Fatal(err)
	}
	root := NewRootCommand(dockerCLI, "test")
	root.SetArgs([]string{"bake", "-f", "-", "app"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		var st cli.StatusError
		errors.As(err, &st)
		t.Fatalf("bake -f - = %v (%d) %s", err, st.StatusCode, errOut.String())
	}
	for _, p := range []string{f.printStdin, f.bakeStdin} {
		if got, _ := os.ReadFile(p); string(got) != hcl {
			t.Errorf("%s: buildx read %q on stdin; want %q", filepath.Base(p), got, hcl)
		}
	}
}
