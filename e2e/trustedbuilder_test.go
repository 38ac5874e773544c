//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// trustedBuilderImages are the BuildKit image (e2e/buildkit-image.sh) and
// a gateway image of the plugin under test (make image), built once per
// test binary, and how long that took (the part of a cold builder create
// that a machine with network would spend pulling).
var trustedBuilderImages struct {
	once              sync.Once
	buildkit, gateway string
	took              time.Duration
	err               error
}

func builderImages(t *testing.T) (buildkit, gateway string) {
	t.Helper()
	im := &trustedBuilderImages
	im.once.Do(func() {
		start := time.Now()
		im.buildkit = "trustcache-e2e/buildkit:v0.34.2"
		cmd := exec.Command("bash", "buildkit-image.sh", im.buildkit)
		cmd.Env = append(os.Environ(), "E2E_DOCKER="+cfg.docker)
		if out, err := cmd.CombinedOutput(); err != nil {
			im.err = err
			t.Logf("buildkit-image.sh: %s", out)
			return
		}
		// Named by the plugin binary's digest: a run with the same binary
		// reuses the image, a new binary gets its own (no tag per run).
		data, err := os.ReadFile(pluginBin)
		if err != nil {
			im.err = err
			return
		}
		sum := sha256.Sum256(data)
		im.gateway = "trustcache-e2e/gateway:" + hex.EncodeToString(sum[:6])
		if exec.Command(cfg.docker, "image", "inspect", im.gateway).Run() == nil {
			im.took = time.Since(start)
			return
		}
		// make image with the plugin under test (-o build: not rebuilt).
		cmd = exec.Command("make", "-C", "..", "-o", "build", "image", "BIN="+pluginBin, "IMAGE="+im.gateway, "IMAGE_LATEST=", "DOCKER="+cfg.docker)
		if out, err := cmd.CombinedOutput(); err != nil {
			im.err = err
			t.Logf("make image: %s", out)
			return
		}
		im.took = time.Since(start)
	})
	if im.err != nil {
		t.Fatalf("building the builder images: %v", im.err)
	}
	return im.buildkit, im.gateway
}

// createBuilder runs builder create and removes the builder when t ends.
func (e *env) createBuilder(t *testing.T, name string, args ...string) (result, time.Duration) {
	t.Helper()
	start := time.Now()
	r := e.trustcache(t, append([]string{"builder", "create", "--name", name}, args...)...)
	took := time.Since(start)
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(e.dockerConfig, "trustcache", "builders", name)); err == nil {
			e.cleanup(t, "trustcache", "builder", "rm", name)
		}
	})
	return r, took
}

