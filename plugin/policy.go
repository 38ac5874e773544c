package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/verify"
)

func newPolicyCommand(dockerCLI command.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Write, check and explain the trust policy",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newPolicyInitCommand(dockerCLI), newPolicyLintCommand(dockerCLI))
	return cmd
}

func newPolicyInitCommand(dockerCLI command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "init [FILE]",
		Short: "Write a commented starter policy (default .trustcache.yaml)",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := policyFileName
			if len(args) == 1 {
				path = args[0]
			}
			return withStatus(writeNewFile(path, verify.StarterPolicy(), 0o644))
		},
	}
}

// writeNewFile writes data to a new file at path; it never overwrites.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return usagef("%s already exists; not overwriting it", path)
	}
	if err != nil {
		return asUsage(err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

func newPolicyLintCommand(dockerCLI command.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "lint [FILE]",
		Short: "Check a policy file: every problem with its file, line and field",
		Long: `Check a policy file (default: the policy the other commands would use) and
print every problem found, each with its file, line and field. Exit status 0
when the policy is valid, 2 when it is not.`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flag := ""
			if len(args) == 1 {
				flag = args[0]
			}
			path, err := findPolicy(flag, ".")
			if err != nil {
				return withStatus(asUsage(err))
			}
			if _, err := verify.LoadPolicy(path); err != nil {
				return withStatus(asUsage(err))
			}
			fmt.Fprintf(dockerCLI.Out(), "%s: ok\n", path)
			return nil
		},
	}
}
