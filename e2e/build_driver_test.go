//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBuildInlineCacheDockerDriver: the default builder (the docker driver
// of dockerd 20.10) cannot export a registry cache but writes inline cache
// into a pushed image. build --sign cannot sign it (dockerd does not report
// the pushed digest) and says so; signed by the digest dockerd recorded, a
// fresh builder reuses it through --cache-from IMAGE; an attacker's image
// pushed to the same tag is refused.
func TestBuildInlineCacheDockerDriver(t *testing.T) {
	e := trustEnv(t)
	ctx := e.project(t)
	e.genKey(t, "builder-a")
	e.genKey(t, "attacker")
	repo := uniqueRepo(t)
	image := repo + ":main"
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	flags := []string{"--builder", "default", "--network", cfg.network}
	fresh := func() {
		t.Helper()
		e.docker(t, "image", "rm", "-f", image).must(t)
		e.docker(t, "buildx", "prune", "--builder", "default", "--all", "--force").must(t)
	}
	result := func(out string) string {
		t.Helper()
		return readResult(t, out)
	}

	// dockerd 20.10 pushes the image itself and does not report the pushed
	// manifest digest to buildx: build --sign cannot establish it, so it
	// says so and fails (the build and the push stand), never signing a tag.
	report := filepath.Join(e.dir, "report-a.json")
	args := append([]string{"build"}, flags...)
	args = append(args, "--trust-policy", policy, "--trust-report", report, "--sign", "--key", "builder-a.key",
		"--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", image, "--push", ctx)
	r := e.trustcache(t, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "did not report the digest") {
		t.Fatalf("build --sign --push on the docker driver: want exit 1, digest not reported; got %v", r)
	}
	rep := readReport(t, report)
	if !rep.Built || len(rep.Signed) != 0 {
		t.Errorf("trust report %+v; want built, nothing signed", rep)
	}
	// The daemon's own record of what it pushed names the digest: sign that.
	repoDigest := strings.TrimSpace(e.docker(t, "image", "inspect", "--format", "{{index .RepoDigests 0}}", image).must(t).stdout)
	pushed := strings.TrimSpace(e.crane(t, "digest", image).must(t).stdout)
	if repoDigest != repo+"@"+pushed {
		t.Fatalf("dockerd recorded %s; the registry has %s@%s", repoDigest, repo, pushed)
	}
	e.trustcache(t, "sign", "--key", "builder-a.key", repoDigest).must(t)
	honest := strings.TrimSpace(e.docker(t, "run", "--rm", "--network", "none", image, "cat", "/result.txt").must(t).stdout)

	// A fresh docker builder reuses the signed inline cache.
	fresh()
	out := filepath.Join(e.dir, "out-consumer")
	args = append([]string{"build"}, flags...)
	args = append(args, "--trust-policy", policy, "--cache-from", image, "-o", "type=local,dest="+out, ctx)
	r = e.trustcache(t, args...).must(t)
	if got := result(out); got != honest {
		t.Errorf("consumer built %q; want the signed image's %q from its inline cache\n%s", got, honest, r.stderr)
	}

	// The attacker pushes its own image with inline cache to the tag and
	// signs it with its key: refused, and its output never used.
	fresh()
	attackerCtx := filepath.Join(e.dir, "attacker")
	os.MkdirAll(attackerCtx, 0o755)
	df, _ := os.ReadFile(filepath.Join(ctx, "Dockerfile"))
	os.WriteFile(filepath.Join(attackerCtx, "Dockerfile"), df, 0o644)
	args = append([]string{"buildx", "build"}, flags...)
	args = append(args, "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", image, "--push", attackerCtx)
	e.docker(t, args...).must(t)
	e.trustcache(t, "sign", "--key", "attacker.key", image).must(t)
	poison := strings.TrimSpace(e.docker(t, "run", "--rm", "--network", "none", image, "cat", "/result.txt").must(t).stdout)
	fresh()
	out = filepath.Join(e.dir, "out-consumer-2")
	args = append([]string{"build"}, flags...)
	args = append(args, "--trust-policy", policy, "--cache-from", image, "-o", "type=local,dest="+out, ctx)
	r = e.trustcache(t, args...).must(t)
	if got := result(out); got == poison {
		t.Fatalf("consumer built the attacker's output %q", poison)
	}
	if !strings.Contains(r.stderr, "WARNING: trustcache: dropped cache") {
		t.Errorf("no warning for the attacker's image:\n%s", r.stderr)
	}
}

// TestBuildSignalPassThrough: Ctrl-C (SIGINT to the docker CLI) stops a
// running build through the plugin promptly, with a failing exit status,
// and nothing is exported.
func TestBuildSignalPassThrough(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "ci")
	policy := e.writePolicy(t, "policy.yaml", []builder{{"ci", []string{"ci.pub"}}},
		[]scope{{repos: []string{"**"}, builders: []string{"ci"}}})
	dir := filepath.Join(e.dir, "slow")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+cfg.baseImage+"\nRUN echo "+randomHex(t, 8)+" && sleep 120 && echo done > /done\n"), 0o644)
	out := filepath.Join(e.dir, "out")
	args := append([]string{"trustcache", "build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "-o", "type=local,dest="+out, dir)

	cmd := exec.Command(cfg.docker, args...)
	cmd.Env = e.environ(nil)
	cmd.Dir = e.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the slow step runs, then interrupt.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "sleep 120") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "sleep 120") {
		cmd.Process.Kill()
		t.Fatalf("the build never reached the slow step:\n%s", stderr.String())
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("interrupted build stopped in %s: %v", time.Since(start).Round(time.Millisecond), err)
		if err == nil {
			t.Errorf("an interrupted build exited 0")
		}
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the build did not stop within 45 s of SIGINT:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(out, "done")); err == nil {
		t.Errorf("the interrupted build exported its result")
	}
}

// TestBuildStdinLeftOpen: a build run from a terminal (stdin open, nothing
// typed) ends when buildx ends. The plugin gives buildx its own stdin
// rather than copying it through a pipe; a copy would keep the plugin
// waiting for a keystroke after the build.
func TestBuildStdinLeftOpen(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "ci")
	policy := e.writePolicy(t, "policy.yaml", []builder{{"ci", []string{"ci.pub"}}},
		[]scope{{repos: []string{"**"}, builders: []string{"ci"}}})
	dir := filepath.Join(e.dir, "quick")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+cfg.baseImage+"\nRUN echo "+randomHex(t, 8)+" > /r\n"), 0o644)
	args := append([]string{"trustcache", "build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "-o", "type=local,dest="+filepath.Join(e.dir, "out"), dir)

	stdin, keep, err := os.Pipe() // keep is never written to nor closed while the build runs
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	cmd := exec.Command(cfg.docker, args...)
	cmd.Env = e.environ(nil)
	cmd.Dir = e.dir
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("build with stdin left open: %v\n%s", err, stderr.String())
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the build did not end within 90 s with stdin left open:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(e.dir, "out", "r")); err != nil {
		t.Errorf("the build exported nothing: %v", err)
	}
}
