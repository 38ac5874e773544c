package plugin

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-cmp/cmp"
)

// writeExecutable writes a script at path (creating its directory) with mode.
func writeExecutable(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

// TestBuildxPluginSearchOrder: the docker CLI's order — the config's extra
// directories, $DOCKER_CONFIG/cli-plugins, the system directories — and only
// executable files count.
func TestBuildxPluginSearchOrder(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	env, dir := te.env, te.dir
	extra := filepath.Join(dir, "extra")
	system := filepath.Join(dir, "system")
	env.PluginDirs = []string{filepath.Join(dir, "missing"), system}
	cfg := &configfile.ConfigFile{CLIPluginsExtraDirs: []string{extra}}
	inConfig := filepath.Join(env.ConfigDir, "cli-plugins", "docker-buildx")
	inExtra := filepath.Join(extra, "docker-buildx")
	inSystem := filepath.Join(system, "docker-buildx")

	if p, ok := buildxPlugin(env, cfg); ok {
		t.Fatalf("buildxPlugin with none installed = %q; want not found", p)
	}
	writeExecutable(t, inSystem, "#!/bin/sh\n", 0o755)
	writeExecutable(t, inConfig, "#!/bin/sh\n", 0o644) // not executable: skipped
	if p, _ := buildxPlugin(env, cfg); p != inSystem {
		t.Errorf("buildxPlugin = %q; want the system one %q (the config one is not executable)", p, inSystem)
	}
	if err := os.Chmod(inConfig, 0o755); err != nil {
		t.Fatal(err)
	}
	if p, _ := buildxPlugin(env, cfg); p != inConfig {
		t.Errorf("buildxPlugin = %q; want %q before the system directories", p, inConfig)
	}
	if err := os.MkdirAll(inExtra, 0o755); err != nil { // a directory: skipped
		t.Fatal(err)
	}
	if p, _ := buildxPlugin(env, cfg); p != inConfig {
		t.Errorf("buildxPlugin = %q; want %q (a directory named docker-buildx is no plugin)", p, inConfig)
	}
	os.Remove(inExtra)
	writeExecutable(t, inExtra, "#!/bin/sh\n", 0o755)
	if p, _ := buildxPlugin(env, cfg); p != inExtra {
		t.Errorf("buildxPlugin = %q; want %q (cliPluginsExtraDirs come first)", p, inExtra)
	}
}

// TestBuildRunsBuildxPluginDirectly: with docker-buildx installed the build
// runs it as the docker CLI would ("buildx", "build", ...) and never starts
// a second docker CLI; without it, the build goes through the docker CLI.
func TestBuildRunsBuildxPluginDirectly(t *testing.T) {
	dir := isolate(t)
	record := func(file string) string {
		return "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > " + file + "\n"
	}
	dockerArgs, buildxArgs := filepath.Join(dir, "docker-args"), filepath.Join(dir, "buildx-args")
	writeExecutable(t, filepath.Join(dir, "docker"), record(dockerArgs), 0o755)
	t.Setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", filepath.Join(dir, "docker"))
	run(t, "keys", "generate", "--name", "ci")
	os.WriteFile("policy.yaml", []byte("version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"**\"]\n    builders: [ci]\n"), 0o644)
	os.WriteFile("Dockerfile", []byte("FROM scratch\n"), 0o644)

	if res := run(t, "build", "--trust-policy", "policy.yaml", "-t", "app", "."); res.code != 0 {
		t.Fatalf("build without docker-buildx = %d %s", res.code, res.stderr)
	}
	want := []string{"buildx", "build", "-t", "app", "."}
	if diff := cmp.Diff(want, readArgs(t, dockerArgs)); diff != "" {
		t.Errorf("without docker-buildx, docker CLI argv (-want +got):\n%s", diff)
	}
	os.Remove(dockerArgs)

	writeExecutable(t, filepath.Join(config.Dir(), "cli-plugins", "docker-buildx"), record(buildxArgs), 0o755)
	if res := run(t, "build", "--trust-policy", "policy.yaml", "-t", "app", "."); res.code != 0 {
		t.Fatalf("build with docker-buildx = %d %s", res.code, res.stderr)
	}
	if diff := cmp.Diff(want, readArgs(t, buildxArgs)); diff != "" {
		t.Errorf("docker-buildx argv (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(dockerArgs); err == nil {
		t.Errorf("the docker CLI was run although docker-buildx is installed")
	}

	// buildx reads DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND to know the docker
	// CLI runs it: kept when the docker CLI ran the plugin, else set.
	env := filepath.Join(dir, "buildx-env")
	writeExecutable(t, filepath.Join(config.Dir(), "cli-plugins", "docker-buildx"),
		"#!/bin/sh\nprintf '%s' \"${DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND-unset}\" > "+env+"\n", 0o755)
	for _, c := range []struct{ set, want string }{{filepath.Join(dir, "docker"), filepath.Join(dir, "docker")}, {"", "docker"}} {
		t.Setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", c.set)
		if c.set == "" {
			os.Unsetenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND")
		}
		if res := run(t, "build", "--trust-policy", "policy.yaml", "."); res.code != 0 {
			t.Fatalf("build = %d %s", res.code, res.stderr)
		}
		if got, _ := os.ReadFile(env); string(got) != c.want {
			t.Errorf("with DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND=%q, docker-buildx ran with %q; want %q", c.set, got, c.want)
		}
	}
}

// TestCLIStreams: a child gets the process's own standard files when the
// docker CLI's streams are them (a terminal stays a terminal, no copy from
// stdin outlives the child), and the streams as they are otherwise.
func TestCLIStreams(t *testing.T) {
	t.Parallel()
	std, err := command.NewDockerCli(command.WithStandardStreams())
	if err != nil {
		t.Fatal(err)
	}
	s := cliStreams(std)
	if s.in != os.Stdin || s.out != os.Stdout || s.err != os.Stderr {
		t.Errorf("cliStreams(standard streams) = %T %T %T; want os.Stdin, os.Stdout, os.Stderr", s.in, s.out, s.err)
	}
	var out, errOut bytes.Buffer
	buffered, err := command.NewDockerCli(
		command.WithInputStream(io.NopCloser(strings.NewReader(""))),
		command.WithOutputStream(&out),
		command.WithErrorStream(&errOut),
	)
	if err != nil {
		t.Fatal(err)
	}
	s = cliStreams(buffered)
	if s.in == io.Reader(os.Stdin) || s.out == io.Writer(os.Stdout) || s.err == io.Writer(os.Stderr) {
		t.Errorf("cliStreams(buffers) passed a standard file on")
	}
}
