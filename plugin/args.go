package plugin

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli"
)

// exactArgs, minArgs and maxArgs validate positional arguments with usage
// errors; an argument too many is named in the error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) > n:
			return extraArgs(cmd, n, args)
		case len(args) != n:
			return flagError(cmd, fmt.Errorf("%q requires exactly %d argument(s), got %d", cmd.CommandPath(), n, len(args)))
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return flagError(cmd, fmt.Errorf("%q requires at least %d argument(s)", cmd.CommandPath(), n))
		}
		return nil
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return extraArgs(cmd, n, args)
		}
		return nil
	}
}

// extraArgs is the usage error of a command that takes at most n arguments
// and was given args: it names the ones it did not expect.
func extraArgs(cmd *cobra.Command, n int, args []string) error {
	extra := quoteAll(args[n:])
	if n == 0 {
		return flagError(cmd, fmt.Errorf("%q accepts no arguments; got %s", cmd.CommandPath(), extra))
	}
	return flagError(cmd, fmt.Errorf("%q accepts at most %d argument(s), got %d: unexpected %s", cmd.CommandPath(), n, len(args), extra))
}

// noSubcommand is the Args of a command that only groups subcommands
// ("docker trustcache", "keys", "policy", "ledger"): cobra hands it what
// it did not find among them, an unknown command, which must fail (a typo
// such as "docker trustcache verfiy REF" in a CI gate must not print the
// usage and succeed), with cobra's "Did you mean this?".
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return cli.StatusError{
		Status:     fmt.Sprintf("%s\n\nRun '%s --help' for more information", msg, cmd.CommandPath()),
		StatusCode: ExitUsage,
	}
}

// showHelp is the RunE of a command that only groups subcommands: with no
// arguments (noSubcommand rejects any), its help.
func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}
