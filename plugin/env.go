package plugin

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/docker/cli/cli/config"

	"github.com/docker-trustcache/docker-trustcache/internal/policyfile"
)

// Env is what the commands read of the process they run in: its
// environment variables and the docker config directory. The root command
// builds it once from the process (processEnv), after the global options
// (--config) are applied; tests build it from a map and a temporary
// directory. Nothing else in the plugin reads the process environment or
// docker/cli's global config.Dir, but for what runs outside it: the
// programs the plugin starts (buildx) inherit the process environment, env://
// key references are read by keys, and DOCKER_CONFIG by the docker CLI's
// config package when the config file is loaded.
type Env struct {
	// Lookup returns a variable's value and whether it is set, even to
	// the empty string (os.LookupEnv for the process).
	Lookup func(name string) (string, bool)
	// ConfigDir is the docker config directory: --config, else
	// DOCKER_CONFIG, else ~/.docker.
	ConfigDir string
	// PluginDirs are the docker CLI's system plugin directories, searched
	// for docker-buildx after the config directory's cli-plugins
	// (systemPluginDirs for the process; tests leave it empty).
	PluginDirs []string
	// WorkDir is where policy discovery starts (.trustcache.yaml in it or
	// a parent) for the commands that discover from the working
	// directory; "" is the process's working directory. Relative paths in
	// flags and arguments are the process's still.
	WorkDir string
}

// processEnv returns the process's Env. Call it once the global options
// are applied: --config sets the config directory.
func processEnv() Env {
	return Env{Lookup: os.LookupEnv, ConfigDir: config.Dir(), PluginDirs: systemPluginDirs}
}

// workDir returns where policy discovery starts: WorkDir, else ".".
func (e *Env) workDir() string {
	if e.WorkDir == "" {
		return "."
	}
	return e.WorkDir
}

// getenv returns the variable name ("" when unset).
func (e *Env) getenv(name string) string {
	v, _ := e.lookupEnv(name)
	return v
}

// lookupEnv reports whether name is set, even to the empty string.
func (e *Env) lookupEnv(name string) (string, bool) {
	if e == nil || e.Lookup == nil {
		return "", false
	}
	return e.Lookup(name)
}

// policyEnv is what policy discovery reads of e.
func (e *Env) policyEnv() policyfile.Env {
	return policyfile.Env{Lookup: e.lookupEnv, ConfigDir: e.ConfigDir}
}

// dockerConfigFile is the docker CLI config file: config.json in the config
// dir.
func (e *Env) dockerConfigFile() string {
	return filepath.Join(e.ConfigDir, config.ConfigFileName)
}

// Environment variables docker trustcache reads, through Env. The key
// password (TRUSTCACHE_PASSWORD, then COSIGN_PASSWORD) is read by
// keys.Password through Env.lookupEnv.
const (
	envPolicy = policyfile.EnvPolicy // policy file, when --trust-policy is not given
	envKey    = "TRUSTCACHE_KEY"     // signing key, when --key is not given
	// envDockerAuthConfig is docker/cli's registry credentials in the
	// environment ({"auths":{HOST:{"auth":BASE64}}}): the verified content
	// endpoint's credential reaches buildx in it, merged with the user's.
	envDockerAuthConfig = "DOCKER_AUTH_CONFIG"
)

// envBuildKit is the docker CLI's switch between BuildKit and the legacy
// builder. The docker CLI (cmd/docker/builder.go processBuilder, 28.x and
// 29.x) reads it with strconv.ParseBool before it looks at the builder
// alias: a false value sends docker build, docker image build and docker
// builder build to the legacy builder, which never runs the alias (docker
// bake excepted); a value ParseBool refuses fails every docker build.
// install and install --check read it; docker build reads it where it runs.
const envBuildKit = "DOCKER_BUILDKIT"

// buildKitEnv returns DOCKER_BUILDKIT as the docker CLI reads it: the
// value ("" when unset or empty: the docker CLI ignores it), whether it
// turns BuildKit off, and the error the docker CLI would refuse it with.
func (e *Env) buildKitEnv() (value string, off bool, err error) {
	v := e.getenv(envBuildKit)
	if v == "" {
		return "", false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return v, false, err
	}
	return v, !on, nil
}
