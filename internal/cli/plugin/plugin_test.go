package plugin

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli/config"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
)

var testMeta = metadata.Metadata{SchemaVersion: "0.1.0", Vendor: "test", Version: "v0.0.1"}

// testPlugin is a "trustcache" command with a runnable subcommand "probe"
// (which calls body) and a management command "group".
func testPlugin(body func(cmd *cobra.Command, args []string) error) *cobra.Command {
	root := &cobra.Command{
		Use:           "trustcache",
		Short:         "Test plugin",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return PersistentPreRunE(cmd, args)
		},
	}
	probe := &cobra.Command{Use: "probe [ARG...]", Short: "Run the probe", RunE: body}
	probe.Flags().String("format", "text", "Output format")
	group := &cobra.Command{Use: "group", Short: "A group of commands"}
	group.AddCommand(&cobra.Command{Use: "leaf", Short: "A leaf", RunE: func(*cobra.Command, []string) error { return nil }})
	root.AddCommand(probe, group)
	return root
}

// runArgs runs the test plugin with args and returns its stdout, stderr
// and error.
func runArgs(t *testing.T, body func(*cobra.Command, []string) error, args ...string) (string, string, error) {
	t.Helper()
	prev := config.Dir()
	t.Cleanup(func() { config.SetDir(prev) })
	var out, errOut bytes.Buffer
	dockerCLI := command.NewDockerCli(io.NopCloser(strings.NewReader("")), &out, &errOut)
	err := run(dockerCLI, testPlugin(body), testMeta, args)
	return out.String(), errOut.String(), err
}

func noop(*cobra.Command, []string) error { return nil }

func TestGlobalOptionsApplied(t *testing.T) {
	t.Setenv("DEBUG", "")
	dir := t.TempDir()
	var sawDir string
	_, _, err := runArgs(t, func(cmd *cobra.Command, args []string) error {
		sawDir = config.Dir()
		if strings.Join(args, " ") != "a b" {
			t.Errorf("args = %q; want the command's own arguments only", args)
		}
		return nil
	}, "--config", dir, "-D", "-l", "warn", "--tls", "--tlsverify", "--tlscacert", "ca", "-H", "unix:///x", "trustcache", "probe", "--format", "json", "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if sawDir != dir {
		t.Errorf("config dir in the command = %q; want --config %q", sawDir, dir)
	}
	if os.Getenv("DEBUG") != "1" {
		t.Errorf("--debug: DEBUG = %q; want 1 (buildx and the other programs run inherit it)", os.Getenv("DEBUG"))
	}
}

func TestGlobalOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--bogus", "trustcache", "probe"}, "unknown flag: --bogus\n\nUsage:  docker [OPTIONS] trustcache [ARG...]\n\nRun 'docker --help' for more information", 125},
		{[]string{"-H", "unix:///a", "-H", "unix:///b", "trustcache", "probe"}, `invalid argument "unix:///b" for "-H, --host" flag: specify only one -H`, 125},
		{[]string{"-c", "default", "-H", "tcp://x", "trustcache", "probe"}, "conflicting options: cannot specify both --host and --context", 0},
	} {
		_, _, err := runArgs(t, noop, tc.args...)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: error %v; want %q", tc.args, err, tc.want)
			continue
		}
		var st cli.StatusError
		if got := errors.As(err, &st); got != (tc.code != 0) || st.StatusCode != tc.code {
			t.Errorf("%q: status %d; want %d", tc.args, st.StatusCode, tc.code)
		}
	}
}

func TestMetadataCommand(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMetadata(&buf, metadata.Metadata{SchemaVersion: "0.1.0", URL: "https://x/?a=b&c"}); err != nil {
		t.Fatal(err)
	}
	// The docker CLI's layout: five-space indent, no HTML escaping.
	if want := "{\n     \"SchemaVersion\": \"0.1.0\",\n     \"URL\": \"https://x/?a=b&c\"\n}\n"; buf.String() != want {
		t.Errorf("metadata = %q; want %q", buf.String(), want)
	}
	root := newRoot(command.NewDockerCli(nil, io.Discard, io.Discard), testPlugin(noop), testMeta, &globalOptions{})
	c, _, err := root.Find([]string{metadata.MetadataSubcommandName})
	if err != nil || c.Name() != metadata.MetadataSubcommandName || !c.Hidden || c.PersistentPreRun == nil {
		t.Errorf("metadata command: %v %v; want a hidden command with its own (empty) pre-run", c, err)
	}
}

