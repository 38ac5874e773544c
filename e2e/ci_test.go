//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ciSystem is a CI system as the jobs see it: the variables it sets for a
// protected-branch job and for a pull/merge request job, and what
// trustcache must sign from them.
type ciSystem struct {
	name     string
	repo     string            // the repo annotation: host/owner/project
	common   map[string]string // set for every job
	main, pr map[string]string // set for the main-branch job, the pull/merge request job
	prRef    string            // the ref annotation of the pull/merge request job
	mainSHA  string
	mainRun  string // the run annotation of the main job
}

const (
	ciMainSHA = "1111111111111111111111111111111111111111"
	ciPRSHA   = "2222222222222222222222222222222222222222"
)

// The variables GitHub Actions sets for a push to main and for a
// pull_request event.
var ciGitHub = ciSystem{
	name: "github",
	repo: "github.com/acme/app",
	common: map[string]string{
		"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
		"GITHUB_API_URL": "https://api.github.com", "GITHUB_REPOSITORY": "acme/app",
		"GITHUB_REPOSITORY_OWNER": "acme", "GITHUB_WORKFLOW": "build", "RUNNER_OS": "Linux",
	},
	main: map[string]string{
		"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main",
		"GITHUB_REF_TYPE": "branch", "GITHUB_SHA": ciMainSHA, "GITHUB_RUN_ID": "1001", "GITHUB_RUN_NUMBER": "1",
		"GITHUB_JOB": "main",
	},
	pr: map[string]string{
		"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/7/merge", "GITHUB_REF_NAME": "7/merge",
		"GITHUB_REF_TYPE": "branch", "GITHUB_HEAD_REF": "feature", "GITHUB_BASE_REF": "main",
		"GITHUB_SHA": ciPRSHA, "GITHUB_RUN_ID": "1002", "GITHUB_RUN_NUMBER": "2", "GITHUB_JOB": "pull-request",
	},
	prRef:   "refs/pull/7/merge",
	mainSHA: ciMainSHA,
	mainRun: "https://github.com/acme/app/actions/runs/1001",
}

// The variables GitLab CI sets for a branch pipeline of main and for a
// merge request pipeline (which has no CI_COMMIT_BRANCH).
var ciGitLab = ciSystem{
	name: "gitlab",
	repo: "gitlab.com/acme/app",
	common: map[string]string{
		"CI": "true", "GITLAB_CI": "true", "CI_SERVER_HOST": "gitlab.com", "CI_SERVER_URL": "https://gitlab.com",
		"CI_PROJECT_PATH": "acme/app", "CI_PROJECT_URL": "https://gitlab.com/acme/app",
		"CI_DEFAULT_BRANCH": "main", "CI_REGISTRY": "registry.gitlab.com",
	},
	main: map[string]string{
		"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main",
		"CI_COMMIT_REF_PROTECTED": "true", "CI_COMMIT_SHA": ciMainSHA, "CI_PIPELINE_ID": "2001",
		"CI_PIPELINE_URL": "https://gitlab.com/acme/app/-/pipelines/2001", "CI_JOB_NAME": "main",
	},
	pr: map[string]string{
		"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "7",
		"CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
		"CI_COMMIT_REF_NAME": "feature", "CI_COMMIT_REF_PROTECTED": "false", "CI_COMMIT_SHA": ciPRSHA,
		"CI_PIPELINE_ID": "2002", "CI_PIPELINE_URL": "https://gitlab.com/acme/app/-/pipelines/2002",
		"CI_JOB_NAME": "merge-request",
	},
	prRef:   "refs/merge-requests/7/head",
	mainSHA: ciMainSHA,
	mainRun: "https://gitlab.com/acme/app/-/pipelines/2001",
}

// ciJob is one CI job: its own machine (env) with a checkout of the
// project — Dockerfile, .git, .trustcache.yaml and keys/ci-main.pub at the
// root — in which every command runs, as CI runs them.
type ciJob struct {
	e        *env
	checkout string
}

