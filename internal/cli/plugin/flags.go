package plugin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
)

// globalOptions are the docker CLI's global options ("docker [OPTIONS]
// trustcache …"): the docker CLI passes those it was given on to the plugin,
// before the plugin's name, and the plugin accepts the same set with the
// same defaults. Only --config, --debug and --log-level change what the
// plugin does; --context, -H and the TLS options are checked as the docker
// CLI checks them and otherwise reach the programs the plugin runs (buildx)
// through the arguments given on (see plugin.dockerCommand).
type globalOptions struct {
	configDir  string
	debug      bool
	logLevel   string
	tls        bool
	tlsVerify  bool
	caFile     string
	certFile   string
	keyFile    string
	hosts      []string
	contextArg string
}

// install adds the global options to flags, with the docker CLI's names,
// defaults (from DOCKER_CONFIG, DOCKER_CERT_PATH, DOCKER_TLS and
// DOCKER_TLS_VERIFY) and help texts.
func (o *globalOptions) install(flags *pflag.FlagSet) {
	configDir := config.Dir()
	certDir := os.Getenv("DOCKER_CERT_PATH")
	if certDir == "" {
		certDir = configDir
	}
	flags.StringVar(&o.configDir, "config", configDir, "Location of client config files")
	flags.BoolVarP(&o.debug, "debug", "D", false, "Enable debug mode")
	flags.StringVarP(&o.logLevel, "log-level", "l", "info", `Set the logging level ("debug", "info", "warn", "error", "fatal")`)
	flags.BoolVar(&o.tls, "tls", os.Getenv("DOCKER_TLS") != "", "Use TLS; implied by --tlsverify")
	flags.BoolVar(&o.tlsVerify, "tlsverify", os.Getenv("DOCKER_TLS_VERIFY") != "", "Use TLS and verify the remote")
	flags.StringVar(&o.caFile, "tlscacert", filepath.Join(certDir, "ca.pem"), "Trust certs signed only by this CA")
	flags.StringVar(&o.certFile, "tlscert", filepath.Join(certDir, "cert.pem"), "Path to TLS certificate file")
	flags.StringVar(&o.keyFile, "tlskey", filepath.Join(certDir, "key.pem"), "Path to TLS key file")
	flags.VarP(&oneHost{dst: &o.hosts}, "host", "H", "Daemon socket to connect to")
	flags.StringVarP(&o.contextArg, "context", "c", "",
		`Name of the context to use to connect to the daemon (overrides DOCKER_HOST env var and default context set with "docker context use")`)
}

// apply makes the parsed options take effect, as the docker CLI's
// initialisation does for a plugin: the log level (an unknown one ends the
// process with exit status 1), the config directory, debug mode (DEBUG=1
// in the environment, which the programs the plugin runs inherit), and
// the refusal of --host together with --context.
func (o *globalOptions) apply() error {
	lvl := logrus.InfoLevel
	if o.logLevel != "" {
		var err error
		if lvl, err = logrus.ParseLevel(o.logLevel); err != nil {
			_, _ = fmt.Fprintln(os.Stderr, "Unable to parse logging level:", o.logLevel)
			os.Exit(1)
		}
	}
	logrus.SetLevel(lvl)
	if o.configDir != "" {
		config.SetDir(o.configDir)
	}
	if o.debug {
		_ = os.Setenv("DEBUG", "1")
		logrus.SetLevel(logrus.DebugLevel)
	}
	if o.contextArg != "" && len(o.hosts) > 0 {
		return errors.New("conflicting options: cannot specify both --host and --context")
	}
	return nil
}

// oneHost is -H: a string option that may be given once.
type oneHost struct {
	dst *[]string
	set bool
}

func (h *oneHost) String() string {
	if h.dst == nil || len(*h.dst) == 0 {
		return ""
	}
	return (*h.dst)[0]
}

func (h *oneHost) Set(s string) error {
	if h.set {
		return errors.New("specify only one -H")
	}
	*h.dst, h.set = []string{s}, true
	return nil
}

func (*oneHost) Type() string { return "string" }
