// Command docker-trustcache is the Docker CLI plugin behind
// "docker trustcache": it signs the build caches trusted builders export and
// passes only verified, digest-pinned caches on to BuildKit.
package main

import (
	"os"
	"runtime/debug"

	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	cliplugin "github.com/docker-trustcache/docker-trustcache/internal/cli/plugin"
	"github.com/docker-trustcache/docker-trustcache/plugin"
)

// version is set at build time with -ldflags "-X main.version=…" (make
// build, make release). Without it, the module version "go install
// …@VERSION" records is reported.
var version = "dev"

var meta = metadata.Metadata{
	SchemaVersion:    "0.1.0",
	Vendor:           "docker-trustcache",
	Version:          pluginVersion(version, moduleVersion()),
	ShortDescription: "Sign build caches and build only from verified ones",
	URL:              "https://github.com/docker-trustcache/docker-trustcache",
}

func main() {
	// The docker CLI runs every plugin's metadata command on each
	// "docker --help": answer it without setting up a docker CLI, exactly
	// as the plugin framework would.
	if len(os.Args) == 2 && os.Args[1] == metadata.MetadataSubcommandName {
		if err := cliplugin.WriteMetadata(os.Stdout, meta); err != nil {
			os.Exit(1)
		}
		return
	}
	cliplugin.Run(func(dockerCLI command.Cli) *cobra.Command {
		return plugin.NewRootCommand(dockerCLI, meta.Version)
	}, meta)
}

// pluginVersion is the version the plugin reports: the one stamped at build
// time, else the main module's version from the build information ("go
// install …@v1.2.3" records v1.2.3), else "dev".
func pluginVersion(stamped, module string) string {
	if stamped != "dev" || module == "" || module == "(devel)" {
		return stamped
	}
	return module
}

// moduleVersion is the main module's version recorded in the binary.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return ""
}
