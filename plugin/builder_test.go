package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-cmp/cmp"
)

// writeBuilder adds a builder to buildx's store in the test's docker
// config dir, as "docker buildx create" would, and makes it current when
// current is set.
func writeBuilder(t *testing.T, configDir, name, driver, endpoint string, opts map[string]string, current bool) {
	t.Helper()
	dir := filepath.Join(configDir, "buildx")
	ng := map[string]any{"Name": name, "Driver": driver, "Nodes": []map[string]any{{"Name": name + "0", "Endpoint": endpoint, "DriverOpts": opts}}}
	data, _ := json.Marshal(ng)
	if err := os.MkdirAll(filepath.Join(dir, "instances"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "instances", name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if current {
		cur, _ := json.Marshal(map[string]any{"Key": "unix:///var/run/docker.sock", "Name": name, "Global": false})
		if err := os.WriteFile(filepath.Join(dir, "current"), cur, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReachesLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		b    builderInfo
		want bool
	}{
		{builderInfo{Driver: "docker"}, true},
		{builderInfo{Driver: "remote", Endpoint: "unix:///run/buildkit/buildkitd.sock"}, true},
		{builderInfo{Driver: "remote", Endpoint: "tcp://127.0.0.1:1234"}, true},
		{builderInfo{Driver: "remote", Endpoint: "tcp://localhost:1234"}, true},
		{builderInfo{Driver: "remote", Endpoint: "tcp://[::1]:1234"}, true},
		{builderInfo{Driver: "remote", Endpoint: "tcp://buildkit.example.com:1234"}, false},
		{builderInfo{Driver: "remote", Endpoint: "ssh://me@host"}, false},
		{builderInfo{Driver: "docker-container"}, false},
		{builderInfo{Driver: "docker-container", Network: "host"}, true},
		{builderInfo{Driver: "kubernetes"}, false},
		{builderInfo{Driver: "cloud"}, false},
	} {
		if got, why := tc.b.reachesLoopback(); got != tc.want || (!got && why == "") {
			t.Errorf("%+v.reachesLoopback() = %v %q; want %v (and a reason when false)", tc.b, got, why, tc.want)
		}
	}
}

func TestCurrentBuilder(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dockerCLI := &testCLI{dir: te.env.ConfigDir}
	env := te.env
	if got := currentBuilder(dockerCLI, env, ""); got.Driver != "docker" {
		t.Errorf("currentBuilder with an empty store = %+v; want the docker driver", got)
	}
	writeBuilder(t, env.ConfigDir, "ctr", "docker-container", "unix:///var/run/docker.sock", map[string]string{"network": "host"}, true)
	writeBuilder(t, env.ConfigDir, "remote1", "remote", "tcp://10.0.0.1:1234", nil, false)
	want := builderInfo{Name: "ctr", Driver: "docker-container", Endpoint: "unix:///var/run/docker.sock", Network: "host"}
	if diff := cmp.Diff(want, currentBuilder(dockerCLI, env, "")); diff != "" {
		t.Errorf("current builder (-want +got):\n%s", diff)
	}
	te.vars["BUILDX_BUILDER"] = "remote1"
	if got := currentBuilder(dockerCLI, env, ""); got.Driver != "remote" || got.Endpoint != "tcp://10.0.0.1:1234" {
		t.Errorf("BUILDX_BUILDER=remote1: %+v", got)
	}
	if got := currentBuilder(dockerCLI, env, "CTR"); got.Driver != "docker-container" {
		t.Errorf("--builder CTR: %+v; want the ctr builder (names are case-insensitive)", got)
	}
	if got := currentBuilder(dockerCLI, env, "mycontext"); got.Driver != "docker" {
		t.Errorf("--builder naming a docker context: %+v; want the docker driver", got)
	}
}

// TestBuildGuarantee: on a builder that reaches this host's loopback, a
// verified cache goes through the verified content endpoint (the report
// says verified-bytes); on one that does not, it is pinned by digest with
// a warning that names the weaker guarantee, or, under the policy's
// requireVerifiedBytes, the build does not start.
func TestBuildGuarantee(t *testing.T) {
	setup := func(t *testing.T, extra string) (dir, host, cache string) {
		dir = isolate(t)
		host = newRegistry(t)
		run(t, "keys", "generate", "--name", "ci")
		trustPolicy(t, dir, host, extra)
		cache = host + "/team/cache:main"
		pushRandom(t, cache)
		if res := run(t, "sign", "--key", "ci.key", cache); res.code != 0 {
			t.Fatal(res.stderr)
		}
		return dir, host, cache
	}
	report := func(t *testing.T, dir string) cacheReport {
		t.Helper()
		var rep trustReport
		if err := json.Unmarshal(mustRead(t, filepath.Join(dir, "report.json")), &rep); err != nil || len(rep.Caches) != 1 {
			t.Fatalf("trust report: %v %+v", err, rep)
		}
		return rep.Caches[0]
	}
	t.Run("docker driver: verified bytes", func(t *testing.T) {
		dir, _, cache := setup(t, "")
		argsFile := fakeDocker(t, dir, 0)
		res := run(t, "build", "--no-ledger", "--trust-report", "report.json", "--cache-from", cache, ".")
		if res.code != 0 {
			t.Fatalf("build = %d %s", res.code, res.stderr)
		}
		if args := strings.Join(readArgs(t, argsFile), " "); !endpointRef.MatchString(args) {
			t.Errorf("buildx args %q do not import from the verified content endpoint", args)
		}
		if c := report(t, dir); c.Guarantee != guaranteeVerifiedBytes || !strings.Contains(res.stderr, "(verified bytes)") {
			t.Errorf("guarantee %q, stderr %q; want %s", c.Guarantee, res.stderr, guaranteeVerifiedBytes)
		}
	})
	t.Run("docker-container driver: digest pin, with a warning", func(t *testing.T) {
		dir, host, cache := setup(t, "")
		writeBuilder(t, config.Dir(), "ctr", "docker-container", "unix:///var/run/docker.sock", nil, true)
		argsFile := fakeDocker(t, dir, 0)
		res := run(t, "build", "--no-ledger", "--trust-report", "report.json", "--cache-from", cache, ".")
		if res.code != 0 {
			t.Fatalf("build = %d %s", res.code, res.stderr)
		}
		if args := strings.Join(readArgs(t, argsFile), " "); !strings.Contains(args, "ref="+host+"/team/cache@sha256:") {
			t.Errorf("buildx args %q: want the digest-pinned registry reference", args)
		}
		if c := report(t, dir); c.Guarantee != guaranteeDigestPin || !strings.Contains(res.stderr, "pinned by digest only") || !strings.Contains(res.stderr, "(digest pin only)") {
			t.Errorf("guarantee %q, stderr %q; want %s and a warning", c.Guarantee, res.stderr, guaranteeDigestPin)
		}
	})
	t.Run("requireVerifiedBytes: the build does not start", func(t *testing.T) {
		dir, _, cache := setup(t, "requireVerifiedBytes: true\n")
		writeBuilder(t, config.Dir(), "k8s", "kubernetes", "kubernetes:///buildkit", nil, false)
		argsFile := fakeDocker(t, dir, 0)
		res := run(t, "build", "--builder", "k8s", "--no-ledger", "--trust-report", "report.json", "--cache-from", cache, ".")
		if res.code != ExitUntrusted || !strings.Contains(res.stderr, "requireVerifiedBytes") {
			t.Errorf("build = %d %q; want %d naming requireVerifiedBytes", res.code, res.stderr, ExitUntrusted)
		}
		if _, err := os.Stat(argsFile); err == nil {
			t.Errorf("the build ran")
		}
		if c := report(t, dir); c.Guarantee != guaranteeDigestPin {
			t.Errorf("guarantee %q; want %s", c.Guarantee, guaranteeDigestPin)
		}
	})
}
