// Command docker-trustcache is the Docker CLI plugin behind
// "docker trustcache": it signs the build caches trusted builders export and
// passes only verified, digest-pinned caches on to BuildKit.
package main

import (
	"encoding/json"
	"os"

	"github.com/docker/cli/cli-plugins/metadata"
	cliplugin "github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/plugin"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

var meta = metadata.Metadata{
	SchemaVersion:    "0.1.0",
	Vendor:           "docker-trustcache",
	Version:          version,
	ShortDescription: "Sign build caches and build only from verified ones",
	URL:              "https://github.com/docker-trustcache/docker-trustcache",
}

func main() {
	// The docker CLI runs every plugin's metadata command on each
	// "docker --help": answer it without setting up a docker CLI, exactly
	// as the plugin framework would.
	if len(os.Args) == 2 && os.Args[1] == metadata.MetadataSubcommandName {
		enc := json.NewEncoder(os.Stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "     ")
		if err := enc.Encode(meta); err != nil {
			os.Exit(1)
		}
		return
	}
	cliplugin.Run(func(dockerCLI command.Cli) *cobra.Command {
		return plugin.NewRootCommand(dockerCLI, version)
	}, meta)
}
