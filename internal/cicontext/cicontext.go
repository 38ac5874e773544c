// Package cicontext tells where a build runs from its environment: the
// source context (repository, ref, commit, CI run) a builder signs into its
// cache signatures and provenance record, from the generic
// TRUSTCACHE_SOURCE_* variables, GitHub Actions' or GitLab CI's. It reads
// only the function it is given, never the process environment itself.
package cicontext

import "strings"

// Generic source-context variables; they override what CI detection finds.
const (
	EnvRepo   = "TRUSTCACHE_SOURCE_REPO"   // e.g. github.com/acme/app
	EnvRef    = "TRUSTCACHE_SOURCE_REF"    // e.g. refs/heads/main
	EnvCommit = "TRUSTCACHE_SOURCE_COMMIT" // full commit hash
	EnvRun    = "TRUSTCACHE_SOURCE_RUN"    // CI run URL or id
)

// Source returns the signed source context (repo, ref, commit, run)
// the environment tells: the generic TRUSTCACHE_SOURCE_* variables first,
// then GitHub Actions, then GitLab CI. A value no variable tells is absent,
// never invented.
func Source(getenv func(string) string) map[string]string {
	ctx := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			if _, done := ctx[k]; !done {
				ctx[k] = v
			}
		}
	}
	set("repo", getenv(EnvRepo))
	set("ref", getenv(EnvRef))
	set("commit", getenv(EnvCommit))
	set("run", getenv(EnvRun))

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
