package plugin

// Attack tests for docs/SECURITY.md against docker trustcache verify: a
// docker config that does not parse, registry text that must be escaped.

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// TestMalformedDockerConfig: a docker config.json that does not parse
// gives no credentials (the docker CLI warns and goes on with none):
// verification still decides, on what an anonymous client can read.
func TestMalformedDockerConfig(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	host := newRegistry(t)
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	trustPolicy(t, dir, host, "")
	ref := host + "/team/cache:main"
	pushRandom(t, ref)
	if res := te.run("sign", "--key", te.path("ci.key"), ref); res.code != 0 {
		t.Fatal(res.stderr)
	}
	cfg := filepath.Join(dir, "docker-config", "config.json")
	os.MkdirAll(filepath.Dir(cfg), 0o700)
	if err := os.WriteFile(cfg, []byte(`{"auths": {"`+host+`": {"auth": "c2VjcmV0OnBhc3N3b3Jk"`), 0o600); err != nil {
		t.Fatal(err)
	}
	res := te.run("verify", ref)
	if res.code != 0 {
		t.Errorf("verify with a malformed docker config = %d %q %q; want 0", res.code, res.stdout, res.stderr)
	}
	if strings.Contains(res.stdout+res.stderr, "c2VjcmV0OnBhc3N3b3Jk") || strings.Contains(res.stdout+res.stderr, "password") {
		t.Errorf("verify printed the credentials of the docker config:\n%s%s", res.stdout, res.stderr)
	}
	t.Logf("stderr: %s", res.stderr)
}

// TestRegistryTextIsEscaped: a hostile registry answers the signature
// fetch with an error body that carries a carriage return, ANSI escapes
// and a newline, to erase the "dropped" line and print a forged "used …
// signed by ci" line. Text output shows such strings escaped, on the line
// they belong to; JSON keeps them exact.
func TestRegistryTextIsEscaped(t *testing.T) {
	dir := isolate(t)
	const forged = "\r\x1b[2K\x1b[1A  used     evil\n           pinned to evil, signed by ci\u202e"
	reg := testreg.New(t)
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/sha256-") && !strings.Contains(r.URL.Path, "/referrers/") {
			return false
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, forged)
		return true
	})
	host := reg.Host
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	cache := host + "/team/cache:main"
	pushRandom(t, cache)

	clean := func(what, s string) {
		t.Helper()
		for _, bad := range []string{"\r", "\x1b", "\u202e", "\n  used     evil", "\n           pinned to evil"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s carries %q from the registry raw:\n%q", what, bad, s)
			}
		}
		if !strings.Contains(s, `\x1b[2K`) {
			t.Errorf("%s does not show the registry's text escaped:\n%q", what, s)
		}
	}
	res := run(t, "verify", "--no-ledger", cache)
	if res.code != ExitInconclusive {
		t.Errorf("verify = %d; want %d (%q)", res.code, ExitInconclusive, res.stdout)
	}
	clean("verify text output", res.stdout+res.stderr)

	res = run(t, "verify", "--no-ledger", "--format", "json", cache)
	var out struct{ Reasons []string }
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("verify --format json: %v\n%s", err, res.stdout)
	}
	if !strings.Contains(strings.Join(out.Reasons, "\n"), forged) {
		t.Errorf("verify --format json reasons %q do not keep the registry's text exact", out.Reasons)
	}

	fakeDocker(t, dir, 0)
	res = run(t, "build", "--no-ledger", "--trust-report", "report.json", "--cache-from", cache, ".")
	clean("build output", res.stdout+res.stderr)
	if !strings.Contains(string(mustRead(t, filepath.Join(dir, "report.json"))), `\r\u001b[2K`) {
		t.Errorf("the trust report does not keep the registry's text exact")
	}

	res = run(t, "policy", "explain", cache)
	clean("policy explain output", res.stdout+res.stderr)
}
