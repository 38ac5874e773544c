package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestVerifyMissingExitCode: a tag that does not exist yet (a new branch's
// first run) is verdict missing with its own exit status, 5, which a CI
// gate can tell from untrusted (3, an attack or a misconfiguration) and
// inconclusive (4); untrusted and inconclusive win over it.
func TestVerifyMissingExitCode(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	host := newRegistry(t)
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n    onUntrusted: fail\n"
	os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644)
	signed, unsigned, missing := host+"/team/cache:main", host+"/team/cache:unsigned", host+"/team/cache:new-branch"
	pushRandom(t, signed)
	pushRandom(t, unsigned)
	if res := te.run("sign", "--key", te.path("ci.key"), signed); res.code != 0 {
		t.Fatal(res.stderr)
	}
	for _, tc := range []struct {
		refs []string
		code int
	}{
		{[]string{missing}, ExitMissing},
		{[]string{signed, missing}, ExitMissing},
		{[]string{missing, unsigned}, ExitUntrusted},
		{[]string{missing, "127.0.0.1:1/team/cache:main"}, ExitInconclusive},
		{[]string{signed}, ExitOK},
	} {
		if res := te.run(append([]string{"verify"}, tc.refs...)...); res.code != tc.code {
			t.Errorf("verify %q = exit %d; want %d\n%s%s", tc.refs, res.code, tc.code, res.stdout, res.stderr)
		}
	}

	res := te.run("verify", missing)
	if want := missing + ": missing\n"; !strings.HasPrefix(res.stdout, want) || !strings.Contains(res.stdout, "reason:  missing: "+missing+" does not exist in the registry") {
		t.Errorf("verify text:\n%s\nwant it to start %q and give the missing reason", res.stdout, want)
	}
	res = te.run("verify", "--format", "json", missing)
	var got struct {
		Verdict string `json:"verdict"`
		Missing bool   `json:"missing"`
		Trusted bool   `json:"trusted"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("verify --format json: %v\n%s", err, res.stdout)
	}
	if want := (struct {
		Verdict string `json:"verdict"`
		Missing bool   `json:"missing"`
		Trusted bool   `json:"trusted"`
	}{"missing", true, false}); got != want {
		t.Errorf("verify --format json = %+v; want %+v", got, want)
	}
	if res := te.run("policy", "explain", missing); res.code != ExitMissing || !strings.Contains(res.stdout, "verdict:     missing") {
		t.Errorf("policy explain of a missing tag = exit %d\n%s; want %d, verdict missing", res.code, res.stdout, ExitMissing)
	}
}

// TestBuildSkipsMissingCache: a build runs without a cache whose tag does
// not exist yet, even under onUntrusted: fail, with a one-line note (no
// warning of an untrusted cache); a cache that exists unsigned still stops
// it.
func TestBuildSkipsMissingCache(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n    onUntrusted: fail\n"
	os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644)
	missing := host + "/team/cache:new-branch"
	argsFile := fakeDocker(t, dir, 0)
	res := run(t, "build", "--cache-from", missing, "-t", "app:dev", ".")
	if res.code != 0 {
		t.Fatalf("build with a missing cache = exit %d\n%s", res.code, res.stderr)
	}
	if diff := cmp.Diff([]string{"buildx", "build", "-t", "app:dev", "."}, readArgs(t, argsFile)); diff != "" {
		t.Errorf("buildx argv (-want +got):\n%s", diff)
	}
	note := "trustcache: no cache at " + missing + " yet (the tag does not exist in the registry): building without it\n"
	if !strings.Contains(res.stderr, note) || strings.Contains(res.stderr, "WARNING") {
		t.Errorf("build stderr:\n%s\nwant the note %q and no warning", res.stderr, note)
	}

	unsigned := host + "/team/cache:unsigned"
	pushRandom(t, unsigned)
	os.Remove(argsFile)
	if res := run(t, "build", "--cache-from", missing, "--cache-from", unsigned, "."); res.code != ExitUntrusted {
		t.Errorf("build with an unsigned cache under onUntrusted: fail = exit %d; want %d\n%s", res.code, ExitUntrusted, res.stderr)
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Error("buildx ran although an unsigned cache blocked the build")
	}
}

// TestBakeSkipsMissingCache: as build, a bake runs without a target's cache
// whose tag does not exist yet, under onUntrusted: fail, with a note.
func TestBakeSkipsMissingCache(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	bakePolicy(t, dir, host, "    onUntrusted: fail\n")
	missing := host + "/team/cache:new-branch"
	f := fakeBake(t, dir, 0)
	bakeDef(t, f.def, map[string]map[string]any{"a": {"cache-from": []any{registryCache(missing)}}})
	res := run(t, "bake", "--trust-policy", "policy.yaml")
	note := "trustcache: no cache at " + missing + " of target a yet (the tag does not exist in the registry): building without it\n"
	if res.code != 0 || !strings.Contains(res.stderr, note) || strings.Contains(res.stderr, "WARNING") {
		t.Errorf("bake with a missing cache = exit %d\n%s\nwant exit 0, the note %q and no warning", res.code, res.stderr, note)
	}
	readArgs(t, f.args) // the bake ran
}
