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

// NewRootCommand returns the "trustcache" command with all its subcommands,
// reading the process's environment (processEnv) once the global options
// are applied.
func NewRootCommand(dockerCLI command.Cli, version string) *cobra.Command {
	return newRootCommand(dockerCLI, version, nil)
}

// newRootCommand is NewRootCommand in the environment env; nil is the
// process's, read when the command runs.
func newRootCommand(dockerCLI command.Cli, version string, env *Env) *cobra.Command {
	fromProcess := env == nil
	if fromProcess {
		env = new(Env)
	}
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
			if cliplugin.PersistentPreRunE != nil {
				if err := cliplugin.PersistentPreRunE(cmd, args); err != nil {
					return err
				}
			}
			if fromProcess {
				*env = processEnv() // after --config is applied
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(flagError)
	cmd.SetVersionTemplate("docker-trustcache {{.Version}}\n")
	cmd.AddCommand(subcommands(dockerCLI, env)...)
	return cmd
}

// subcommands lists the commands of "docker trustcache".
// With the "builder" alias installed, "docker builder SUBCOMMAND" reaches
// these: build is ours, the other buildx subcommands are forwarded.
func subcommands(dockerCLI command.Cli, env *Env) []*cobra.Command {
	cmds := []*cobra.Command{
		newBuildCommand(dockerCLI, env),
		newBakeCommand(dockerCLI, env),
		newSignCommand(dockerCLI, env),
		newVerifyCommand(dockerCLI, env),
		newProvenanceCommand(dockerCLI, env),
		newKeysCommand(dockerCLI, env),
		newPolicyCommand(dockerCLI, env),
		newLedgerCommand(dockerCLI, env),
		newServeCommand(dockerCLI, env),
		newBuilderCommand(dockerCLI, env),
		newInstallCommand(dockerCLI, env),
		newUninstallCommand(dockerCLI, env),
	}
	taken := []string{"help", "completion"}
	for _, c := range cmds {
		taken = append(taken, c.Name())
		taken = append(taken, c.Aliases...)
	}
	return append(cmds, newForwardCommands(dockerCLI, env, taken)...)
}
