package plugin

import (
	"context"
	"slices"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
)

// With "aliases": {"builder": "trustcache"} in the docker config (see
// install), the docker CLI runs every "docker builder SUBCOMMAND" (and
// "docker bake") as "docker trustcache SUBCOMMAND". The buildx subcommands
// below are forwarded to "docker buildx SUBCOMMAND" with their arguments
// unchanged, so that "docker builder prune", "docker builder ls" … keep
// working.
//
// The list is what "docker buildx --help" prints with buildx v0.38.2
// (commands/root.go), plus "debug", which buildx adds only with
// BUILDX_EXPERIMENTAL=1 (without it, buildx says it does not know it). Left
// out on purpose:
//   - build and bake, and their aliases "b" and "f": "docker builder
//     build" and "docker bake" must reach "docker trustcache build" and
//     "docker trustcache bake", which verify the caches; forwarding them
//     to buildx would bypass that.
//   - install and uninstall (hidden in buildx): "docker buildx install"
//     sets the builder alias to buildx; trustcache has its own.
//   - every name trustcache itself uses (newForwardCommands' taken):
//     "docker builder policy" runs "docker trustcache policy", not
//     "docker buildx policy"; use "docker buildx policy" for that one.
var buildxSubcommands = []struct {
	name    string
	aliases []string
}{
	{"create", nil},
	{"dap", nil},
	{"debug", nil},
	{"dial-stdio", nil},
	{"du", nil},
	{"history", nil},
	{"imagetools", nil},
	{"inspect", nil},
	{"ls", nil},
	{"policy", nil},
	{"prune", nil},
	{"replay", nil},
	{"rm", nil},
	{"stop", nil},
	{"use", nil},
	{"version", nil},
}

// neverForwarded are names no forwarding command may take, whatever taken
// says: buildx's build and bake commands and their aliases (builds go
// through "docker trustcache build" and "docker trustcache bake"), and
// cobra's own.
var neverForwarded = []string{"build", "b", "bake", "f", "help", "completion"}

// newForwardCommands returns hidden commands that run "docker buildx NAME
// ARGS..." for the buildx subcommands, skipping every name (and alias) in
// taken: the names of trustcache's own commands.
func newForwardCommands(dockerCLI command.Cli, env *Env, taken []string) []*cobra.Command {
	free := func(name string) bool {
		return !slices.Contains(taken, name) && !slices.Contains(neverForwarded, name)
	}
	var cmds []*cobra.Command
	for _, sub := range buildxSubcommands {
		if !free(sub.name) {
			continue
		}
		var aliases []string
		for _, a := range sub.aliases {
			if free(a) {
				aliases = append(aliases, a)
			}
		}
		name := sub.name
		cmds = append(cmds, &cobra.Command{
			Use:     name,
			Aliases: aliases,
			Short:   `Run "docker buildx ` + name + `"`,
			Long: `Run "docker buildx ` + name + `" with the arguments given, unchanged: with the
builder alias (docker trustcache install --alias-builder), "docker builder ` + name + `"
comes here.`,
			Hidden:             true,
			DisableFlagParsing: true, // buildx parses them
			RunE: func(cmd *cobra.Command, args []string) error {
				return withStatus(runForward(cmd.Context(), dockerCLI, env, pluginName, name, args))
			},
		})
	}
	return cmds
}

// runForward runs "docker buildx sub args..." with the docker CLI that
// invoked the plugin, its global options, and the plugin's streams; the exit
// code passes through.
func runForward(ctx context.Context, dockerCLI command.Cli, env *Env, plugin, sub string, args []string) error {
	bin, globals := dockerCommand(env, plugin)
	argv := append(append(globals, "buildx", sub), args...)
	return runDocker(ctx, bin, argv, cliStreams(dockerCLI))
}
