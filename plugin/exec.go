package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli-plugins/metadata"
)

// dockerCommand returns the docker CLI that invoked the plugin (or "docker")
// and the global options it was given before the plugin's name (--context,
// --config, -H …), so the build runs against the same daemon, context and
// config.
func dockerCommand(pluginName string) (string, []string) {
	bin := os.Getenv(metadata.ReexecEnvvar)
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

// buildStreams are the streams a build runs with.
type buildStreams struct {
	in       io.Reader
	out, err io.Writer
}

// runDocker runs the docker CLI with args, directly (never through a
// shell), with the given streams. SIGINT and SIGTERM received meanwhile are
// passed on to it; the plugin waits for it to stop. A non-zero exit comes
// back as a cli.StatusError with the same code (128+N for a signal).
func runDocker(ctx context.Context, bin string, args []string, s buildStreams) error {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.in, s.out, s.err
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
