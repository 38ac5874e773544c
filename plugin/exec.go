package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli/config/configfile"

	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
)

// dockerCommand returns the docker CLI that invoked the plugin (or "docker")
// and the global options it was given before the plugin's name (--context,
// --config, -H …), so the build runs against the same daemon, context and
// config.
func dockerCommand(env *Env, pluginName string) (string, []string) {
	bin := env.getenv(metadata.ReexecEnvvar)
	if bin == "" {
		bin = "docker"
	}
	var globals []string
	for _, a := range os.Args[1:] {
		if a == pluginName {
			break
		}
		globals = append(globals, a)
	}
	if len(globals) == len(os.Args)-1 {
		globals = nil // not invoked through the docker CLI
	}
	return bin, globals
}

// systemPluginDirs are the docker CLI's platform plugin directories, searched
// after the config's extra directories and $DOCKER_CONFIG/cli-plugins
// (docker/cli cli-plugins/manager; Linux and macOS): processEnv's
// Env.PluginDirs.
var systemPluginDirs = []string{
	"/usr/local/lib/docker/cli-plugins",
	"/usr/local/libexec/docker/cli-plugins",
	"/usr/lib/docker/cli-plugins",
	"/usr/libexec/docker/cli-plugins",
}

// buildxPlugin returns the docker-buildx plugin the docker CLI would run for
// "docker buildx", found in the docker CLI's plugin directories in its
// order: the config's cliPluginsExtraDirs, $DOCKER_CONFIG/cli-plugins, the
// system directories. The build runs it directly, with the argv the docker
// CLI would give it (global options, "buildx", the command): going through
// the docker CLI again costs a second docker CLI start-up plus the buildx
// metadata command the CLI runs before every plugin, about 150 ms on a
// fully cached build (docs/performance.md). Not found: false, and the build
// goes through the docker CLI, which says what is missing.
func buildxPlugin(env *Env, cfg *configfile.ConfigFile) (string, bool) {
	var dirs []string
	if cfg != nil {
		dirs = append(dirs, cfg.CLIPluginsExtraDirs...)
	}
	dirs = append(dirs, filepath.Join(env.ConfigDir, "cli-plugins"))
	for _, d := range append(dirs, env.PluginDirs...) {
		path := filepath.Join(d, metadata.NamePrefix+"buildx")
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return path, true
		}
	}
	return "", false
}

// buildxCommand returns the program, the argv prefix (up to and including
// "buildx") and the extra environment that run "docker buildx": the buildx
// plugin itself when it is found (see buildxPlugin), else the docker CLI.
// A plugin tells the docker CLI ran it from DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND
// (without it buildx runs standalone and parses another command line): set
// when the plugin itself was not run by the docker CLI.
func buildxCommand(env *Env, cfg *configfile.ConfigFile) (string, []string, []string) {
	docker, globals := dockerCommand(env, pluginName)
	argv := append(globals, "buildx")
	p, ok := buildxPlugin(env, cfg)
	if !ok {
		return docker, argv, nil
	}
	var extra []string
	if env.getenv(metadata.ReexecEnvvar) == "" {
		extra = []string{metadata.ReexecEnvvar + "=" + docker}
	}
	return p, argv, extra
}

// buildStreams are the streams (and extra environment) a build runs with.
type buildStreams struct {
	in       io.Reader
	out, err io.Writer
	env      []string // KEY=VALUE, added to the plugin's environment
}

// cliStreams returns the docker CLI's streams for a child process. When
// they are this process's own (the plugin framework makes them of
// os.Stdin, os.Stdout and os.Stderr when the docker CLI runs the plugin),
// the child gets those files themselves, as the docker CLI gives its
// plugins: a terminal stays a terminal (buildx shows its interactive
// progress), and nothing copies between pipes — a copy from a terminal's
// stdin would keep the plugin waiting for a keystroke after the child has
// exited. Streams of anything else (tests' buffers, whose FD is 0) are
// passed as they are.
func cliStreams(dockerCLI command.Cli) buildStreams {
	if dockerCLI.Out().FD() == os.Stdout.Fd() && dockerCLI.Err().FD() == os.Stderr.Fd() {
		return buildStreams{in: os.Stdin, out: os.Stdout, err: os.Stderr}
	}
	return buildStreams{in: dockerCLI.In(), out: dockerCLI.Out(), err: dockerCLI.Err()}
}

// runDocker runs bin (the docker CLI, or a docker CLI plugin run as the
// docker CLI runs it) with args, directly (never through a shell), with the
// given streams. SIGINT and SIGTERM received meanwhile are
// passed on to it; the plugin waits for it to stop. A non-zero exit comes
// back as a cli.StatusError with the same code (128+N for a signal).
func runDocker(ctx context.Context, bin string, args []string, s buildStreams) error {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.in, s.out, s.err
	if s.env != nil {
		cmd.Env = append(os.Environ(), s.env...)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			_ = cmd.Process.Signal(sig)
		case <-ctx.Done():
			_ = cmd.Process.Signal(os.Interrupt)
			ctx = context.Background() // signal once; then wait for it to stop
		case err := <-done:
			return exitStatus(err)
		}
	}
}

// exitStatus turns a finished command's error into the exit status the
// plugin exits with.
func exitStatus(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return cli.StatusError{StatusCode: 128 + int(ws.Signal())}
	}
	return cli.StatusError{StatusCode: ee.ExitCode()}
}