func TestHelpLayout(t *testing.T) {
	out, _, err := runArgs(t, noop, "trustcache", "--help")
	if err != nil {
		t.Fatal(err)
	}
	want := `Usage:  docker trustcache COMMAND

Test plugin

Management Commands:
  group       A group of commands

Commands:
  probe       Run the probe

Run 'docker trustcache COMMAND --help' for more information on a command.
`
	if out != want {
		t.Errorf("help:\n%s\nwant:\n%s", out, want)
	}
	out, _, _ = runArgs(t, noop, "trustcache", "probe", "--help")
	if !strings.HasPrefix(out, "Usage:  docker trustcache probe [ARG...]\n\nRun the probe\n\nOptions:\n      --format string") {
		t.Errorf("probe help:\n%s", out)
	}
	out, _, _ = runArgs(t, noop, "--help")
	for _, s := range []string{"Usage:  docker [OPTIONS] COMMAND", "Management Commands:\n  trustcache", "Global Options:\n      --config string", "-H, --host string", "--tlsverify", rootHelp + "\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("root help lacks %q:\n%s", s, out)
		}
	}
	if !strings.HasSuffix(out, rootHelp+"\n") {
		t.Errorf("root help must end with %q and one newline:\n%q", rootHelp, out)
	}
}

func TestCompletion(t *testing.T) {
	out, _, err := runArgs(t, noop, "__complete", "trustcache", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "group\tA group of commands\nprobe\tRun the probe\n:4\n"; out != want {
		t.Errorf("completion = %q; want %q (no file names)", out, want)
	}
}

// The docker CLI closes its plugin socket when it exits (or is
// interrupted): the command's context ends then.
func TestSocketCancelsContext(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cli.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("DOCKER_CLI_PLUGIN_SOCKET", sock)
	go func() {
		c, err := l.Accept()
		if err == nil {
			time.Sleep(50 * time.Millisecond)
			c.Close()
		}
	}()
	_, _, err = runArgs(t, func(cmd *cobra.Command, _ []string) error {
		select {
		case <-cmd.Context().Done():
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("context not cancelled when the docker CLI closed the socket")
		}
	}, "trustcache", "probe")
	if err != nil {
		t.Fatal(err)
	}
}

func TestStatusError(t *testing.T) {
	cause := errors.New("cause")
	for _, tc := range []struct {
		e    cli.StatusError
		want string
	}{
		{cli.StatusError{Status: "status", Cause: cause, StatusCode: 3}, "status"},
		{cli.StatusError{Cause: cause, StatusCode: 3}, "cause"},
		{cli.StatusError{StatusCode: 3}, ""},
	} {
		if tc.e.Error() != tc.want {
			t.Errorf("%#v.Error() = %q; want %q", tc.e, tc.e.Error(), tc.want)
		}
	}
	if !errors.Is(cli.StatusError{Cause: cause}, cause) {
		t.Error("StatusError does not unwrap to its cause")
	}
}

// "docker trustcache help COMMAND" is the command's help, as "docker help
// trustcache COMMAND" is; an unknown topic or a command the docker CLI
// never runs fails.
func TestHelpAndUnknownCommands(t *testing.T) {
	out, _, err := runArgs(t, noop, "trustcache", "help", "probe")
	if err != nil || !strings.HasPrefix(out, "Usage:  docker trustcache probe [ARG...]\n\nRun the probe\n") {
		t.Errorf("trustcache help probe: %v\n%s", err, out)
	}
	out, _, err = runArgs(t, noop, "trustcache", "help", "group", "leaf")
	if err != nil || !strings.HasPrefix(out, "Usage:  docker trustcache group leaf\n\nA leaf\n") {
		t.Errorf("trustcache help group leaf: %v\n%s", err, out)
	}
	if out, _, _ = runArgs(t, noop, "trustcache", "--help"); strings.Contains(out, "\n  help") {
		t.Errorf("trustcache --help lists the help command:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"trustcache", "help", "prbe"}, "unknown help topic: prbe"},
		{[]string{"bogus"}, "docker: unknown command: docker bogus\n\nRun 'docker --help' for more information"},
	} {
		out, _, err := runArgs(t, noop, tc.args...)
		if err == nil || err.Error() != tc.want || out != "" {
			t.Errorf("%q: error %v, stdout %q; want %q", tc.args, err, out, tc.want)
		}
	}
}
