// Package command is the docker CLI as the plugin's commands see it: three
// streams and the docker config file (credentials, plugin directories),
// read from the config directory the global --config option (or
// DOCKER_CONFIG) names. None of the commands talks to the docker daemon's
// API (build and bake run the buildx plugin, which does), so nothing here
// sets up an API client, a context store or telemetry: the docker CLI's
// own command.DockerCli links them all, and Go initialises every linked
// package in every run of the plugin (docs/performance.md, start-up).
package command

import (
	"io"
	"os"
	"sync"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/streams"
)

// Cli is what a command uses of the docker CLI. The docker CLI's own
// *command.DockerCli satisfies it too (tests use it).
type Cli interface {
	In() *streams.In
	Out() *streams.Out
	Err() *streams.Out
	ConfigFile() *configfile.ConfigFile
}

// DockerCli is the plugin's Cli: the process's streams (or others, in
// tests) and the docker config file, read on first use.
type DockerCli struct {
	in       *streams.In
	out, err *streams.Out

	once sync.Once
	cfg  *configfile.ConfigFile
}

// NewDockerCli returns a Cli over the given streams; nil means the
// process's own (os.Stdin, os.Stdout, os.Stderr).
func NewDockerCli(in io.ReadCloser, out, errOut io.Writer) *DockerCli {
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stdout
	}
	if errOut == nil {
		errOut = os.Stderr
	}
	return &DockerCli{in: streams.NewIn(in), out: streams.NewOut(out), err: streams.NewOut(errOut)}
}

// In returns standard input.
func (c *DockerCli) In() *streams.In { return c.in }

// Out returns standard output.
func (c *DockerCli) Out() *streams.Out { return c.out }

// Err returns standard error.
func (c *DockerCli) Err() *streams.Out { return c.err }

// ConfigFile returns the docker config file of the config directory
// (config.Dir: --config, else DOCKER_CONFIG, else ~/.docker), read the
// first time it is asked for; a file that cannot be read is reported on
// standard error and an empty configuration used, as the docker CLI does.
// Read it only once the global options are parsed (the plugin runner
// sets the directory before any command runs).
func (c *DockerCli) ConfigFile() *configfile.ConfigFile {
	c.once.Do(func() { c.cfg = config.LoadDefaultConfigFile(c.err) })
	return c.cfg
}
