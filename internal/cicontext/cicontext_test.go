package cicontext

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The variables GitHub Actions and GitLab CI set for the jobs below, as
// their documentation lists them. Each case adds or overrides what it is
// about.
func ciGitHubVars(ref string) map[string]string {
	return map[string]string{
		"CI":                "true",
		"GITHUB_ACTIONS":    "true",
		"GITHUB_SERVER_URL": "https://github.com",
		"GITHUB_REPOSITORY": "acme/app",
		"GITHUB_REF":        ref,
		"GITHUB_SHA":        "0123456789abcdef0123456789abcdef01234567",
		"GITHUB_RUN_ID":     "4242",
		"GITHUB_WORKFLOW":   "build",
	}
}

func ciGitLabVars() map[string]string {
	return map[string]string{
		"CI":                 "true",
		"GITLAB_CI":          "true",
		"CI_SERVER_HOST":     "gitlab.com",
		"CI_SERVER_URL":      "https://gitlab.com",
		"CI_PROJECT_PATH":    "acme/app",
		"CI_COMMIT_SHA":      "89abcdef0123456789abcdef0123456789abcdef",
		"CI_PIPELINE_ID":     "1234",
		"CI_PIPELINE_URL":    "https://gitlab.com/acme/app/-/pipelines/1234",
		"CI_DEFAULT_BRANCH":  "main",
		"CI_PIPELINE_SOURCE": "push",
	}
}

