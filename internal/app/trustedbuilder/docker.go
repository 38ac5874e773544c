package trustedbuilder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Docker runs the docker CLI: the program, the global options it was given
// before the plugin's name (--context, --config, -H …) and extra
// environment. A builder talks to the engine only through it: the docker
// CLI already knows the user's context, TLS and credentials, and the
// plugin links no API client (its start-up stays the metadata command's,
// internal/depcheck).
type Docker struct {
	Bin     string   // default "docker"
	Globals []string // inserted before every command
	Env     []string // KEY=VALUE added to the environment
}

// commandError is a docker command that failed: its words and what it
// said on stderr.
type commandError struct {
	args   []string
	stderr string
	err    error
}

func (e *commandError) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("docker %s: %s", strings.Join(e.args, " "), msg)
}

func (e *commandError) Unwrap() error { return e.err }

// cmd returns the exec.Cmd of docker args.
func (d Docker) cmd(ctx context.Context, args ...string) *exec.Cmd {
	bin := d.Bin
	if bin == "" {
		bin = "docker"
	}
	c := exec.CommandContext(ctx, bin, append(append([]string(nil), d.Globals...), args...)...)
	if d.Env != nil {
		c.Env = append(os.Environ(), d.Env...)
	}
	return c
}

// run runs docker args and returns its standard output, trimmed. A failure
// is a *commandError naming the command and its stderr.
func (d Docker) run(ctx context.Context, args ...string) (string, error) {
	c := d.cmd(ctx, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return strings.TrimSpace(out.String()), &commandError{args: short(args), stderr: errb.String(), err: err}
	}
	return strings.TrimSpace(out.String()), nil
}

// short keeps a failed command's first words for its message: enough to
// tell which step failed, without a long docker run line.
func short(args []string) []string {
	if len(args) > 3 {
		return append(append([]string(nil), args[:3]...), "…")
	}
	return args
}

// exists reports whether docker args succeeds: an inspect of something
// that may not be there. A docker that cannot be reached is an error, not
// "absent".
func (d Docker) exists(ctx context.Context, args ...string) (bool, error) {
	_, err := d.run(ctx, args...)
	if err == nil {
		return true, nil
	}
	var ce *commandError
	if errors.As(err, &ce) && isNotFound(ce.stderr) {
		return false, nil
	}
	return false, err
}

// isNotFound tells the docker CLI's "no such …" answers from other
// failures (a daemon that does not answer).
func isNotFound(stderr string) bool {
	s := strings.ToLower(stderr)
	for _, m := range []string{"no such", "not found", "no builder"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// Ping checks that the docker engine answers and returns its version.
func (d Docker) Ping(ctx context.Context) (string, error) {
	v, err := d.run(ctx, "version", "--format", "{{.Server.Version}}")
	if err != nil || v == "" {
		if err == nil {
			err = errors.New("no server version")
		}
		return "", fmt.Errorf("the docker engine is not reachable (a trusted builder runs BuildKit and the gateway as containers of it): %w", err)
	}
	return v, nil
}
