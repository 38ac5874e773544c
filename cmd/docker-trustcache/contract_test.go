package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/contract.golden")

// contractCases are command lines of the plugin binary whose output is the
// docker CLI plugin contract as users and the docker CLI see it: help in
// the docker CLI's layout, flag and argument errors with their exit
// statuses, the global options (accepted, checked, applied), completion,
// and metadata. It matches docker/cli's plugin.Run except where the plugin
// is stricter: an unknown command fails at every level (plugin.Run prints
// the usage and exits 0) and "trustcache help COMMAND" is the command's
// help. Any difference from the golden is a change of the contract.
var contractCases = [][]string{
	{"docker-cli-plugin-metadata"},
	{},
	{"--help"},
	{"help"},
	{"help", "trustcache", "verify"},
	{"help", "bogus"},
	{"trustcache"},
	{"trustcache", "--help"},
	{"trustcache", "-h"},
	{"trustcache", "help", "verify"},
	{"trustcache", "bogus"},
	{"trustcache", "verfiy", "registry.example/cache:main"},
	{"trustcache", "keys", "gen"},
	{"trustcache", "ledger", "ls", "extra"},
	{"trustcache", "help", "keys", "id"},
	{"bogus"},
	{"trustcache", "--version"},
	{"trustcache", "verify", "--help"},
	{"trustcache", "verify"},
	{"trustcache", "verify", "--bogus"},
	{"trustcache", "--bogus", "verify"},
	{"trustcache", "keys", "--help"},
	{"trustcache", "keys", "generate", "--help"},
	{"trustcache", "policy", "--help"},
	{"trustcache", "ledger", "ls", "--help"},
	{"trustcache", "serve", "--help"},
	{"trustcache", "install", "--help"},
	{"trustcache", "build", "--help"},
	{"--bogus", "trustcache", "ledger", "ls"},
	{"--config", "$TMP/other-config", "trustcache", "ledger", "ls"},
	{"--debug", "--log-level", "debug", "-H", "unix:///nonexistent", "trustcache", "ledger", "ls"},
	// (With --debug, the docker CLI's framework also logged its
	// OpenTelemetry exporter's errors, such as a --tlscacert that does not
	// exist; the plugin exports no telemetry of its own now.)
	{"--tls", "--tlsverify", "--tlscacert", "ca.pem", "--tlscert", "c.pem", "--tlskey", "k.pem", "trustcache", "ledger", "ls"},
	{"-l", "bogus", "trustcache", "ledger", "ls"},
	{"-H", "a", "-H", "b", "trustcache", "ledger", "ls"},
	{"--context", "default", "-H", "tcp://x", "trustcache", "ledger", "ls"},
	{"__complete", ""},
	{"__complete", "trustcache", ""},
	{"__complete", "trustcache", "v"},
	{"__complete", "trustcache", "verify", "--"},
	{"__completeNoDesc", "trustcache", "keys", ""},
}

// dockerHelpFollows ends the part of build's --help that the plugin owns;
// the docker CLI's own help follows it.
const dockerHelpFollows = "docker buildx build options follow.\n"

// ownOutput is what the golden records of a command's stdout: what the
// plugin owns. After build's own --help the plugin runs the docker CLI's
// `buildx build --help`, whose text depends on the docker CLI's version and
// on which CLI plugins the machine has: the golden records only that it
// printed something.
func ownOutput(t *testing.T, args []string, stdout string) string {
	t.Helper()
	own, docker, ok := strings.Cut(stdout, dockerHelpFollows)
	if !ok {
		return stdout
	}
	if strings.TrimSpace(docker) == "" {
		t.Errorf("%q: nothing followed %q: the docker CLI's help was not run", args, strings.TrimSpace(dockerHelpFollows))
	}
	return own + dockerHelpFollows + "[the docker CLI's help]\n"
}

func TestPluginContractGolden(t *testing.T) {
	bin := pluginBinary(t)
	dir := t.TempDir()
	for _, d := range []string{"docker-config", "home", "work"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "DOCKER_") && !strings.HasPrefix(k, "TRUSTCACHE_") && k != "HOME" && k != "DEBUG" {
			env = append(env, kv)
		}
	}
	// The docker CLI's own output depends on the daemon it reaches (it hides
	// experimental commands such as checkpoint when a non-experimental daemon
	// answers): pin the daemon to an address nothing listens on, so the
	// result is the same with and without a running dockerd (issue 26).
	env = append(env, "DOCKER_CONFIG="+filepath.Join(dir, "docker-config"), "HOME="+filepath.Join(dir, "home"),
		"DOCKER_HOST=unix://"+filepath.Join(dir, "no-daemon.sock"),
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=", "TZ=UTC", "LANG=C", "LC_ALL=C")
	var got strings.Builder
	for _, args := range contractCases {
		args = append([]string(nil), args...)
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "$TMP", dir)
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = filepath.Join(dir, "work")
		cmd.Env = env
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		fmt.Fprintf(&got, "### docker-trustcache %s\nexit status %d\n--- stdout\n%s--- stderr\n%s\n",
			strings.Join(args, " "), code, ownOutput(t, args, stdout.String()), stderr.String())
	}
	out := strings.ReplaceAll(got.String(), dir, "$TMP")
	out = strings.ReplaceAll(out, testVersion, "$VERSION")
	path := filepath.Join("testdata", "contract.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s (go test -run TestPluginContractGolden -update writes it): %v", path, err)
	}
	if string(want) != out {
		wl, gl := strings.Split(string(want), "\n"), strings.Split(out, "\n")
		for i := 0; i < len(wl) || i < len(gl); i++ {
			var w, g string
			if i < len(wl) {
				w = wl[i]
			}
			if i < len(gl) {
				g = gl[i]
			}
			if w != g {
				t.Fatalf("%s differs from line %d:\nwant: %q\ngot:  %q\n(go test -run TestPluginContractGolden -update rewrites it, if the change is meant)", path, i+1, w, g)
			}
		}
	}
}