// ciEnvWith returns a copy of base with kv (key, value, key, value…) set; a
// value of "<unset>" removes the key.
func ciEnvWith(base map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(base)+len(kv)/2)
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<unset>" {
			delete(out, kv[i])
			continue
		}
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestSourceContext(t *testing.T) {
	const (
		ghSHA  = "0123456789abcdef0123456789abcdef01234567"
		ghRun  = "https://github.com/acme/app/actions/runs/4242"
		glSHA  = "89abcdef0123456789abcdef0123456789abcdef"
		glRun  = "https://gitlab.com/acme/app/-/pipelines/1234"
		ghRepo = "github.com/acme/app"
		glRepo = "gitlab.com/acme/app"
	)
	tests := []struct {
		name string
		env  map[string]string
		want map[string]string
	}{
		// GitHub Actions.
		{
			name: "github push to main",
			env:  ciEnvWith(ciGitHubVars("refs/heads/main"), "GITHUB_EVENT_NAME", "push", "GITHUB_REF_NAME", "main"),
			want: map[string]string{"repo": ghRepo, "ref": "refs/heads/main", "commit": ghSHA, "run": ghRun},
		},
		{
			name: "github pull_request",
			env: ciEnvWith(ciGitHubVars("refs/pull/7/merge"), "GITHUB_EVENT_NAME", "pull_request",
				"GITHUB_HEAD_REF", "feature", "GITHUB_BASE_REF", "main", "GITHUB_REF_NAME", "7/merge"),
			// The PR's merge ref, never the base branch the PR targets.
			want: map[string]string{"repo": ghRepo, "ref": "refs/pull/7/merge", "commit": ghSHA, "run": ghRun},
		},
		{
			name: "github tag",
			env:  ciEnvWith(ciGitHubVars("refs/tags/v1.2.3"), "GITHUB_EVENT_NAME", "push", "GITHUB_REF_NAME", "v1.2.3", "GITHUB_REF_TYPE", "tag"),
			want: map[string]string{"repo": ghRepo, "ref": "refs/tags/v1.2.3", "commit": ghSHA, "run": ghRun},
		},
		{
			name: "github enterprise server",
			env:  ciEnvWith(ciGitHubVars("refs/heads/main"), "GITHUB_SERVER_URL", "https://ghe.example.com/"),
			want: map[string]string{
				"repo": "ghe.example.com/acme/app", "ref": "refs/heads/main", "commit": ghSHA,
				"run": "https://ghe.example.com/acme/app/actions/runs/4242",
			},
		},
		{
			name: "github without GITHUB_RUN_ID: no run",
			env:  ciEnvWith(ciGitHubVars("refs/heads/main"), "GITHUB_RUN_ID", "<unset>"),
			want: map[string]string{"repo": ghRepo, "ref": "refs/heads/main", "commit": ghSHA},
		},
		{
			name: "github without GITHUB_REPOSITORY: no repo, no run",
			env:  ciEnvWith(ciGitHubVars("refs/heads/main"), "GITHUB_REPOSITORY", "<unset>"),
			want: map[string]string{"ref": "refs/heads/main", "commit": ghSHA},
		},
		{
			name: "github without GITHUB_SERVER_URL: no repo, no run (the host is not guessed)",
			env:  ciEnvWith(ciGitHubVars("refs/heads/main"), "GITHUB_SERVER_URL", "<unset>"),
			want: map[string]string{"ref": "refs/heads/main", "commit": ghSHA},
		},
		{
			name: "github with only GITHUB_ACTIONS",
			env:  map[string]string{"GITHUB_ACTIONS": "true"},
			want: map[string]string{},
		},
		{
			name: "github variables without GITHUB_ACTIONS=true are not CI",
			env:  ciEnvWith(ciGitHubVars("refs/heads/main"), "GITHUB_ACTIONS", "<unset>"),
			want: map[string]string{},
		},
		{
			name: "github variables set but empty",
			env: ciEnvWith(ciGitHubVars(""), "GITHUB_SERVER_URL", "", "GITHUB_REPOSITORY", "", "GITHUB_SHA", "",
				"GITHUB_RUN_ID", ""),
			want: map[string]string{},
		},

		// GitLab CI.
		{
			name: "gitlab branch pipeline",
			env:  ciEnvWith(ciGitLabVars(), "CI_COMMIT_BRANCH", "main", "CI_COMMIT_REF_NAME", "main"),
			want: map[string]string{"repo": glRepo, "ref": "refs/heads/main", "commit": glSHA, "run": glRun},
		},
		{
			name: "gitlab merge request pipeline",
			// GitLab sets no CI_COMMIT_BRANCH in merge request pipelines.
			env: ciEnvWith(ciGitLabVars(), "CI_PIPELINE_SOURCE", "merge_request_event", "CI_MERGE_REQUEST_IID", "7",
				"CI_COMMIT_REF_NAME", "feature", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature",
				"CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
			want: map[string]string{"repo": glRepo, "ref": "refs/merge-requests/7/head", "commit": glSHA, "run": glRun},
		},
		{
			name: "gitlab merge request pipeline that also names a branch: the merge request wins",
			env: ciEnvWith(ciGitLabVars(), "CI_PIPELINE_SOURCE", "merge_request_event", "CI_MERGE_REQUEST_IID", "7",
				"CI_COMMIT_BRANCH", "main"),
			want: map[string]string{"repo": glRepo, "ref": "refs/merge-requests/7/head", "commit": glSHA, "run": glRun},
		},
		{
			name: "gitlab tag pipeline",
			env:  ciEnvWith(ciGitLabVars(), "CI_COMMIT_TAG", "v1.2.3", "CI_COMMIT_REF_NAME", "v1.2.3"),
			want: map[string]string{"repo": glRepo, "ref": "refs/tags/v1.2.3", "commit": glSHA, "run": glRun},
		},
		{
			name: "gitlab without ref variables: no ref (CI_COMMIT_REF_NAME alone is ambiguous)",
			env:  ciEnvWith(ciGitLabVars(), "CI_COMMIT_REF_NAME", "main"),
			want: map[string]string{"repo": glRepo, "commit": glSHA, "run": glRun},
		},
		{
			name: "gitlab without CI_SERVER_HOST: no repo",
			env:  ciEnvWith(ciGitLabVars(), "CI_SERVER_HOST", "<unset>", "CI_COMMIT_BRANCH", "main"),
			want: map[string]string{"ref": "refs/heads/main", "commit": glSHA, "run": glRun},
		},
		{
			name: "gitlab without CI_PROJECT_PATH: no repo",
			env:  ciEnvWith(ciGitLabVars(), "CI_PROJECT_PATH", "<unset>", "CI_COMMIT_BRANCH", "main"),
			want: map[string]string{"ref": "refs/heads/main", "commit": glSHA, "run": glRun},
		},
		{
			name: "gitlab with only GITLAB_CI",
			env:  map[string]string{"GITLAB_CI": "true"},
			want: map[string]string{},
		},
		{
			name: "gitlab variables without GITLAB_CI=true are not CI",
			env:  ciEnvWith(ciGitLabVars(), "GITLAB_CI", "<unset>", "CI_COMMIT_BRANCH", "main"),
			want: map[string]string{},
		},

		// Generic TRUSTCACHE_SOURCE_*.
		{
			name: "generic variables alone",
			env: map[string]string{
				"TRUSTCACHE_SOURCE_REPO": "git.example.com/acme/app", "TRUSTCACHE_SOURCE_REF": "refs/heads/main",
				"TRUSTCACHE_SOURCE_COMMIT": "feedface", "TRUSTCACHE_SOURCE_RUN": "https://ci.example.com/run/9",
			},
			want: map[string]string{
				"repo": "git.example.com/acme/app", "ref": "refs/heads/main",
				"commit": "feedface", "run": "https://ci.example.com/run/9",
			},
		},
		{
			name: "generic variables override github",
			env: ciEnvWith(ciGitHubVars("refs/pull/7/merge"),
				"TRUSTCACHE_SOURCE_REPO", "github.com/acme/mirror", "TRUSTCACHE_SOURCE_REF", "refs/heads/release",
				"TRUSTCACHE_SOURCE_COMMIT", "feedface", "TRUSTCACHE_SOURCE_RUN", "run-9"),
			want: map[string]string{"repo": "github.com/acme/mirror", "ref": "refs/heads/release", "commit": "feedface", "run": "run-9"},
		},
		{
			name: "generic variables override gitlab, one by one",
			env:  ciEnvWith(ciGitLabVars(), "CI_COMMIT_BRANCH", "main", "TRUSTCACHE_SOURCE_REF", "refs/heads/release"),
			want: map[string]string{"repo": glRepo, "ref": "refs/heads/release", "commit": glSHA, "run": glRun},
		},
		{
			name: "generic variables set but empty do not hide CI's values",
			env: ciEnvWith(ciGitHubVars("refs/heads/main"), "TRUSTCACHE_SOURCE_REPO", "", "TRUSTCACHE_SOURCE_REF", "",
				"TRUSTCACHE_SOURCE_COMMIT", "", "TRUSTCACHE_SOURCE_RUN", ""),
			want: map[string]string{"repo": ghRepo, "ref": "refs/heads/main", "commit": ghSHA, "run": ghRun},
		},
		{
			name: "one generic variable, no CI",
			env:  map[string]string{"TRUSTCACHE_SOURCE_COMMIT": "feedface"},
			want: map[string]string{"commit": "feedface"},
		},

		// Nothing tells.
		{name: "no variables", env: map[string]string{}, want: map[string]string{}},
		{
			name: "a developer's shell",
			env:  map[string]string{"HOME": "/home/dev", "USER": "dev", "PWD": "/home/dev/app", "CI": "true"},
			want: map[string]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			got := Source(getenv)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Source mismatch (-want +got):\n%s", diff)
			}
			for k, v := range got {
				if v == "" {
					t.Errorf("annotation %q is the empty string; want it absent", k)
				}
				switch k {
				case "repo", "ref", "commit", "run":
				default:
					t.Errorf("unexpected annotation %q=%q", k, v)
				}
			}
		})
	}
}

// TestSourceContextFreshMap: every call returns a map of its own, which the
// callers add their own annotations to.
func TestSourceContextFreshMap(t *testing.T) {
	getenv := func(k string) string { return ciGitHubVars("refs/heads/main")[k] }
	a := Source(getenv)
	a["extra"] = "x"
	if b := Source(getenv); b["extra"] != "" {
		t.Errorf("Source returned a shared map: %v", b)
	}
}
