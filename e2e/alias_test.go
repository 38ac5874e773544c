//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// aliasConfig is a docker config.json with settings install and uninstall
// must keep: known keys, an unknown one, nested values, a number as written.
const aliasConfig = `{
	"detachKeys": "ctrl-x,x",
	"psFormat": "table {{.ID}}\t{{.Names}}",
	"x-e2e-team": {"owner": "ci", "tags": ["a", "b"], "ratio": 1.50}
}
`

// decodeConfig decodes a docker config file, numbers as written.
func decodeConfig(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	return m
}

// TestAliasBuilder: with "docker trustcache install --alias-builder", a plain
// "docker build --cache-from" goes through the policy — a poisoned cache is
// not imported, a signed one is — the other "docker builder" commands still
// reach buildx, and "uninstall --alias-builder" makes "docker build" plain
// buildx again, keeping every other setting of the config.
func TestAliasBuilder(t *testing.T) {
	e := trustEnv(t)
	e.unsetenv("DOCKER_BUILDKIT") // the alias's limit: TestAliasLegacyBuilderBypass
	ctx := e.project(t)
	e.genKey(t, "builder-a")
	e.genKey(t, "attacker")
	repo := uniqueRepo(t)
	good, poisoned := repo+":main", repo+":poisoned"
	// The policy sits in the build context's directory: docker build finds
	// it from the context, not from the working directory (e.dir).
	policy := "version: 1\nbuilders:\n  - name: builder-a\n    key: " + filepath.Join(e.dir, "builder-a.pub") +
		"\nscopes:\n  - repositories: [\"" + repo + "\"]\n    builders: [builder-a]\n"
	if err := os.WriteFile(filepath.Join(ctx, ".trustcache.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}

	// build runs a plain "docker build" (docker image build, …) on the
	// remote builder with --cache-from ref and returns what it did and
	// /result.txt.
	n := 0
	build := func(t *testing.T, cmd []string, ref string) (result, string) {
		t.Helper()
		n++
		out := filepath.Join(e.dir, "out-"+strings.Join(cmd, "-")+"-"+string(rune('a'+n)))
		args := append(append(cmd, remoteBuildArgs()...), "--cache-from", ref, "-o", "type=local,dest="+out, ctx)
		r := e.docker(t, args...).must(t)
		return r, readResult(t, out)
	}

	// builder-a's cache, built and signed through trustcache.
	e.prune(t)
	outA := filepath.Join(e.dir, "out-honest")
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--sign", "--key", "builder-a.key", "--cache-to", "type=registry,ref="+good+",mode=max",
		"-o", "type=local,dest="+outA, ctx)
	e.trustcache(t, args...).must(t)
	honest := readResult(t, outA)

	// The poisoned cache: exported by plain buildx, signed with a key the
	// policy does not list.
	e.prune(t)
	outX := filepath.Join(e.dir, "out-poison")
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+poisoned+",mode=max", "-o", "type=local,dest="+outX, ctx)
	e.docker(t, args...).must(t)
	poison := readResult(t, outX)
	e.trustcache(t, "sign", "--key", "attacker.key", poisoned).must(t)

	// Install the alias into a config with other settings.
	configPath := filepath.Join(e.dockerConfig, "config.json")
	if err := os.WriteFile(configPath, []byte(aliasConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	before := decodeConfig(t, configPath)
	e.trustcache(t, "install", "--alias-builder").must(t)
	installed := decodeConfig(t, configPath)
	if got := installed["aliases"]; !reflect.DeepEqual(got, map[string]any{"builder": "trustcache"}) {
		t.Errorf("after install, aliases = %#v; want {\"builder\": \"trustcache\"}", got)
	}
	for k, v := range before {
		if !reflect.DeepEqual(installed[k], v) {
			t.Errorf("install changed %q: %#v, was %#v", k, installed[k], v)
		}
	}
	if len(installed) != len(before)+1 {
		t.Errorf("install left %d keys; want the %d there were plus aliases: %v", len(installed), len(before), installed)
	}
	// Installing again changes nothing.
	data, _ := os.ReadFile(configPath)
	e.trustcache(t, "install", "--alias-builder").must(t)
	if again, _ := os.ReadFile(configPath); !bytes.Equal(again, data) {
		t.Errorf("a second install rewrote the config:\n%s\nwas\n%s", again, data)
	}
	// The check agrees: alias set, BuildKit on, buildx found.
	if r := e.trustcache(t, "install", "--check").must(t); !strings.Contains(r.stdout, "ok") {
		t.Errorf("install --check after install: %v", r)
	}

	// docker build, docker image build and docker builder build reach
	// docker trustcache build.
	for _, cmd := range [][]string{{"build"}, {"image", "build"}, {"builder", "build"}} {
		r := e.docker(t, append(cmd, "--help")...).must(t)
		if !strings.Contains(r.stdout, "--trust-policy") {
			t.Errorf("docker %s --help with the alias is not docker trustcache build's:\n%s", strings.Join(cmd, " "), r.stdout)
		}
	}

	// The other docker builder commands reach buildx.
	r := e.docker(t, "builder", "ls").must(t)
	if !strings.Contains(r.stdout, cfg.builder) || !strings.Contains(r.stdout, "remote") {
		t.Errorf("docker builder ls with the alias does not list the remote builder %s:\n%s", cfg.builder, r.stdout)
	}
	// docker builder prune empties the remote builder, as e.prune does.
	r = e.docker(t, "builder", "prune", "--builder", cfg.builder, "-af").must(t)
	if !strings.Contains(r.stdout+r.stderr, "Total:") {
		t.Errorf("docker builder prune with the alias did not report what buildx prune reports:\n%v", r)
	}

	// A plain docker build does not import the poisoned cache.
	r, got := build(t, []string{"build"}, poisoned)
	if got == poison {
		t.Fatalf("docker build with the alias imported the poisoned cache (%q)", poison)
	}
	if !strings.Contains(r.stderr, "WARNING: trustcache: dropped cache type=registry,ref="+poisoned+":") ||
		!strings.Contains(r.stderr, "not signed by any key in the policy") {
		t.Errorf("docker build with the alias: no trustcache warning for the poisoned cache:\n%s", r.stderr)
	}
	if cached, total := cachedSteps(r.stderr); total == 0 || cached != 0 {
		t.Errorf("docker build with the alias: %d of %d RUN steps CACHED; want none (the builder was pruned, the cache dropped)", cached, total)
	}

	// It imports the signed one, pinned to the verified digest.
	e.prune(t)
	r, got = build(t, []string{"image", "build"}, good)
	if got != honest {
		t.Errorf("docker image build with the alias built %q; want %q from builder-a's signed cache", got, honest)
	}
	if !strings.Contains(r.stderr, "pinned to "+repo+"@sha256:") {
		t.Errorf("docker image build with the alias: no pinned cache in the trustcache summary:\n%s", r.stderr)
	}

	// A project without a policy builds through the alias exactly as with
	// docker buildx build: no trustcache output, the same exit code.
	plain := filepath.Join(e.dir, "plain")
	if err := os.MkdirAll(filepath.Join(plain, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dockerfile string }{
		{"builds", "FROM " + cfg.baseImage + "\nRUN echo plain > /result.txt\n"},
		{"fails", "FROM " + cfg.baseImage + "\nRUN exit 3\n"},
	} {
		if err := os.WriteFile(filepath.Join(plain, "Dockerfile"), []byte(tc.dockerfile), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append(remoteBuildArgs(), "-o", "type=local,dest="+filepath.Join(e.dir, "out-plain-"+tc.name), plain)
		viaAlias := e.docker(t, append([]string{"build"}, args...)...)
		direct := e.docker(t, append([]string{"buildx", "build"}, args...)...)
		if viaAlias.code != direct.code || strings.Contains(viaAlias.stderr, "trustcache:") || strings.Contains(viaAlias.stderr, "no policy") {
			t.Errorf("docker build (%s) in a project without a policy through the alias = %v; want what docker buildx build gave: %v", tc.name, viaAlias, direct)
		}
	}

	// Uninstall: the config is what it was.
	e.trustcache(t, "uninstall", "--alias-builder").must(t)
	if after := decodeConfig(t, configPath); !reflect.DeepEqual(after, before) {
		t.Errorf("after uninstall the config is %v; want %v", after, before)
	}

	// docker build is plain buildx again: no trustcache, and the poisoned
	// cache is imported — what the alias prevented.
	e.prune(t)
	r, got = build(t, []string{"build"}, poisoned)
	if strings.Contains(r.stderr, "WARNING: trustcache:") || strings.Contains(r.stderr, "trustcache: summary") {
		t.Errorf("docker build after uninstall still ran trustcache:\n%s", r.stderr)
	}
	if got != poison {
		t.Errorf("docker build after uninstall built %q; want plain buildx to import the poisoned cache (%q)", got, poison)
	}
}

// TestAliasLegacyBuilderBypass proves the limit of the builder alias: with
// DOCKER_BUILDKIT=0 the docker CLI picks the legacy builder before it looks
// at the alias, so docker trustcache never runs, and "docker build
// --cache-from IMAGE" reuses a pulled image nobody signed — the attacker's
// RUN output ends up in the victim's image. install warns about it and
// install --check exits 2 in that environment; without the variable (or
// with DOCKER_BUILDKIT=1) the check passes.
func TestAliasLegacyBuilderBypass(t *testing.T) {
	e := trustEnv(t)
	ctx := e.project(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	poisoned, victim := repo+":main", repo+":victim"
	// The policy would drop the unsigned cache, were it asked.
	policy := "version: 1\nbuilders:\n  - name: builder-a\n    key: " + filepath.Join(e.dir, "builder-a.pub") +
		"\nscopes:\n  - repositories: [\"" + repo + "\"]\n    builders: [builder-a]\n"
	if err := os.WriteFile(filepath.Join(ctx, ".trustcache.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	legacy := []string{"build", "--network", cfg.network}
	e.setenv("DOCKER_BUILDKIT", "0")

	// The attacker's image, built by the legacy builder and pushed to the
	// cache tag, unsigned. Removing it locally removes its intermediate
	// images too: whatever the victim reuses comes from the pull.
	e.docker(t, append(legacy, "-t", poisoned, ctx)...).must(t)
	e.docker(t, "push", poisoned).must(t)
	poison := strings.TrimSpace(e.docker(t, "run", "--rm", "--network", "none", poisoned, "cat", "/result.txt").must(t).stdout)
	if r := e.docker(t, "image", "rm", "-f", poisoned).must(t); strings.Count(r.stdout, "Deleted:") < 3 {
		t.Fatalf("removing the attacker's image left its intermediate images: %v", r)
	}

	// install, run with DOCKER_BUILDKIT=0, warns; the check fails.
	r := e.trustcache(t, "install", "--alias-builder").must(t)
	if !strings.Contains(r.stderr, "WARNING: DOCKER_BUILDKIT=0 is set") {
		t.Errorf("install --alias-builder with DOCKER_BUILDKIT=0 did not warn:\n%s", r.stderr)
	}
	r = e.trustcache(t, "install", "--check").wantCode(t, 2)
	if !strings.Contains(r.stderr, "DOCKER_BUILDKIT=0") || !strings.Contains(r.stderr, "legacy builder") {
		t.Errorf("install --check with DOCKER_BUILDKIT=0 does not name the problem:\n%s", r.stderr)
	}

	// The victim pulls the cache image and builds from it: the legacy
	// builder, not docker trustcache, and the attacker's output.
	e.docker(t, "pull", poisoned).must(t)
	r = e.docker(t, append(legacy, "--cache-from", poisoned, "-t", victim, ctx)...).must(t)
	if strings.Contains(r.stderr, "WARNING: trustcache:") || strings.Contains(r.stderr, "trustcache: summary") {
		t.Errorf("docker build with DOCKER_BUILDKIT=0 ran trustcache after all:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "legacy builder") {
		t.Errorf("docker build with DOCKER_BUILDKIT=0: no legacy builder warning from the docker CLI:\n%v", r)
	}
	if n := strings.Count(r.stdout, "Using cache"); n < 3 {
		t.Errorf("docker build with DOCKER_BUILDKIT=0 --cache-from %s: %d steps from the cache; want the 3 RUN steps:\n%v", poisoned, n, r)
	}
	got := strings.TrimSpace(e.docker(t, "run", "--rm", "--network", "none", victim, "cat", "/result.txt").must(t).stdout)
	if got != poison {
		t.Errorf("docker build with DOCKER_BUILDKIT=0 built %q; want the attacker's %q (the limit this test documents)", got, poison)
	}

	// Without the variable, or with DOCKER_BUILDKIT=1, the check passes.
	for _, set := range []bool{false, true} {
		if set {
			e.setenv("DOCKER_BUILDKIT", "1")
		} else {
			e.unsetenv("DOCKER_BUILDKIT")
		}
		e.trustcache(t, "install", "--check").must(t)
	}
	e.docker(t, "image", "rm", "-f", poisoned, victim).must(t)
}

// TestAliasMalformedConfig: install and uninstall refuse a config.json they
// cannot edit safely with exit 2, naming it, and leave it byte for byte.
func TestAliasMalformedConfig(t *testing.T) {
	for _, tc := range []struct{ name, data string }{
		{"truncated", "{\n\t\"auths\": {},\n\t\"detachKeys\": \"ctrl-x,x\",\n"},
		{"not an object", "[\"aliases\"]\n"},
		{"aliases not an object", "{\"aliases\": \"trustcache\", \"psFormat\": \"x\"}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(e.dockerConfig, "config.json")
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"install", "uninstall"} {
				r := e.trustcache(t, cmd, "--alias-builder").wantCode(t, 2)
				if !strings.Contains(r.stderr, path) {
					t.Errorf("%s on a malformed config: the error does not name %s:\n%s", cmd, path, r.stderr)
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.data {
					t.Errorf("%s changed the malformed config:\n%q\nwas\n%q", cmd, got, tc.data)
				}
			}
			entries, _ := os.ReadDir(e.dockerConfig)
			for _, en := range entries {
				if strings.HasPrefix(en.Name(), ".config.json") {
					t.Errorf("a temporary file was left behind: %s", en.Name())
				}
			}
		})
	}
}
