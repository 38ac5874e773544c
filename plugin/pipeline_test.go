package plugin

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRunFailureReportedAlike: build and bake report a run the policy
// stopped in one way, the pipeline's: the warning for the cache, the
// summary saying the run did not start, the status naming the command
// (and, for a bake, the target), exit 3. A trust report that cannot be
// written is warned about and does not change the exit status.
func TestRunFailureReportedAlike(t *testing.T) {
	for _, tc := range []struct{ cmd, verb, target string }{
		{"build", "building", ""},
		{"bake", "baking", " of target app"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			dir := isolate(t)
			host := newRegistry(t)
			run(t, "keys", "generate", "--name", "ci")
			trustPolicy(t, dir, host, "    onUntrusted: fail\n")
			unsigned := host + "/team/cache:unsigned"
			pushRandom(t, unsigned)
			report := filepath.Join(dir, "no-such-dir", "report.json")
			var res cmdResult
			if tc.cmd == "bake" {
				f := fakeBake(t, dir, 0)
				bakeDef(t, f.def, map[string]map[string]any{"app": {"cache-from": []any{registryCache(unsigned)}}})
				res = run(t, "bake", "--trust-report", report)
				notRun(t, f.args, "the bake")
			} else {
				args := fakeDocker(t, dir, 0)
				res = run(t, "build", "--trust-report", report, "--cache-from", unsigned, ".")
				notRun(t, args, "the build")
			}
			for _, want := range []string{
				"WARNING: trustcache: blocked cache type=registry,ref=" + unsigned + tc.target + ": untrusted",
				"trustcache: summary: the " + tc.cmd + " did not run; what was decided for its caches:\n",
				"WARNING: trustcache: the trust report was not written",
				"trustcache: not " + tc.verb + ": cache type=registry,ref=" + unsigned + tc.target + " is untrusted (policy onUntrusted: fail)\n",
			} {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("%s stderr lacks %q:\n%s", tc.cmd, want, res.stderr)
				}
			}
			if res.code != ExitUntrusted {
				t.Errorf("%s = exit %d; want %d (the report's failure does not change it)", tc.cmd, res.code, ExitUntrusted)
			}
		})
	}
}