// cleanup runs docker args for a t.Cleanup, when t's context is already
// cancelled.
func (e *env) cleanup(t *testing.T, args ...string) {
	cmd := exec.Command(cfg.docker, args...)
	cmd.Env = e.environ(nil)
	cmd.Dir = e.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("cleanup: docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// labelled lists the containers and volumes labelled for builder name.
func (e *env) labelled(t *testing.T, name string) []string {
	t.Helper()
	f := "label=com.docker-trustcache.builder=" + name
	c := e.docker(t, "ps", "-a", "-q", "--filter", f).must(t)
	v := e.docker(t, "volume", "ls", "-q", "--filter", f).must(t)
	return strings.Fields(c.stdout + " " + v.stdout)
}

// TestTrustedBuilder: after `builder create --use`, plain docker buildx
// build and bake (no trustcache on their command line) import the signed
// cache and never the attacker's; onUntrusted: fail stops them with the
// gateway's message; builder rm leaves nothing behind. It also measures
// create and a fully cached build through the gateway against the same
// BuildKit without it.
func TestTrustedBuilder(t *testing.T) {
	e := trustEnv(t)
	bkImage, gwImage := builderImages(t)
	t.Logf("images built in %s (BuildKit %s, gateway %s)", trustedBuilderImages.took.Round(time.Millisecond), bkImage, gwImage)
	ctx := e.serveProject(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	signed, evil := repo+":cache", repo+":evil"
	// Keys relative to the policy: the builder copies them with it.
	builders := []builder{{"builder-a", []string{"builder-a.pub"}}}
	drop := e.writePolicy(t, "drop.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	fail := e.writePolicy(t, "fail.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}, extra: "    onUntrusted: fail"}})

	// Builder A signs its cache; the attacker pushes an unsigned one.
	e.prune(t)
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", drop, "--sign", "--key", "builder-a.key",
		"--cache-to", "type=registry,ref="+signed+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-a"), ctx)
	e.trustcache(t, args...).must(t)
	honest := readResult(t, filepath.Join(e.dir, "out-a"))
	e.prune(t)
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+evil+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-x"), ctx)
	e.docker(t, args...).must(t)
	poison := readResult(t, filepath.Join(e.dir, "out-x"))

	name := "tb-" + randomHex(t, 3)
	images := []string{"--buildkit-image", bkImage, "--gateway-image", gwImage}
	r, took := e.createBuilder(t, name, append([]string{"--use", "--trust-policy", drop}, images...)...)
	r.must(t)
	t.Logf("builder create (first, images present): %s", took.Round(time.Millisecond))
	if strings.TrimSpace(r.stdout) != name {
		t.Errorf("builder create printed %q on stdout; want the name %q", r.stdout, name)
	}
	sock := filepath.Join(e.dockerConfig, "trustcache", "builders", name, "run", "gateway.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("gateway socket %s: %v", sock, err)
	}
	if ls := e.docker(t, "buildx", "ls").must(t); !strings.Contains(ls.stdout, name+"*") {
		t.Errorf("buildx ls does not show %s as the current builder:\n%s", name, ls.stdout)
	}

	// Plain docker buildx build, no --builder: the builder create --use made.
	build := func(out string, extra ...string) result {
		a := []string{"buildx", "build", "--network", cfg.network, "--provenance=false"}
		a = append(a, extra...)
		return e.docker(t, append(a, "-o", "type=local,dest="+filepath.Join(e.dir, out), ctx)...)
	}
	prune := func(b string) { e.docker(t, "buildx", "prune", "--builder", b, "--all", "--force").must(t) }

	r = build("tb-evil", "--cache-from", evil).must(t)
	if got := readResult(t, filepath.Join(e.dir, "tb-evil")); got == poison || got == honest {
		t.Errorf("docker buildx build --cache-from %s built %q (poison %q); want a fresh result", evil, got, poison)
	}
	prune(name)
	r = build("tb-signed", "--cache-from", signed).must(t)
	if got := readResult(t, filepath.Join(e.dir, "tb-signed")); got != honest {
		t.Errorf("docker buildx build --cache-from %s built %q; want builder A's %q\n%s", signed, got, honest, r.stderr)
	}
	if cached, total := cachedSteps(r.stderr); cached == 0 {
		t.Errorf("no CACHED step (%d of %d) with the signed cache:\n%s", cached, total, r.stderr)
	}

	// Plain docker build: the docker CLI runs it as buildx build, but on the builder named after
	// the docker context (it sets BUILDX_BUILDER to the context's name unless the job set it), not
	// on buildx's current one: a job routes docker build with BUILDX_BUILDER=NAME (docs/builder.md).
	t.Run("DockerBuild", func(t *testing.T) {
		for _, c := range []struct{ cache, want string }{{evil, ""}, {signed, honest}} {
			prune(name)
			out := filepath.Join(e.dir, "docker-build-"+randomHex(t, 3))
			r := e.runWith(t, map[string]string{"BUILDX_BUILDER": name}, nil, cfg.docker, "build", "--network", cfg.network,
				"--provenance=false", "--cache-from", c.cache, "-o", "type=local,dest="+out, ctx).must(t)
			got := readResult(t, out)
			if c.want != "" && got != c.want {
				t.Errorf("docker build --cache-from %s built %q; want %q\n%s", c.cache, got, c.want, r.stderr)
			}
			if c.want == "" && (got == poison || got == honest) {
				t.Errorf("docker build --cache-from %s built %q (poison %q); want a fresh result", c.cache, got, poison)
			}
		}
	})

	// docker buildx bake, cache-from in the bake file.
	t.Run("Bake", func(t *testing.T) {
		for _, c := range []struct{ cache, want string }{{evil, ""}, {signed, honest}} {
			prune(name)
			out := filepath.Join(e.dir, "bake-"+randomHex(t, 3))
			file := filepath.Join(e.dir, "docker-bake-"+randomHex(t, 3)+".hcl")
			hcl := "target \"default\" {\n  context = \"" + ctx + "\"\n  network = \"" + cfg.network + "\"\n" +
				"  cache-from = [\"" + c.cache + "\"]\n  output = [\"type=local,dest=" + out + "\"]\n}\n"
			if err := os.WriteFile(file, []byte(hcl), 0o644); err != nil {
				t.Fatal(err)
			}
			r := e.docker(t, "buildx", "bake", "--provenance=false", "-f", file).must(t)
			got := readResult(t, out)
			if c.want != "" && got != c.want {
				t.Errorf("bake with cache-from %s built %q; want %q\n%s", c.cache, got, c.want, r.stderr)
			}
			if c.want == "" && (got == poison || got == honest) {
				t.Errorf("bake with cache-from %s built %q (poison %q); want a fresh result", c.cache, got, poison)
			}
		}
	})

	// docker compose build, cache_from in compose.yaml.
	t.Run("Compose", func(t *testing.T) {
		compose := filepath.Join(os.Getenv("TRUSTCACHE_TOOLS"), "docker-compose")
		if v := os.Getenv("E2E_COMPOSE"); v != "" {
			compose = v
		}
		if _, err := os.Stat(compose); err != nil {
			t.Skipf("no docker compose plugin at %s (E2E_COMPOSE)", compose)
		}
		if err := copyFile(compose, filepath.Join(e.dockerConfig, "cli-plugins", "docker-compose"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ cache, want string }{{evil, ""}, {signed, honest}} {
			prune(name)
			image := "trustcache-e2e/compose-" + randomHex(t, 4) + ":latest"
			file := filepath.Join(e.dir, "compose-"+randomHex(t, 3)+".yaml")
			yml := "services:\n  app:\n    image: " + image + "\n    build:\n      context: " + ctx +
				"\n      network: " + cfg.network + "\n      cache_from: [\"" + c.cache + "\"]\n"
			if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
				t.Fatal(err)
			}
			r := e.docker(t, "compose", "-f", file, "build").must(t)
			t.Cleanup(func() { e.cleanup(t, "rmi", image) })
			got := strings.TrimSpace(e.docker(t, "run", "--rm", "--network", "none", image, "cat", "/result.txt").must(t).stdout)
			if c.want != "" && got != c.want {
				t.Errorf("compose build with cache_from %s built %q; want %q\n%s", c.cache, got, c.want, r.stderr)
			}
			if c.want == "" && (got == poison || got == honest) {
				t.Errorf("compose build with cache_from %s built %q (poison %q); want a fresh result", c.cache, got, poison)
			}
		}
	})

	// The gateway's decisions are in its log and in inspect.
	t.Run("InspectAndLogs", func(t *testing.T) {
		r := e.trustcache(t, "builder", "inspect", "--format", "json", name).must(t)
		var st struct {
			Gateway         struct{ Status string }
			Buildkit        struct{ Status string }
			BuildkitVersion string
			Policy          struct{ Digest, Fingerprint, File string }
			Decisions       []map[string]any
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("inspect --format json: %v\n%s", err, r.stdout)
		}
		if st.Gateway.Status != "running" || st.Buildkit.Status != "running" || !strings.HasPrefix(st.BuildkitVersion, "v0.") ||
			!strings.HasPrefix(st.Policy.Fingerprint, "sha256:") || len(st.Decisions) == 0 {
			t.Errorf("inspect: %s", r.stdout)
		}
		logs := e.trustcache(t, "builder", "logs", name).must(t)
		if !strings.Contains(logs.stdout+logs.stderr, `"ref":"`+evil+`"`) || !strings.Contains(logs.stdout+logs.stderr, `"action":"dropped"`) {
			t.Errorf("builder logs has no dropped decision for %s:\n%s", evil, logs.stdout+logs.stderr)
		}
		if ls := e.trustcache(t, "builder", "ls").must(t); !strings.Contains(ls.stdout, name) {
			t.Errorf("builder ls:\n%s", ls.stdout)
		}
	})

	// A second builder for another trust level: its own BuildKit state.
	name2 := "tf-" + randomHex(t, 3)
	r, took2 := e.createBuilder(t, name2, append([]string{"--trust-policy", fail}, images...)...)
	r.must(t)
	t.Logf("builder create (second, images present): %s", took2.Round(time.Millisecond))
	t.Run("OnUntrustedFail", func(t *testing.T) {
		r := build("tf-evil", "--builder", name2, "--cache-from", evil)
		if r.code == 0 || !strings.Contains(r.stderr, "trustcache gateway: not building: cache "+evil+" is untrusted") {
			t.Errorf("want the build to fail with the gateway's message; got %v", r)
		}
		file := filepath.Join(e.dir, "docker-bake-fail.hcl")
		hcl := "target \"default\" {\n  context = \"" + ctx + "\"\n  network = \"" + cfg.network + "\"\n" +
			"  cache-from = [\"" + evil + "\"]\n  output = [\"type=local,dest=" + filepath.Join(e.dir, "bake-fail") + "\"]\n}\n"
		if err := os.WriteFile(file, []byte(hcl), 0o644); err != nil {
			t.Fatal(err)
		}
		r = e.docker(t, "buildx", "bake", "--builder", name2, "--provenance=false", "-f", file)
		if r.code == 0 || !strings.Contains(r.stderr, "trustcache gateway: not building") {
			t.Errorf("want bake to fail with the gateway's message; got %v", r)
		}
		// docker compose build, when the compose plugin is there (Compose).
		if _, err := os.Stat(filepath.Join(e.dockerConfig, "cli-plugins", "docker-compose")); err == nil {
			file := filepath.Join(e.dir, "compose-fail.yaml")
			yml := "services:\n  app:\n    image: trustcache-e2e/compose-fail:" + randomHex(t, 4) + "\n    build:\n      context: " + ctx +
				"\n      network: " + cfg.network + "\n      cache_from: [\"" + evil + "\"]\n"
			if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
				t.Fatal(err)
			}
			r := e.runWith(t, map[string]string{"BUILDX_BUILDER": name2}, nil, cfg.docker, "compose", "-f", file, "build")
			if r.code == 0 || !strings.Contains(r.stderr, "trustcache gateway: not building") {
				t.Errorf("want compose build to fail with the gateway's message; got %v", r)
			}
		}
		// Its BuildKit is not the first builder's: a step the first one has
		// cached runs here.
		r = build("tf-nocache", "--builder", name2).must(t)
		if got := readResult(t, filepath.Join(e.dir, "tf-nocache")); got == honest {
			t.Errorf("the second builder reused the first builder's cache (%q)", got)
		}
	})

	// reload: the second builder takes the drop policy without a restart;
	// an invalid policy changes nothing.
	t.Run("Reload", func(t *testing.T) {
		e.trustcache(t, "builder", "reload", "--trust-policy", drop, name2).must(t)
		r := build("tf-reloaded", "--builder", name2, "--cache-from", evil).must(t)
		if got := readResult(t, filepath.Join(e.dir, "tf-reloaded")); got == poison {
			t.Errorf("after reload, the build used the attacker's cache")
		}
		bad := filepath.Join(e.dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte("version: 1\nbuilders: [\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := e.trustcache(t, "builder", "inspect", "--format", "json", name2).must(t)
		r = e.trustcache(t, "builder", "reload", "--trust-policy", bad, name2)
		if r.code == 0 || !strings.Contains(r.stderr, "policy not reloaded") || !strings.Contains(r.stderr, "bad.yaml") {
			t.Errorf("reload with an invalid policy: %v", r)
		}
		after := e.trustcache(t, "builder", "inspect", "--format", "json", name2).must(t)
		digest := func(s string) string {
			var st struct{ Policy struct{ Digest string } }
			_ = json.Unmarshal([]byte(s), &st)
			return st.Policy.Digest
		}
		if digest(before.stdout) == "" || digest(before.stdout) != digest(after.stdout) {
			t.Errorf("an invalid policy changed the builder's policy: %s -> %s", digest(before.stdout), digest(after.stdout))
		}
	})

	t.Run("Performance", func(t *testing.T) { e.builderPerf(t, name, ctx, signed) })

	t.Run("Refusals", func(t *testing.T) {
		// An existing name, and a missing image: refused, nothing left behind.
		// (Not createBuilder: its cleanup would remove the builder of that name.)
		r := e.trustcache(t, append([]string{"builder", "create", "--name", name, "--trust-policy", drop}, images...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "exists already") {
			t.Errorf("create with an existing name: %v", r)
		}
		bad := "tx-" + randomHex(t, 3)
		r, _ = e.createBuilder(t, bad, "--trust-policy", drop, "--buildkit-image", bkImage, "--gateway-image", "trustcache-e2e/no-such-image:"+randomHex(t, 4))
		if r.code == 0 || !strings.Contains(r.stderr, "no-such-image") {
			t.Errorf("create with a missing image: %v", r)
		}
		// The gateway fails after BuildKit started (a policy the image
		// cannot read): everything made is rolled back.
		r, _ = e.createBuilder(t, bad, "--trust-policy", drop, "--buildkit-image", bkImage, "--gateway-image", bkImage, "--timeout", "15s")
		if r.code == 0 || !strings.Contains(r.stderr, "removing what was made") {
			t.Errorf("create with a gateway that does not start: %v", r)
		}
		if left := e.labelled(t, bad); len(left) > 0 {
			t.Errorf("a failed create left %v", left)
		}
		if _, err := os.Stat(filepath.Join(e.dockerConfig, "trustcache", "builders", bad)); err == nil {
			t.Errorf("a failed create left its directory")
		}
		if r := e.docker(t, "buildx", "inspect", bad); r.code == 0 {
			t.Errorf("a failed create left the buildx builder %s", bad)
		}
	})

	t.Run("Action", func(t *testing.T) { e.builderAction(t, drop, bkImage, ctx, signed, honest) })

	// builder rm: nothing left of it, and the other builder untouched.
	e.trustcache(t, "builder", "rm", name).must(t)
	if left := e.labelled(t, name); len(left) > 0 {
		t.Errorf("builder rm left %v", left)
	}
	if _, err := os.Stat(filepath.Join(e.dockerConfig, "trustcache", "builders", name)); err == nil {
		t.Errorf("builder rm left the builder's directory")
	}
	if r := e.docker(t, "buildx", "inspect", name); r.code == 0 {
		t.Errorf("builder rm left the buildx builder %s", name)
	}
	if left := e.labelled(t, name2); len(left) != 4 {
		t.Errorf("builder rm %s touched %s: it has %v", name, name2, left)
	}
}

// builderPerf times a fully cached build through the trusted builder's
// gateway and straight to the same BuildKit (its socket in the volume,
// reachable here as root), alternating, and logs the medians and ratio.
func (e *env) builderPerf(t *testing.T, name, ctx, cache string) {
	vol := e.docker(t, "volume", "inspect", "--format", "{{.Mountpoint}}", "trustcache-"+name+"-run").must(t)
	bksock := filepath.Join(strings.TrimSpace(vol.stdout), "buildkitd.sock")
	if _, err := os.Stat(bksock); err != nil {
		t.Skipf("BuildKit's socket is not reachable from here: %v", err)
	}
	direct := "direct-" + randomHex(t, 3)
	e.docker(t, "buildx", "create", "--name", direct, "--driver", "remote", "unix://"+bksock).must(t)
	t.Cleanup(func() { e.cleanup(t, "buildx", "rm", direct) })
	run := func(b string) time.Duration {
		start := time.Now()
		e.docker(t, "buildx", "build", "--builder", b, "--network", cfg.network, "--provenance=false", "--cache-from", cache, ctx).must(t)
		return time.Since(start)
	}
	run(name) // warm: everything cached, the cache verified once (ledger)
	run(direct)
	var via, straight []time.Duration
	var ratios []float64
	for i := 0; i < 11; i++ {
		// Alternate which goes first, so drift in the machine's load
		// favours neither.
		var v, d time.Duration
		if i%2 == 0 {
			v, d = run(name), run(direct)
		} else {
			d, v = run(direct), run(name)
		}
		via, straight = append(via, v), append(straight, d)
		ratios = append(ratios, float64(v)/float64(d))
	}
	med := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	slices.Sort(ratios)
	t.Logf("fully cached docker buildx build with --cache-from (signed), 11 interleaved pairs: through the gateway median %s (min %s), straight to the same BuildKit median %s (min %s); ratio of medians %.3f, median of pair ratios %.3f",
		med(via).Round(time.Millisecond), slices.Min(via).Round(time.Millisecond), med(straight).Round(time.Millisecond), slices.Min(straight).Round(time.Millisecond),
		float64(med(via))/float64(med(straight)), ratios[len(ratios)/2])
}

// builderAction runs action.yml's script as a runner would (RUNNER_OS,
// RUNNER_ARCH, a temporary GITHUB_OUTPUT, the release files in a local
// directory laid out as make release lays them out), then a plain docker
// buildx build on the builder it made current.
func (e *env) builderAction(t *testing.T, policy, bkImage, ctx, signed, honest string) {
	arch := map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || arch == "" {
		t.Skipf("no release binary for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	release := filepath.Join(e.dir, "release")
	file := "docker-trustcache-linux-" + runtime.GOARCH
	if err := os.MkdirAll(release, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(pluginBin, filepath.Join(release, file), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pluginBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	writeSums := func(hexsum string) {
		line := hexsum + "  " + file + "\n" + strings.Repeat("0", 64) + "  docker-trustcache-darwin-arm64\n"
		if err := os.WriteFile(filepath.Join(release, "checksums.txt"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	name := "ta-" + randomHex(t, 3)
	out := filepath.Join(e.dir, "github-output")
	genv := filepath.Join(e.dir, "github-env")
	runAction := func() result {
		for _, f := range []string{out, genv} {
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return e.runWith(t, map[string]string{
			"RUNNER_OS": "Linux", "RUNNER_ARCH": arch, "GITHUB_OUTPUT": out, "GITHUB_ENV": genv,
			"INPUT_RELEASE": release, "INPUT_POLICY": filepath.Base(policy), "INPUT_NAME": name,
			"INPUT_BUILDKIT_IMAGE": bkImage, "PATH": filepath.Dir(cfg.docker) + ":" + os.Getenv("PATH"),
		}, nil, "bash", filepath.Join(repoRoot(t), "action.sh"))
	}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(e.dockerConfig, "trustcache", "builders", name)); err == nil {
			e.cleanup(t, "trustcache", "builder", "rm", name)
		}
	})

	// A binary that does not match its checksum is not installed.
	installed := filepath.Join(e.dockerConfig, "cli-plugins", "docker-trustcache")
	if err := os.WriteFile(installed, []byte("#!/bin/sh\necho old\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeSums(strings.Repeat("ab", 32))
	r := runAction()
	if r.code == 0 || !strings.Contains(r.stderr, "does not match its checksum") {
		t.Errorf("action with a wrong checksum: %v", r)
	}
	if b, _ := os.ReadFile(installed); !strings.Contains(string(b), "echo old") {
		t.Errorf("the action installed a binary that does not match its checksum")
	}

	writeSums(hex.EncodeToString(sum[:]))
	start := time.Now()
	r = runAction().must(t)
	t.Logf("action script (install, gateway image, builder create): %s", time.Since(start).Round(time.Millisecond))
	if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != "name="+name {
		t.Errorf("GITHUB_OUTPUT = %q; want name=%s", b, name)
	}
	if b, _ := os.ReadFile(genv); strings.TrimSpace(string(b)) != "BUILDX_BUILDER="+name {
		t.Errorf("GITHUB_ENV = %q; want BUILDX_BUILDER=%s (so that docker build uses the builder)", b, name)
	}
	e.docker(t, "buildx", "prune", "--builder", name, "--all", "--force").must(t)
	dest := filepath.Join(e.dir, "action-out")
	r = e.docker(t, "buildx", "build", "--network", cfg.network, "--provenance=false", "--cache-from", signed, "-o", "type=local,dest="+dest, ctx).must(t)
	if got := readResult(t, dest); got != honest {
		t.Errorf("after the action, docker buildx build --cache-from %s built %q; want %q\n%s", signed, got, honest, r.stderr)
	}
	if !strings.Contains(r.stderr, "CACHED") {
		t.Errorf("no CACHED step after the action:\n%s", r.stderr)
	}
}

// repoRoot is the repository's root (the e2e tests run in e2e/).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// TestTrustedBuilderReuse: --buildkit starts only the gateway, in front of
// a buildkitd the test runs; rm removes the gateway and leaves that
// buildkitd serving.
func TestTrustedBuilderReuse(t *testing.T) {
	e := trustEnv(t)
	_, gwImage := builderImages(t)
	bk := startOwnBuildkitd(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	name := "tr-" + randomHex(t, 3)
	r, _ := e.createBuilder(t, name, "--trust-policy", policy, "--gateway-image", gwImage, "--buildkit", "unix://"+bk.sock)
	r.must(t)
	if left := e.labelled(t, name); len(left) != 1 {
		t.Errorf("with --buildkit, create made %v; want only the gateway container", left)
	}
	ctx := e.serveProject(t)
	out := filepath.Join(e.dir, "out")
	r = e.docker(t, "buildx", "build", "--builder", name, "--network", cfg.network, "--provenance=false",
		"--cache-from", repo+":missing", "-o", "type=local,dest="+out, ctx).must(t)
	readResult(t, out)
	logs := e.trustcache(t, "builder", "logs", name).must(t)
	if !strings.Contains(logs.stdout+logs.stderr, `"ref":"`+repo+`:missing"`) {
		t.Errorf("the build's import did not reach the gateway:\n%s\n%s", logs.stdout+logs.stderr, r.stderr)
	}
	e.trustcache(t, "builder", "rm", name).must(t)
	if left := e.labelled(t, name); len(left) > 0 {
		t.Errorf("builder rm left %v", left)
	}
	buildctl := filepath.Join(filepath.Dir(cfg.buildx), "buildctl")
	if err := exec.Command(buildctl, "--addr", "unix://"+bk.sock, "debug", "workers").Run(); err != nil {
		t.Errorf("the reused buildkitd does not answer after builder rm: %v", err)
	}
}
