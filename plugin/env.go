package plugin

import (
	"os"
	"strconv"
	"strings"
)

// Environment variables docker trustcache reads. They are read here and
// nowhere else in the plugin. The key password (TRUSTCACHE_PASSWORD, then
// COSIGN_PASSWORD) is read by keys.Password through lookupEnv, env:// key
// references by keys, and DOCKER_CONFIG by the docker CLI's config package.
const (
	envPolicy = "TRUSTCACHE_POLICY" // policy file, when --policy is not given
	envKey    = "TRUSTCACHE_KEY"    // signing key, when --key is not given
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
// sourceContext takes it as a parameter).
func getenv(name string) string { return os.Getenv(name) }

// lookupEnv reports whether name is set, even to the empty string.
func lookupEnv(name string) (string, bool) { return os.LookupEnv(name) }

// Generic source-context variables; they override what CI detection finds.
const (
	envSourceRepo   = "TRUSTCACHE_SOURCE_REPO"   // e.g. github.com/acme/app
	envSourceRef    = "TRUSTCACHE_SOURCE_REF"    // e.g. refs/heads/main
	envSourceCommit = "TRUSTCACHE_SOURCE_COMMIT" // full commit hash
	envSourceRun    = "TRUSTCACHE_SOURCE_RUN"    // CI run URL or id
)

// sourceContext returns the signed source context (repo, ref, commit, run)
// the environment tells: the generic TRUSTCACHE_SOURCE_* variables first,
// then GitHub Actions, then GitLab CI. A value no variable tells is absent,
// never invented.
func sourceContext(getenv func(string) string) map[string]string {
	ctx := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			if _, done := ctx[k]; !done {
				ctx[k] = v
			}
		}
	}
	set("repo", getenv(envSourceRepo))
	set("ref", getenv(envSourceRef))
	set("commit", getenv(envSourceCommit))
	set("run", getenv(envSourceRun))

	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		server := strings.TrimSuffix(getenv("GITHUB_SERVER_URL"), "/")
		// GitHub always sets GITHUB_SERVER_URL; without it the host (github.com
		// or an Enterprise Server) is unknown, and repo and run are left out
		// rather than guessed.
		host := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
		if repo := getenv("GITHUB_REPOSITORY"); repo != "" && host != "" {
			set("repo", host+"/"+repo)
			if id := getenv("GITHUB_RUN_ID"); id != "" {
				set("run", server+"/"+repo+"/actions/runs/"+id)
			}
		}
		set("ref", getenv("GITHUB_REF"))
		set("commit", getenv("GITHUB_SHA"))
	case getenv("GITLAB_CI") == "true":
		if host, path := getenv("CI_SERVER_HOST"), getenv("CI_PROJECT_PATH"); host != "" && path != "" {
			set("repo", host+"/"+path)
		}
		switch {
		case getenv("CI_COMMIT_TAG") != "":
			set("ref", "refs/tags/"+getenv("CI_COMMIT_TAG"))
		case getenv("CI_MERGE_REQUEST_IID") != "":
			set("ref", "refs/merge-requests/"+getenv("CI_MERGE_REQUEST_IID")+"/head")
		case getenv("CI_COMMIT_BRANCH") != "":
			set("ref", "refs/heads/"+getenv("CI_COMMIT_BRANCH"))
		}
		set("commit", getenv("CI_COMMIT_SHA"))
		set("run", getenv("CI_PIPELINE_URL"))
	}
	return ctx
}