// ciPolicy binds the caches of repo to refs/heads/main of the project
// (sys.repo); stale's scope also has a maxAge of a few seconds.
func ciPolicy(sys ciSystem, repo, stale string) string {
	return `version: 1
builders:
  - name: ci-main
    key: keys/ci-main.pub
scopes:
  - repositories: ["` + repo + `"]
    builders: [ci-main]
    onUntrusted: drop
    maxAge: 30d
    annotations:
      repo: ` + sys.repo + `
      ref: refs/heads/main
  - repositories: ["` + stale + `"]
    builders: [ci-main]
    maxAge: ` + ciMaxAge.String() + `
    annotations:
      repo: "` + sys.repo[:strings.LastIndex(sys.repo, "/")] + `/*"
      ref: refs/heads/main
`
}

// ciMaxAge is the maxAge of the stale scope.
const ciMaxAge = 3 * time.Second

// newCIJob makes a job with the system's variables plus vars. keyPEM is the
// builder key the job is given as TRUSTCACHE_KEY_PEM (with its password in
// TRUSTCACHE_PASSWORD); "" for a job without secrets.
func newCIJob(t *testing.T, sys ciSystem, vars map[string]string, keyPEM, pub, policy string) *ciJob {
	t.Helper()
	e := trustEnv(t)
	for k, v := range sys.common {
		e.setenv(k, v)
	}
	for k, v := range vars {
		e.setenv(k, v)
	}
	if keyPEM != "" {
		e.setenv("TRUSTCACHE_KEY_PEM", keyPEM)
	} else {
		e.unsetenv("TRUSTCACHE_PASSWORD")
	}
	dir := e.project(t)
	for _, d := range []string{".git", "keys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyFile(pub, filepath.Join(dir, "keys", "ci-main.pub"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	return &ciJob{e: e, checkout: dir}
}

// trustcache runs "docker trustcache ARGS" in the job's checkout.
func (j *ciJob) trustcache(t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, j.checkout, j.e.environ(nil), nil, cfg.docker, append([]string{"trustcache"}, args...)...)
}

// build runs "docker trustcache build" of the checkout (context ".") on the
// remote builder, exporting to a fresh directory, with a trust report; it
// returns what it did, the report and the directory.
func (j *ciJob) build(t *testing.T, name string, args ...string) (result, trustReport, string) {
	t.Helper()
	out := filepath.Join(j.e.dir, "out-"+name)
	report := filepath.Join(j.e.dir, "report-"+name+".json")
	a := append([]string{"build"}, remoteBuildArgs()...)
	a = append(a, "--trust-report", report)
	a = append(a, args...)
	a = append(a, "-o", "type=local,dest="+out, ".")
	r := j.trustcache(t, a...)
	return r, readReport(t, report), out
}

// ciVerify is the part of verify --format json the CI gate reads.
type ciVerify struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	Trusted   bool   `json:"trusted"`
	Verdict   string `json:"verdict"`
	Signers   []struct {
		Builder     string            `json:"builder"`
		KeyID       string            `json:"keyId"`
		SignedAt    string            `json:"signedAt"`
		Annotations map[string]string `json:"annotations"`
	} `json:"signers"`
	Reasons []string `json:"reasons"`
}

// gate runs the CI gate, verify --format json REF, and returns its one
// result.
func (j *ciJob) gate(t *testing.T, code int, args ...string) ciVerify {
	t.Helper()
	r := j.trustcache(t, append([]string{"verify", "--format", "json"}, args...)...).wantCode(t, code)
	var v ciVerify
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("verify --format json: %v\n%s", err, r.stdout)
	}
	return v
}

func anyContains(list []string, subs ...string) bool {
	for _, s := range list {
		all := true
		for _, sub := range subs {
			all = all && strings.Contains(s, sub)
		}
		if all {
			return true
		}
	}
	return false
}

// TestCI runs the steps of examples/ with the variables GitHub Actions and
// GitLab CI set: a pull/merge request job holding the builder key (the
// worst case) cannot produce a cache that main uses; main's signed cache is
// used by pull/merge request jobs, and carries its signed source context.
func TestCI(t *testing.T) {
	for _, sys := range []ciSystem{ciGitHub, ciGitLab} {
		t.Run(sys.name, func(t *testing.T) { testCI(t, sys) })
	}
}

