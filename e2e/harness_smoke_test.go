//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// TestHarness checks the harness itself: the per-test docker config reaches setup.sh's dockerd,
// sees the remote builder, runs the plugin under test and both cosigns, and the registry
// helpers push what they say.
func TestHarness(t *testing.T) {
	e := newEnv(t)

	r := e.docker(t, "version", "--format", "{{.Client.Version}} {{.Server.Version}}").must(t)
	if fields := strings.Fields(r.stdout); len(fields) != 2 {
		t.Errorf("docker version = %q; want client and server versions", r.stdout)
	}

	r = e.docker(t, "buildx", "ls").must(t)
	reachable := false
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, cfg.buildkitAddr) && strings.Contains(line, "running") {
			reachable = true
		}
	}
	if !strings.Contains(r.stdout, cfg.builder) || !reachable {
		t.Errorf("docker buildx ls: want builder %q running at %s:\n%s", cfg.builder, cfg.buildkitAddr, r.stdout)
	}

	e.trustcache(t, "--help").must(t)

	r = e.cosign(t, "version").must(t)
	if out := r.stdout + r.stderr; !strings.Contains(out, "v2.") {
		t.Errorf("cosign version = %q; want v2.x", out)
	}
	r = e.cosign3(t, "version").must(t)
	if out := r.stdout + r.stderr; !strings.Contains(out, "v3.") {
		t.Errorf("cosign3 version = %q; want v3.x", out)
	}

	repo := uniqueRepo(t)
	if want := cfg.registry + "/e2e/testharness-"; !strings.HasPrefix(repo, want) {
		t.Errorf("uniqueRepo = %q; want prefix %q", repo, want)
	}
	ref, digest := pushRandomImage(t, repo)
	r = e.crane(t, "digest", ref).must(t)
	if got := strings.TrimSpace(r.stdout); got != digest {
		t.Errorf("crane digest %s = %q; want %q", ref, got, digest)
	}
}
