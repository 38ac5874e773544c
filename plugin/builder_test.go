package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/cli/cli/config"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
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
	report := func(t *testing.T, dir string) pipeline.Cache {
		t.Helper()
		var rep pipeline.Report
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
		if c := report(t, dir); c.Guarantee != pipeline.GuaranteeVerifiedBytes || !strings.Contains(res.stderr, "(verified bytes)") {
			t.Errorf("guarantee %q, stderr %q; want %s", c.Guarantee, res.stderr, pipeline.GuaranteeVerifiedBytes)
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
		if c := report(t, dir); c.Guarantee != pipeline.GuaranteeDigestPin || !strings.Contains(res.stderr, "pinned by digest only") || !strings.Contains(res.stderr, "(digest pin only)") {
			t.Errorf("guarantee %q, stderr %q; want %s and a warning", c.Guarantee, res.stderr, pipeline.GuaranteeDigestPin)
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
		if c := report(t, dir); c.Guarantee != pipeline.GuaranteeDigestPin {
			t.Errorf("guarantee %q; want %s", c.Guarantee, pipeline.GuaranteeDigestPin)
		}
	})
}
