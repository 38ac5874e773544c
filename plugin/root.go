// Package plugin holds the cobra commands of "docker trustcache" and the glue
// to the docker CLI: flags become options, options become one library call,
// and results are rendered on stdout (data) and stderr (progress, warnings).
package plugin

import (
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	cliplugin "github.com/docker-trustcache/docker-trustcache/internal/cli/plugin"
)

// pluginName is the name the docker CLI runs the plugin under: the
// "trustcache" of "docker trustcache".
const pluginName = "trustcache"

// NewRootCommand returns the "trustcache" command with all its subcommands.
func NewRootCommand(dockerCLI command.Cli, version string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     pluginName,
		Example: rootExample,
		Short:   "Sign build caches and build only from verified ones",
		Long: `Sign the build caches trusted builders export, and pass only verified,
digest-pinned caches on to BuildKit.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		Args:          noSubcommand,
		RunE:          showHelp,
		// The docker CLI's plugin root has its own completion command.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Set by the plugin framework once it runs the command; unset
			// when the command tree is run directly, as in tests.
			if cliplugin.PersistentPreRunE == nil {
				return nil
			}
			return cliplugin.PersistentPreRunE(cmd, args)
		},
	}
	cmd.SetFlagErrorFunc(flagError)
	cmd.SetVersionTemplate("docker-trustcache {{.Version}}\n")
	cmd.AddCommand(subcommands(dockerCLI)...)
	return cmd
}

// subcommands lists the commands of "docker trustcache".
// With the "builder" alias installed, "docker builder SUBCOMMAND" reaches
// these: build is ours, the other buildx subcommands are forwarded.
func subcommands(dockerCLI command.Cli) []*cobra.Command {
	cmds := []*cobra.Command{
		newBuildCommand(dockerCLI),
		newBakeCommand(dockerCLI),
		newSignCommand(dockerCLI),
		newVerifyCommand(dockerCLI),
		newProvenanceCommand(dockerCLI),
		newKeysCommand(dockerCLI),
		newPolicyCommand(dockerCLI),
		newLedgerCommand(dockerCLI),
		newServeCommand(dockerCLI),
		newBuilderCommand(dockerCLI),
		newInstallCommand(dockerCLI),
		newUninstallCommand(dockerCLI),
	}
	taken := []string{"help", "completion"}
	for _, c := range cmds {
		taken = append(taken, c.Name())
		taken = append(taken, c.Aliases...)
	}
	return append(cmds, newForwardCommands(dockerCLI, taken)...)
}
