package plugin

import (
	"os"
	"strconv"
)

// Environment variables docker trustcache reads. They are read here and
// nowhere else in the plugin. The key password (TRUSTCACHE_PASSWORD, then
// COSIGN_PASSWORD) is read by keys.Password through lookupEnv, env:// key
// references by keys, and DOCKER_CONFIG by the docker CLI's config package.
const (
	envPolicy = "TRUSTCACHE_POLICY" // policy file, when --trust-policy is not given
	envKey    = "TRUSTCACHE_KEY"    // signing key, when --key is not given
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
func buildKitEnv() (value string, off bool, err error) {
	v := getenv(envBuildKit)
	if v == "" {
		return "", false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return v, false, err
	}
	return v, !on, nil
}

// getenv reads the process environment (tests set it with t.Setenv;
// cicontext.Source takes it as a parameter).
func getenv(name string) string { return os.Getenv(name) }

// lookupEnv reports whether name is set, even to the empty string.
func lookupEnv(name string) (string, bool) { return os.LookupEnv(name) }
