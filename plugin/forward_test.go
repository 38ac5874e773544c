package plugin

import (
	"slices"
	"strings"
	"testing"

	"github.com/docker/cli/cli/command"
	"github.com/google/go-cmp/cmp"
)

func TestForward(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string // the docker CLI's argv
	}{
		{[]string{"prune", "-af"}, []string{"buildx", "prune", "-af"}},
		{[]string{"prune", "--help"}, []string{"buildx", "prune", "--help"}},
		{[]string{"ls"}, []string{"buildx", "ls"}},
		{[]string{"du", "--verbose", "--filter", "until=24h"}, []string{"buildx", "du", "--verbose", "--filter", "until=24h"}},
		{[]string{"inspect", "--bootstrap", "my builder"}, []string{"buildx", "inspect", "--bootstrap", "my builder"}},
		{[]string{"imagetools", "inspect", "--raw", "alpine:3"}, []string{"buildx", "imagetools", "inspect", "--raw", "alpine:3"}},
		{[]string{"history", "ls", "--format", "{{.Ref}}"}, []string{"buildx", "history", "ls", "--format", "{{.Ref}}"}},
		{[]string{"f", "--print", "--set", "*.cache-from=x"}, []string{"buildx", "bake", "--print", "--set", "*.cache-from=x"}},
		{[]string{"create", "--name", "b1", "--driver", "docker-container", "--use"}, []string{"buildx", "create", "--name", "b1", "--driver", "docker-container", "--use"}},
		{[]string{"version"}, []string{"buildx", "version"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			te := newTestEnv(t, nil)
			argsFile := te.fakeDocker(0)
			res := te.run(tc.args...)
			if res.code != 0 {
				t.Fatalf("%q = exit %d, %q", tc.args, res.code, res.stderr)
			}
			if diff := cmp.Diff(tc.want, readArgs(t, argsFile)); diff != "" {
				t.Errorf("%q ran docker (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestForwardExitCode(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	te.fakeDocker(7)
	if res := te.run("prune", "-f"); res.code != 7 {
		t.Errorf("prune with docker exiting 7 = exit %d, %q; want 7", res.code, res.stderr)
	}
}

func TestForwardCommands(t *testing.T) {
	t.Parallel()
	taken := []string{"build", "sign", "verify", "keys", "policy", "install", "uninstall", "prune", "f"}
	var names []string
	for _, c := range newForwardCommands(nil, nil, taken) {
		names = append(names, c.Name())
		if !c.Hidden || !c.DisableFlagParsing {
			t.Errorf("forwarding command %q: Hidden %v, DisableFlagParsing %v; want both", c.Name(), c.Hidden, c.DisableFlagParsing)
		}
		for _, n := range append([]string{c.Name()}, c.Aliases...) {
			if slices.Contains(taken, n) || slices.Contains(neverForwarded, n) {
				t.Errorf("forwarding command %q takes the name %q", c.Name(), n)
			}
		}
	}
	want := []string{"create", "dap", "debug", "dial-stdio", "du", "history", "imagetools", "inspect", "ls", "replay", "rm", "stop", "use", "version"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("newForwardCommands(%q) (-want +got):\n%s", taken, diff)
	}
}

// The root command holds each name once, and every buildx subcommand
// trustcache does not use itself is forwarded.
func TestForwardRegistered(t *testing.T) {
	t.Parallel()
	dockerCLI, err := command.NewDockerCli()
	if err != nil {
		t.Fatal(err)
	}
	root := NewRootCommand(dockerCLI, "test")
	seen := map[string]string{}
	for _, c := range root.Commands() {
		for _, n := range append([]string{c.Name()}, c.Aliases...) {
			if prev, dup := seen[n]; dup {
				t.Errorf("%q is both %q and %q", n, prev, c.Use)
			}
			seen[n] = c.Use
		}
	}
	for _, sub := range buildxSubcommands {
		if _, ok := seen[sub.name]; !ok {
			t.Errorf("docker trustcache %s: no such command; want it forwarded to docker buildx %s", sub.name, sub.name)
		}
	}
	if use, ok := seen["b"]; ok && !strings.HasPrefix(use, "build ") {
		t.Errorf(`"b" runs %q; want it to build through trustcache or not exist`, use)
	}
}
