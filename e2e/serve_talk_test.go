//go:build e2e

package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestServeTalk: a plain `docker buildx build --progress plain` through
// the gateway shows, in its own progress output, what the gateway decided
// for each cache import (the signed one used, pinned to its digest,
// signed by its builder; the unsigned one dropped and why, also among the
// build's warnings), and the
// gateway logs one decision line per import of the build. With
// onUntrusted: fail the client's error names the cache once.
func TestServeTalk(t *testing.T) {
	e := trustEnv(t)
	ctx := e.serveProject(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	signed, evil := repo+":cache", repo+":evil"
	builders := []builder{{"builder-a", []string{filepath.Join(e.dir, "builder-a.pub")}}}
	drop := e.writePolicy(t, "drop.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	fail := e.writePolicy(t, "fail.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}, extra: "    onUntrusted: fail"}})

	// Builder A exports its cache and signs it; an attacker pushes an
	// unsigned one to another tag.
	e.prune(t)
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", drop, "--sign", "--key", "builder-a.key",
		"--cache-to", "type=registry,ref="+signed+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-a"), ctx)
	e.trustcache(t, args...).must(t)
	e.prune(t)
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+evil+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-x"), ctx)
	e.docker(t, args...).must(t)

	policy := filepath.Join(e.dir, "gateway.yaml")
	if err := copyFile(drop, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	gw := e.startGateway(t, policy)
	gwBuilder := "gw-talk-" + randomHex(t, 4)
	e.docker(t, "buildx", "create", "--name", gwBuilder, "--driver", "remote", "unix://"+gw.sock).must(t)
	build := func(out string) []string {
		return []string{"buildx", "build", "--builder", gwBuilder, "--network", cfg.network, "--provenance=false",
			"--progress", "plain", "--cache-from", signed, "--cache-from", evil,
			"-o", "type=local,dest=" + filepath.Join(e.dir, out), ctx}
	}

	e.prune(t)
	r := e.docker(t, build("out-talk")...).must(t)
	progress := r.stderr
	t.Logf("the build's progress:\n%s", progress)
	vertex := regexp.MustCompile(`(?m)^#(\d+) \[trustcache\] cache imports$`).FindStringSubmatch(progress)
	if vertex == nil {
		t.Fatalf("no [trustcache] cache imports step in the build's progress:\n%s", progress)
	}
	n := regexp.QuoteMeta("#" + vertex[1])
	used := regexp.MustCompile(`(?m)^` + n + ` [0-9.]+ used +type=registry,ref=` + regexp.QuoteMeta(signed) +
		` pinned to ` + regexp.QuoteMeta(repo) + `@sha256:[0-9a-f]{64}, signed by builder-a$`)
	if !used.MatchString(progress) {
		t.Errorf("the build's progress does not say %s was used, pinned and signed by builder-a:\n%s", signed, progress)
	}
	dropped := regexp.MustCompile(`(?m)^` + n + ` [0-9.]+ dropped +type=registry,ref=` + regexp.QuoteMeta(evil) + `: .*\S`)
	if m := dropped.FindString(progress); m == "" || !strings.Contains(m, "sign") {
		t.Errorf("the build's progress does not say %s was dropped and why (%q):\n%s", evil, m, progress)
	}
	// And again among the build's warnings, which buildx lists last.
	warning := regexp.MustCompile(`(?m)^(?:\x1b\[0m)? - trustcache gateway: cache ` + regexp.QuoteMeta(evil) + ` not imported: .*\S`)
	if !warning.MatchString(progress) {
		t.Errorf("the build's warnings do not name the dropped cache %s:\n%s", evil, progress)
	}
	for _, ref := range []string{signed, evil} {
		if lines := gw.decisionLines(ref); len(lines) != 1 {
			t.Errorf("gateway log has %d decision lines for %s in one build; want 1:\n%s", len(lines), ref, strings.Join(lines, "\n"))
		}
	}

	// onUntrusted: fail: the error names the unsigned cache once.
	if err := copyFile(fail, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	gw.cmd.Process.Signal(syscall.SIGHUP)
	gw.waitLog(t, `"msg":"policy reloaded"`)
	r = e.docker(t, build("out-fail")...)
	if r.code == 0 {
		t.Fatalf("onUntrusted: fail built anyway:\n%s", r.stderr)
	}
	msg := "cache " + evil + " is untrusted"
	if c := strings.Count(r.stderr, msg); c != 1 {
		t.Errorf("the failed build's output names %q %d times; want once:\n%s", msg, c, r.stderr)
	}
}
