//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestServeFrontends: a frontend image runs inside buildkitd, where the
// gateway cannot see what it asks BuildKit for (cache imports among it).
// Directly against buildkitd a "# syntax=" line runs any image as the
// frontend; through the gateway the line is not followed (the built-in
// Dockerfile frontend builds), and a frontend image named where the
// gateway reads it (gateway.v0's source, BUILDKIT_SYNTAX) runs only when
// the policy lists it pinned by digest.
func TestServeFrontends(t *testing.T) {
	e := trustEnv(t)
	buildctl := filepath.Join(filepath.Dir(cfg.buildx), "buildctl")
	if _, err := os.Stat(buildctl); err != nil {
		t.Skipf("no buildctl at %s", buildctl)
	}
	// A "frontend" image that says it ran and fails: enough to see that
	// buildkitd ran it. A real one could ask for any cache import.
	repo := uniqueRepo(t) + "/frontend"
	e.crane(t, "mutate", cfg.baseImage, "--entrypoint", "/bin/sh,-c,echo trustcache-e2e-frontend-ran >&2; exit 3", "-t", repo+":1").must(t)
	digest := strings.TrimSpace(e.crane(t, "digest", repo+":1").must(t).stdout)
	fe := repo + "@" + digest
	ctx := e.nonceProject(t, "frontend-project", "# syntax="+fe+"\nFROM %BASE%\nRUN echo built-in-%NONCE% > /result.txt\n")
	const ran = "exit code: 3" // how buildkitd reports the image's exit

	buildctlArgs := func(addr, out string, opts ...string) []string {
		a := []string{"--addr", addr, "build", "--local", "context=" + ctx, "--local", "dockerfile=" + ctx,
			"--opt", "force-network-mode=" + cfg.network, "--output", "type=local,dest=" + filepath.Join(e.dir, out)}
		return append(a, opts...)
	}

	// The hole, directly against buildkitd: the "# syntax=" image runs.
	r := e.run(t, nil, buildctl, buildctlArgs(cfg.buildkitAddr, "out-direct", "--frontend", "dockerfile.v0")...)
	if r.code == 0 || !strings.Contains(r.stderr, ran) {
		t.Fatalf("directly against buildkitd, want the # syntax= image to run and fail with %q; got %v", ran, r)
	}

	e.genKey(t, "builder-a")
	builders := []builder{{"builder-a", []string{filepath.Join(e.dir, "builder-a.pub")}}}
	scopes := []scope{{repos: []string{uniqueRepo(t)}, builders: []string{"builder-a"}}}
	plain := e.writePolicy(t, "plain.yaml", builders, scopes)
	allowing := e.writePolicy(t, "allowing.yaml", builders, scopes)
	f, err := os.OpenFile(allowing, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("frontends: [\"" + fe + "\"]\n")
	f.Close()
	policy := filepath.Join(e.dir, "gateway.yaml")
	if err := copyFile(plain, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	gw := e.startGateway(t, policy)
	addr := "unix://" + gw.sock

	// Through the gateway the "# syntax=" line is not followed: buildctl
	// and plain buildx build with the built-in frontend.
	e.run(t, nil, buildctl, buildctlArgs(addr, "out-buildctl", "--frontend", "dockerfile.v0")...).must(t)
	if got := readResult(t, filepath.Join(e.dir, "out-buildctl")); !strings.HasPrefix(got, "built-in-") {
		t.Errorf("buildctl through the gateway built %q; want the built-in frontend's result", got)
	}
	gwBuilder := "gwfe-" + randomHex(t, 4)
	e.docker(t, "buildx", "create", "--name", gwBuilder, "--driver", "remote", addr).must(t)
	buildx := func(out string, extra ...string) result {
		a := []string{"buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false"}
		a = append(a, extra...)
		return e.docker(t, append(a, "-o", "type=local,dest="+filepath.Join(e.dir, out), ctx)...)
	}
	r = buildx("out-buildx").must(t)
	if got := readResult(t, filepath.Join(e.dir, "out-buildx")); !strings.HasPrefix(got, "built-in-") {
		t.Errorf("buildx through the gateway built %q; want the built-in frontend's result", got)
	}

	// A frontend image the policy does not list is refused, with the
	// reason and the way to allow it in the client's output.
	want := `trustcache gateway: not building: frontend image "` + fe + `" is not allowed: the policy's frontends list does not name it`
	r = e.run(t, nil, buildctl, buildctlArgs(addr, "out-gw-refused", "--frontend", "gateway.v0", "--opt", "source="+fe)...)
	if r.code == 0 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "frontends: [REPOSITORY@sha256:") || strings.Contains(r.stderr, ran) {
		t.Errorf("buildctl --frontend gateway.v0 through the gateway: want refused with %q; got %v", want, r)
	}
	r = buildx("out-syntax-refused", "--build-arg", "BUILDKIT_SYNTAX="+fe)
	if r.code == 0 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, ran) {
		t.Errorf("buildx with BUILDKIT_SYNTAX through the gateway: want refused with %q; got %v", want, r)
	}
	r = buildx("out-tag-refused", "--build-arg", "BUILDKIT_SYNTAX="+repo+":1")
	if r.code == 0 || !strings.Contains(r.stderr, "it is not pinned by digest") {
		t.Errorf("buildx with BUILDKIT_SYNTAX by tag through the gateway: want refused as not pinned; got %v", r)
	}
	if !strings.Contains(gw.log.String(), `"msg":"frontend"`) || !strings.Contains(gw.log.String(), `"image":"`+fe+`"`) {
		t.Errorf("gateway log lacks the frontend refusals:\n%s", gw.log)
	}

	// Listed in the policy (reloaded with SIGHUP): the image runs, as it
	// would directly.
	if err := copyFile(allowing, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	gw.cmd.Process.Signal(syscall.SIGHUP)
	gw.waitLog(t, `"msg":"policy reloaded"`)
	r = e.run(t, nil, buildctl, buildctlArgs(addr, "out-gw-allowed", "--frontend", "gateway.v0", "--opt", "source="+fe)...)
	if r.code == 0 || !strings.Contains(r.stderr, ran) {
		t.Errorf("an allowed frontend image through the gateway: want it run (failing with %q); got %v", ran, r)
	}
	r = buildx("out-syntax-allowed", "--build-arg", "BUILDKIT_SYNTAX="+fe)
	if r.code == 0 || !strings.Contains(r.stderr, ran) {
		t.Errorf("an allowed BUILDKIT_SYNTAX through the gateway: want it run (failing with %q); got %v", ran, r)
	}
}
