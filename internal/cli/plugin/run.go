// Package plugin runs a docker CLI plugin's command tree under the docker
// CLI's plugin contract, as github.com/docker/cli/cli-plugins/plugin.Run
// does, without linking the docker CLI itself: the metadata command
// ("docker-cli-plugin-metadata"), the global options the docker CLI passes
// on ("docker [OPTIONS] trustcache …", see globalOptions), the docker
// config file (credentials, plugin directories), the CLI's plugin socket
// (DOCKER_CLI_PLUGIN_SOCKET: when the docker CLI goes, on Ctrl-C or
// otherwise, the command's context is cancelled), help in the docker CLI's
// layout, shell completion ("__complete", which the docker CLI's own
// completion calls), and the exit status of a cli.StatusError.
//
// What it leaves out is what only commands that call the docker daemon's
// API need (an API client, the context store, OpenTelemetry export), and
// linking it costs every run: Go initialises every linked package, and
// the docker CLI's command package links about 180 (gRPC, protobuf,
// OpenTelemetry), two thirds of the plugin's start-up
// (docs/performance.md).
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli-plugins/socket"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
)

// PersistentPreRunE must be called by the PersistentPreRunE of a plugin
// command that has one (cobra runs only the nearest): once per process, it
// connects to the docker CLI's plugin socket (cancelling the command's
// context when the CLI goes) and applies the global options. Nil until
// Run runs.
var PersistentPreRunE func(*cobra.Command, []string) error

// Run builds the plugin's command with makeCmd, runs it under the docker
// CLI's plugin contract with os.Args, and exits the process: 0 on
// success, a cli.StatusError's StatusCode (never 0), else 1, with the
// error's message on standard error.
func Run(makeCmd func(command.Cli) *cobra.Command, meta metadata.Metadata) {
	dockerCLI := command.NewDockerCli(nil, nil, nil)
	if err := run(dockerCLI, makeCmd(dockerCLI), meta, os.Args[1:]); err != nil {
		code := 1
		var st cli.StatusError
		if errors.As(err, &st) && st.StatusCode != 0 {
			code = st.StatusCode
		}
		_, _ = fmt.Fprintln(dockerCLI.Err(), err)
		os.Exit(code)
	}
}

// run runs plugin under the root the docker CLI's plugin contract defines
// ("docker [OPTIONS] NAME [ARG...]"), with args.
func run(dockerCLI command.Cli, plugin *cobra.Command, meta metadata.Metadata, args []string) error {
	var opts globalOptions
	root := newRoot(dockerCLI, plugin, meta, &opts)

	var once sync.Once
	PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		var err error
		once.Do(func() {
			ctx, cancel := context.WithCancel(cmd.Context())
			cmd.SetContext(ctx)
			socket.ConnectAndWait(cancel)
			err = opts.apply()
		})
		return err
	}

	// The global options come before the first command: parse them up to
	// there (the root takes no arguments of its own), and leave the rest,
	// options included, to the command.
	globals := pflag.NewFlagSet(root.Name(), pflag.ContinueOnError)
	globals.SetInterspersed(false)
	globals.AddFlagSet(root.Flags())
	globals.AddFlagSet(root.PersistentFlags())
	if err := globals.Parse(args); err != nil {
		return root.FlagErrorFunc()(root, err)
	}
	root.SetArgs(globals.Args())
	return root.Execute()
}

// newRoot returns the root command: the global options, the help command,
// completion and the metadata command, with plugin under it.
func newRoot(dockerCLI command.Cli, plugin *cobra.Command, meta metadata.Metadata, opts *globalOptions) *cobra.Command {
	name := plugin.Name()
	root := &cobra.Command{
		Use:           fmt.Sprintf("docker [OPTIONS] %s [ARG...]", name),
		Short:         metadata.NamePrefix + name + " is a Docker CLI plugin",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return PersistentPreRunE(cmd, args)
		},
		TraverseChildren:      true,
		DisableFlagsInUseLine: true,
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd:    true,
			DisableDescriptions: os.Getenv("DOCKER_CLI_DISABLE_COMPLETION_DESCRIPTION") != "",
		},
		Annotations: map[string]string{annotationHelp: rootHelp},
		// What is not a command here is not understood: "docker
		// [OPTIONS] trustcache" is the only one the docker CLI runs.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("docker: unknown command: docker %s\n\nRun 'docker --help' for more information", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	// Commands and options complete with their own values, never with
	// file names unless they say so.
	root.CompletionOptions.SetDefaultShellCompDirective(cobra.ShellCompDirectiveNoFileComp)
	opts.install(root.Flags())
	setUsage(root)
	root.SetFlagErrorFunc(flagError)
	root.SetHelpCommand(helpCommand())
	root.PersistentFlags().BoolP("help", "h", false, "Print usage")
	_ = root.PersistentFlags().MarkShorthandDeprecated("help", "use --help")
	root.PersistentFlags().Lookup("help").Hidden = true
	root.SetIn(dockerCLI.In())
	root.SetOut(dockerCLI.Out())
	root.SetErr(dockerCLI.Err())
	root.AddCommand(plugin, metadataCommand(plugin, meta))
	// "docker trustcache help verify" is "docker trustcache verify
	// --help", as "docker help trustcache verify" is.
	if plugin.HasSubCommands() {
		help := helpCommand()
		help.Hidden = true
		plugin.AddCommand(help)
	}
	disableFlagsInUseLine(root)
	return root
}

// flagError is the error for an option the root does not know, with the
// docker CLI's usage hint and exit status 125.
func flagError(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	return cli.StatusError{
		Status:     fmt.Sprintf("%s\n\nUsage:  %s\n\nRun '%s --help' for more information", err, cmd.UseLine(), cmd.CommandPath()),
		StatusCode: 125,
	}
}

// disableFlagsInUseLine keeps "[flags]" off every usage line under c.
func disableFlagsInUseLine(c *cobra.Command) {
	for _, sub := range c.Commands() {
		disableFlagsInUseLine(sub)
	}
	c.DisableFlagsInUseLine = true
}

// metadataCommand is "docker-cli-plugin-metadata": the JSON the docker CLI
// reads to list the plugin (docker --help) and check its schema version.
func metadataCommand(plugin *cobra.Command, meta metadata.Metadata) *cobra.Command {
	if meta.ShortDescription == "" {
		meta.ShortDescription = plugin.Short
	}
	return &cobra.Command{
		Use:    metadata.MetadataSubcommandName,
		Hidden: true,
		// Nothing to set up for it: no socket, no options applied.
		PersistentPreRun: func(*cobra.Command, []string) {},
		RunE: func(*cobra.Command, []string) error {
			return WriteMetadata(os.Stdout, meta)
		},
	}
}
