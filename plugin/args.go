package plugin

import (
	"fmt"

	"github.com/spf13/cobra"
)

// exactArgs, minArgs and maxArgs validate positional arguments with usage
// errors.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
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
			return flagError(cmd, fmt.Errorf("%q accepts at most %d argument(s), got %d", cmd.CommandPath(), n, len(args)))
		}
		return nil
	}
}
