package plugin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
)

// variadicCommands take any number of arguments (references): a made-up
// argument is one of them.
var variadicCommands = map[string]bool{
	"trustcache sign":   true,
	"trustcache verify": true,
}

// buildargsCommands parse their own arguments as buildx does
// (internal/buildargs): the most positional arguments each takes, -1 for
// any number.
var buildargsCommands = map[string]int{
	"trustcache build": 1,
	"trustcache bake":  -1,
}

// TestUnknownCommandsAndArgumentsFail walks the whole command tree: a
// made-up subcommand of every command that groups others, and an argument
// too many for every command that takes a bounded number, fail with the
// usage exit status and an error naming what was not understood, never
// the usage and exit 0 ("docker trustcache verfiy REF" in a CI gate must
// not pass without verifying).
func TestUnknownCommandsAndArgumentsFail(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	seen := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.Hidden && c.DisableFlagParsing {
			return // forwarded to "docker buildx NAME", which checks its arguments
		}
		path := c.CommandPath()
		args := strings.Fields(path)[1:]
		seen[path] = true
		if n, ok := buildargsCommands[path]; ok {
			if n >= 0 {
				checkExtra(t, te, path, append(args, repeat(".", n)...))
			}
			return
		}
		if c.Args == nil {
			t.Errorf("%q declares no Args: cobra accepts any argument", path)
			return
		}
		if c.HasSubCommands() {
			res := te.run(append(args, "verfiy")...)
			want := fmt.Sprintf("unknown command %q for %q", "verfiy", path)
			if res.code != ExitUsage || !strings.Contains(res.stderr, want) || res.stdout != "" {
				t.Errorf("%s verfiy: exit %d, stdout %q, stderr %q; want exit %d and %q", path, res.code, res.stdout, res.stderr, ExitUsage, want)
			}
			if res := te.run(args...); res.code != 0 || !strings.Contains(res.stdout, "Usage:") {
				t.Errorf("%s: exit %d, stdout %q; want its help and exit 0", path, res.code, res.stdout)
			}
			return
		}
		if c.ValidateArgs(make([]string, 20)) == nil {
			if !variadicCommands[path] {
				t.Errorf("%q accepts 20 arguments: list it in variadicCommands if it takes any number", path)
			}
			return
		}
		n := -1
		for k := 3; k >= 0 && n < 0; k-- {
			if c.ValidateArgs(make([]string, k)) == nil {
				n = k
			}
		}
		if n < 0 {
			t.Errorf("%q accepts none of 0 to 3 arguments", path)
			return
		}
		checkExtra(t, te, path, append(args, repeat("arg", n)...))
	}
	walk(NewRootCommand(nil, "test"))
	var listed []string
	for path := range variadicCommands {
		listed = append(listed, path)
	}
	for path := range buildargsCommands {
		listed = append(listed, path)
	}
	for _, path := range listed {
		if !seen[path] {
			t.Errorf("the test lists %q, which does not exist", path)
		}
	}
}

// checkExtra runs args, the most arguments path takes, with one more: it
// must fail with the usage exit status, naming the argument when the
// command's own validator rejects it.
func checkExtra(t *testing.T, te *testEnv, path string, args []string) {
	t.Helper()
	res := te.run(append(args, "bogus-extra")...)
	if res.code != ExitUsage || res.stdout != "" {
		t.Errorf("%s: %q: exit %d, stdout %q, stderr %q; want exit %d", path, args, res.code, res.stdout, res.stderr, ExitUsage)
	}
	if _, own := buildargsCommands[path]; !own && !strings.Contains(res.stderr, `"bogus-extra"`) {
		t.Errorf("%s: %q: stderr %q; want it to name \"bogus-extra\"", path, args, res.stderr)
	}
}

func repeat(s string, n int) []string {
	r := make([]string, n)
	for i := range r {
		r[i] = s
	}
	return r
}

// TestUnknownCommandSuggests: the error says what was meant, as cobra's
// does at a program's root.
func TestUnknownCommandSuggests(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verfiy", "registry.example/cache:main"}, "unknown command \"verfiy\" for \"trustcache\"\n\nDid you mean this?\n\tverify\n\nRun 'trustcache --help' for more information\n"},
		{[]string{"keys", "gen"}, "unknown command \"gen\" for \"trustcache keys\"\n\nDid you mean this?\n\tgenerate\n\n"},
		{[]string{"ledger", "nosuch"}, "unknown command \"nosuch\" for \"trustcache ledger\"\n\nRun 'trustcache ledger --help' for more information\n"},
	} {
		res := te.run(tc.args...)
		if res.code != ExitUsage || !strings.HasPrefix(res.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d, %q", tc.args, res.code, res.stderr, ExitUsage, tc.want)
		}
	}
}

// TestEveryCommandHasExamples: every command's --help ends its
// description with realistic examples, each line a docker trustcache (or
// docker buildx) command line or a comment.
func TestEveryCommandHasExamples(t *testing.T) {
	t.Parallel()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.Hidden || c.Name() == "help" {
			return
		}
		if !c.HasExample() {
			t.Errorf("%s has no Example", c.CommandPath())
			return
		}
		for _, l := range strings.Split(c.Example, "\n") {
			l = strings.TrimSpace(l)
			if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "docker ") && !strings.HasPrefix(l, "--") {
				t.Errorf("%s: example line %q is not a command", c.CommandPath(), l)
			}
		}
		if strings.HasPrefix(c.Example, "docker") || strings.HasSuffix(c.Example, "\n") {
			t.Errorf("%s: Example %q is not indented by two spaces, or ends in a newline", c.CommandPath(), c.Example)
		}
		// Every docker trustcache line parses: its flags exist and its
		// arguments are what the command takes.
		for _, line := range strings.Split(strings.ReplaceAll(c.Example, "\\\n", " "), "\n") {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), "docker trustcache ")
			if !ok {
				continue
			}
			if err := parseExample(strings.Fields(rest)); err != nil {
				t.Errorf("%s: example %q: %v", c.CommandPath(), strings.TrimSpace(line), err)
			}
		}
	}
	walk(NewRootCommand(nil, "test"))
}

// parseExample parses args as "docker trustcache ARGS" would be, without
// running anything.
func parseExample(args []string) error {
	cmd, rest, err := NewRootCommand(nil, "test").Find(args)
	if err != nil {
		return err
	}
	switch cmd.Name() {
	case "build":
		_, err := buildargs.Parse(rest)
		return err
	case "bake":
		_, err := buildargs.ParseBake(rest)
		return err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	return cmd.ValidateArgs(cmd.Flags().Args())
}