func testCI(t *testing.T, sys ciSystem) {
	// The builder key, made once; CI hands it to jobs as a protected
	// secret (TRUSTCACHE_KEY_PEM) with its password (TRUSTCACHE_PASSWORD).
	setup := trustEnv(t)
	setup.genKey(t, "ci-main")
	keyPEM, err := os.ReadFile(filepath.Join(setup.dir, "ci-main.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(setup.dir, "ci-main.pub")
	repo, stale := uniqueRepo(t), uniqueRepo(t)
	cache := repo + ":main"
	policy := ciPolicy(sys, repo, stale)

	prSigner := newCIJob(t, sys, sys.pr, string(keyPEM), pub, policy) // misconfigured: a PR job with the key
	mainJob := newCIJob(t, sys, sys.main, string(keyPEM), pub, policy)
	prJob := newCIJob(t, sys, sys.pr, "", pub, policy) // as in examples/: no secrets

	// (a) The PR job builds, exports to the main cache's tag and signs it
	// with the allowed key.
	prSigner.e.prune(t)
	_, rep, out := prSigner.build(t, "pr-signed", "--sign", "--key", "env://TRUSTCACHE_KEY_PEM",
		"--cache-to", "type=registry,ref="+cache+",mode=max")
	if len(rep.Signed) != 1 || rep.Signed[0].Kind != "cache" {
		t.Fatalf("the PR job signed %+v; want its cache", rep.Signed)
	}
	prSigned := rep.Signed[0].Reference
	prOut := readResult(t, out)

	// The main job's gate refuses it: signed by ci-main, but in a build of
	// the PR's ref.
	v := mainJob.gate(t, 3, cache)
	t.Logf("main job gate on the PR-signed cache: %+v", v)
	if v.Trusted || v.Verdict != "untrusted" || len(v.Signers) != 0 {
		t.Errorf("verify of the PR-signed cache = %+v; want untrusted, no signer counted", v)
	}
	if !anyContains(v.Reasons, "signed annotation ref=", sys.prRef, "refs/heads/main") {
		t.Errorf("verify reasons %q do not name the ref annotation (%s, not refs/heads/main)", v.Reasons, sys.prRef)
	}
	if prSigned != repoOf(cache)+"@"+v.Digest {
		t.Errorf("verify resolved %s to %s; the PR job signed %s", cache, v.Digest, prSigned)
	}
	r := mainJob.trustcache(t, "policy", "explain", cache).wantCode(t, 3)
	if !strings.Contains(r.stdout, "FAIL annotations") || !strings.Contains(r.stdout, sys.prRef) {
		t.Errorf("policy explain does not show the failing annotations rule:\n%s", r.stdout)
	}

	// The main job builds --cache-from the tag: the PR's cache is dropped,
	// the build runs without it, exports its own cache and signs it.
	mainJob.e.prune(t)
	r, rep, out = mainJob.build(t, "main", "--sign", "--key", "env://TRUSTCACHE_KEY_PEM",
		"--cache-from", cache, "--cache-to", "type=registry,ref="+cache+",mode=max")
	r.must(t)
	mainOut := readResult(t, out)
	if len(rep.Caches) == 1 {
		t.Logf("main job: cache %s: %s", rep.Caches[0].Action, rep.Caches[0].Reason)
	}
	if mainOut == prOut {
		t.Fatalf("the main job built the PR job's output %q: it imported the PR's cache", prOut)
	}
	if len(rep.Caches) != 1 || rep.Caches[0].Action != "dropped" ||
		!strings.Contains(rep.Caches[0].Reason, "signed annotation ref=") || !strings.Contains(rep.Caches[0].Reason, sys.prRef) {
		t.Errorf("main job trust report %+v; want the PR cache dropped for its ref annotation", rep.Caches)
	}
	if !strings.Contains(r.stderr, "WARNING: trustcache: dropped cache") {
		t.Errorf("the main job printed no warning for the dropped cache:\n%s", r.stderr)
	}
	if cached, total := cachedSteps(r.stderr); total == 0 || cached != 0 {
		t.Errorf("main job: %d of %d RUN steps CACHED; want none", cached, total)
	}
	if len(rep.Signed) != 1 || rep.Signed[0].Kind != "cache" {
		t.Fatalf("the main job signed %+v; want its cache", rep.Signed)
	}
	mainSigned := rep.Signed[0].Reference
	// The main job's own gate passes.
	if v := mainJob.gate(t, 0, cache); !v.Trusted {
		t.Errorf("main job gate after signing: %+v", v)
	}

	// (b) The PR job (no key) builds from main's cache: all of it CACHED,
	// main's output.
	prJob.e.prune(t)
	r, rep, out = prJob.build(t, "pr-consumer", "--cache-from", cache)
	r.must(t)
	if got := readResult(t, out); got != mainOut {
		t.Errorf("the PR job built %q; want %q from main's cache", got, mainOut)
	}
	if len(rep.Caches) != 1 || rep.Caches[0].Action != "used" || rep.Caches[0].Pinned != mainSigned {
		t.Errorf("PR job trust report %+v; want main's cache used, pinned to %s", rep.Caches, mainSigned)
	}
	if cached, total := cachedSteps(r.stderr); total == 0 || cached < total-1 {
		t.Errorf("PR job: %d of %d RUN steps CACHED; want all (BuildKit may realize the last from its cached layers)", cached, total)
	}

	// The PR job's gate shows the signed context of main's build.
	v = prJob.gate(t, 0, cache)
	t.Logf("PR job gate on main's cache: %+v", v)
	if !v.Trusted || len(v.Signers) != 1 || v.Signers[0].Builder != "ci-main" {
		t.Fatalf("PR job gate = %+v; want trusted, signed by ci-main", v)
	}
	ann := v.Signers[0].Annotations
	for k, want := range map[string]string{"repo": sys.repo, "ref": "refs/heads/main", "commit": sys.mainSHA, "run": sys.mainRun} {
		if ann[k] != want {
			t.Errorf("signed annotation %s = %q; want %q (all: %v)", k, ann[k], want, ann)
		}
	}
	if _, err := time.Parse(time.RFC3339, ann["created"]); err != nil {
		t.Errorf("signed annotation created = %q: %v", ann["created"], err)
	}
	r = prJob.trustcache(t, "verify", cache).must(t)
	for _, want := range []string{"repo=" + sys.repo, "ref=refs/heads/main", "commit=" + sys.mainSHA} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify (text) does not show %s:\n%s", want, r.stdout)
		}
	}

	// The PR job cannot sign: it has no key.
	before := strings.TrimSpace(prJob.e.crane(t, "digest", cache).must(t).stdout)
	a := append([]string{"build"}, remoteBuildArgs()...)
	a = append(a, "--sign", "--key", "env://TRUSTCACHE_KEY_PEM", "--cache-to", "type=registry,ref="+cache+",mode=max", ".")
	r = prJob.trustcache(t, a...).wantCode(t, 2)
	if !strings.Contains(r.stderr, "TRUSTCACHE_KEY_PEM") {
		t.Errorf("the keyless PR job's --sign error does not name the key:\n%s", r.stderr)
	}
	if after := strings.TrimSpace(prJob.e.crane(t, "digest", cache).must(t).stdout); after != before {
		t.Errorf("the refused --sign build still exported a cache: %s moved from %s to %s", cache, before, after)
	}

	// maxAge: a cache main signed is trusted while fresh and refused once
	// older than the scope's maxAge, also when the ledger remembers it.
	staleRef, _ := pushRandomImage(t, stale)
	// The signed creation time lies between these two.
	beforeSign := time.Now()
	mainJob.trustcache(t, "sign", "--key", "env://TRUSTCACHE_KEY_PEM", staleRef).must(t)
	afterSign := time.Now()
	r = mainJob.trustcache(t, "verify", staleRef)
	switch {
	case r.code == 0:
	case time.Since(beforeSign) >= ciMaxAge:
		t.Logf("signing and verifying took longer than maxAge %s; not checking the fresh verdict", ciMaxAge)
	default:
		t.Errorf("verify of a fresh signature within maxAge %s: %v", ciMaxAge, r)
	}
	time.Sleep(time.Until(afterSign.Add(ciMaxAge + time.Second)))
	for _, args := range [][]string{{staleRef}, {"--no-ledger", staleRef}} {
		v = mainJob.gate(t, 3, args...)
		t.Logf("gate after maxAge: %q", v.Reasons)
		if v.Trusted || !anyContains(v.Reasons, "older than maxAge") {
			t.Errorf("verify %s after maxAge = %+v; want untrusted: older than maxAge", strings.Join(args, " "), v)
		}
	}
}
