// Command docker-trustcache is the Docker CLI plugin behind
// "docker trustcache": it signs the build caches trusted builders export and
// passes only verified, digest-pinned caches on to BuildKit.
package main

import (
	cliplugin "github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/plugin"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	cliplugin.Run(func(dockerCLI command.Cli) *cobra.Command {
		return plugin.NewRootCommand(dockerCLI, version)
	}, metadata.Metadata{
		SchemaVersion:    "0.1.0",
		Vendor:           "docker-trustcache",
		Version:          version,
		ShortDescription: "Sign build caches and build only from verified ones",
		URL:              "https://github.com/docker-trustcache/docker-trustcache",
	})
}
