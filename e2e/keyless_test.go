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

// cosignKeylessVerifyArgs verifies ref offline with the keyless trusted root: identity and
// issuer exact, the certificate's time checked against the RFC 3161 timestamp (not now), no
// transparency log and no SCT (the e2e Fulcio has no CT log).
func cosignKeylessVerifyArgs(k keylessConfig, identity, issuer, ref string) []string {
	return []string{"verify", "--trusted-root", k.trustedRoot,
		"--certificate-identity", identity, "--certificate-oidc-issuer", issuer,
		"--insecure-ignore-tlog=true", "--insecure-ignore-sct=true", "--use-signed-timestamps=true", ref}
}

// TestKeylessSignCosignVerifies: docker trustcache sign --keyless, against the real Fulcio and
// timestamp authority, writes signatures that cosign v3 (both formats) and cosign v2 (the .sig
// tag) verify for the exact identity and issuer, and refuse for another identity. The token
// comes from each source: --identity-token @FILE, --identity-token TOKEN, SIGSTORE_ID_TOKEN
// (GitLab), and the GitHub Actions token request.
func TestKeylessSignCosignVerifies(t *testing.T) {
	k := keyless(t)
	gh := oidcIssuer(t, k.githubIssuer)
	gl := oidcIssuer(t, k.gitlabIssuer)
	main := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/heads/main", event: "push"}
	pr := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/pull/7/merge", event: "pull_request"}
	pipe := glPipeline{project: "acme/app", branch: "main"}

	for _, tc := range []struct {
		name     string
		format   string
		token    func(e *env) []string // sign flags, or env set on e
		identity string
		issuer   string
	}{
		{"github-file-legacy", "legacy", func(e *env) []string {
			return []string{"--identity-token", e.tokenFile(t, "gh.jwt", gh.token(t, main.claims()))}
		}, main.identity(), gh.url},
		{"github-actions-bundle", "bundle", func(e *env) []string {
			gh.mu.Lock()
			gh.actionClaims = main.claims
			gh.mu.Unlock()
			e.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", gh.url+"/actions-token?api-version=2.0")
			e.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", gh.requestToken)
			return nil
		}, main.identity(), gh.url},
		{"gitlab-env-legacy", "legacy", func(e *env) []string {
			e.setenv("SIGSTORE_ID_TOKEN", gl.token(t, pipe.claims()))
			return nil
		}, pipe.identity(), gl.url},
		{"gitlab-flag-bundle", "bundle", func(e *env) []string {
			return []string{"--identity-token", gl.token(t, pipe.claims())}
		}, pipe.identity(), gl.url},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := trustEnv(t)
			repo := uniqueRepo(t)
			ref, digest := pushRandomImage(t, repo)
			pinned := repo + "@" + digest
			args := append([]string{"sign", "--keyless", "--signing-config", k.signingConfig, "--signature-format", tc.format}, tc.token(e)...)
			r := e.runWith(t, deadProxy, nil, cfg.docker, append(append([]string{"trustcache"}, args...), ref)...).must(t)
			if strings.TrimSpace(r.stdout) != pinned {
				t.Errorf("sign printed %q; want %q", r.stdout, pinned)
			}
			e.cosign3(t, cosignKeylessVerifyArgs(k, tc.identity, tc.issuer, pinned)...).must(t)
			if tc.format == "legacy" {
				e.cosign(t, cosignKeylessVerifyArgs(k, tc.identity, tc.issuer, pinned)...).must(t)
				checkLegacyKeylessLayer(t, e, repo, digest)
			} else {
				e.cosign(t, append([]string{"verify", "--new-bundle-format"}, cosignKeylessVerifyArgs(k, tc.identity, tc.issuer, pinned)[1:]...)...).must(t)
			}
			// The check is real: another identity (the pull-request run of the same workflow)
			// and another issuer are refused.
			if r := e.cosign3(t, cosignKeylessVerifyArgs(k, pr.identity(), gh.url, pinned)...); r.code == 0 {
				t.Errorf("cosign verify for the pull-request identity passed:\n%v", r)
			}
			if r := e.cosign3(t, cosignKeylessVerifyArgs(k, tc.identity, "https://token.actions.githubusercontent.com", pinned)...); r.code == 0 {
				t.Errorf("cosign verify for another issuer passed:\n%v", r)
			}
		})
	}
}

// checkLegacyKeylessLayer: the .sig layer carries the certificate, the chain and the RFC 3161
// timestamp under cosign v2's annotation keys.
func checkLegacyKeylessLayer(t *testing.T, e *env, repo, digest string) {
	t.Helper()
	tag := repo + ":sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig"
	var m struct {
		Layers []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(e.crane(t, "manifest", tag).must(t).stdout), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("%s has %d layers; want 1", tag, len(m.Layers))
	}
	a := m.Layers[0].Annotations
	for _, k := range []string{"dev.cosignproject.cosign/signature", "dev.sigstore.cosign/certificate", "dev.sigstore.cosign/chain", "dev.sigstore.cosign/rfc3161timestamp"} {
		if a[k] == "" {
			t.Errorf("%s: no %s annotation (have %v)", tag, k, a)
		}
	}
	if !strings.HasPrefix(a["dev.sigstore.cosign/certificate"], "-----BEGIN CERTIFICATE-----") {
		t.Errorf("certificate annotation is not PEM: %q", a["dev.sigstore.cosign/certificate"])
	}
	if !strings.HasPrefix(a["dev.sigstore.cosign/rfc3161timestamp"], `{"SignedRFC3161Timestamp":"`) {
		t.Errorf("timestamp annotation is %q", a["dev.sigstore.cosign/rfc3161timestamp"])
	}
}

// TestKeylessSignErrors: keyless configuration errors are usage errors naming the flag or
// the source, and write nothing.
func TestKeylessSignErrors(t *testing.T) {
	k := keyless(t)
	gh := oidcIssuer(t, k.githubIssuer)
	e := trustEnv(t)
	repo := uniqueRepo(t)
	ref, digest := pushRandomImage(t, repo)
	sigTag := repo + ":sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig"
	main := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/heads/main", event: "push"}
	expired := main.claims()
	expired["exp"] = time.Now().Add(-time.Minute).Unix()
	wrongAud := main.claims()
	wrongAud["aud"] = "someone-else"

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--keyless", "--signing-config", k.signingConfig}, 2, "no OIDC identity token"},
		{[]string{"--keyless", "--key", "x.key", "--identity-token", "a.b.c"}, 2, "drop --key"},
		{[]string{"--identity-token", "a.b.c", "--key", "x.key"}, 2, "need --keyless"},
		{[]string{"--keyless", "--identity-token", "not-a-jwt"}, 2, "--identity-token: not a JWT"},
		{[]string{"--keyless", "--identity-token", "@" + e.dir + "/missing.jwt", "--signing-config", k.signingConfig}, 1, "missing.jwt"},
		{[]string{"--keyless", "--identity-token", gh.token(t, main.claims()), "--signing-config", e.dir + "/nope.json"}, 2, "nope.json"},
		{[]string{"--keyless", "--identity-token", gh.token(t, wrongAud)}, 2, `want "sigstore"`},
		{[]string{"--keyless", "--identity-token", gh.token(t, expired), "--signing-config", k.signingConfig}, 1, "expired"},
		// Fulcio refuses a token that lacks a claim its github-workflow type requires.
		{[]string{"--keyless", "--identity-token", gh.token(t, map[string]any{"sub": "repo:acme/app:ref:refs/heads/main"}), "--signing-config", k.signingConfig}, 1, "Fulcio"},
	} {
		r := e.runWith(t, deadProxy, nil, cfg.docker, append(append([]string{"trustcache", "sign"}, tc.args...), ref)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("sign %v: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if r := e.crane(t, "manifest", sigTag); r.code == 0 {
		t.Errorf("a failed keyless sign wrote %s:\n%s", sigTag, r.stdout)
	}
}

// keylessPolicy writes a policy whose one builder, gha-main, is the identity of the main-branch
// run of acme/app's build workflow (GitHub-shaped tokens from the e2e issuer), for every
// repository of the e2e registry. Bundles that name no repository (cosign's) count there.
func (e *env) keylessPolicy(t *testing.T, k keylessConfig, file string, run ghRun) string {
	t.Helper()
	text := `version: 1
trustedRoot: ` + k.trustedRoot + `
builders:
  - name: gha-main
    identity:
      issuer: ` + k.githubIssuer + `
      subject: ` + run.identity() + `
      repository: https://github.com/` + run.repo + `
      ref: ` + run.ref + `
      requireTimestamp: tsa
scopes:
  - repositories: ["` + cfg.registry + `/e2e/**"]
    builders: [gha-main]
    acceptUnboundBundles: true
`
	path := filepath.Join(e.dir, file)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKeylessVerify: what trustcache, cosign v2 (.sig layer) and cosign v3 (bundle) sign
// keyless against the real Fulcio and TSA, trustcache verifies offline for the main-branch identity, and refuses under a policy
// that wants another identity (the pull-request run of the same workflow).
func TestKeylessVerify(t *testing.T) {
	k := keyless(t)
	gh := oidcIssuer(t, k.githubIssuer)
	main := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/heads/main", event: "push"}
	pr := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/pull/7/merge", event: "pull_request"}
	e := trustEnv(t)
	mainPolicy := e.keylessPolicy(t, k, "main.yaml", main)
	prPolicy := e.keylessPolicy(t, k, "pr.yaml", pr)
	repo := uniqueRepo(t)

	for _, tc := range []struct {
		name string
		sign func(t *testing.T, pinned string)
	}{
		{"trustcache legacy", func(t *testing.T, pinned string) {
			e.runWith(t, deadProxy, nil, cfg.docker, "trustcache", "sign", "--keyless", "--signing-config", k.signingConfig,
				"--identity-token", gh.token(t, main.claims()), "--signature-format", "legacy", "--no-ledger", pinned).must(t)
		}},
		{"trustcache bundle", func(t *testing.T, pinned string) {
			e.runWith(t, deadProxy, nil, cfg.docker, "trustcache", "sign", "--keyless", "--signing-config", k.signingConfig,
				"--identity-token", gh.token(t, main.claims()), "--signature-format", "bundle", "--no-ledger", pinned).must(t)
		}},
		{"cosign v2 legacy", func(t *testing.T, pinned string) {
			// cosign v2.6.5 keyless: a Fulcio certificate (no SCT: the e2e Fulcio has no CT
			// log), an RFC 3161 timestamp from the TSA, nothing uploaded to a transparency log;
			// a .sig layer with the certificate, chain and timestamp annotations.
			tok := strings.TrimPrefix(e.tokenFile(t, "cosign2.jwt", gh.token(t, main.claims())), "@")
			e.cosign(t, "sign", "--fulcio-url", k.fulcioURL, "--timestamp-server-url", k.tsaURL,
				"--tlog-upload=false", "--insecure-skip-verify=true", "--oidc-disable-ambient-providers=true",
				"--identity-token", tok, "-y", pinned).must(t)
			repoOf, digest, _ := strings.Cut(pinned, "@")
			checkLegacyKeylessLayer(t, e, repoOf, digest)
		}},
		{"cosign v3 bundle", func(t *testing.T, pinned string) {
			// cosign v3 reads --identity-token as a file when it can.
			tok := strings.TrimPrefix(e.tokenFile(t, "cosign.jwt", gh.token(t, main.claims())), "@")
			e.cosign3(t, "sign", "--signing-config", k.signingConfig, "--trusted-root", k.trustedRoot,
				"--identity-token", tok, "-y", pinned).must(t)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, digest := pushRandomImage(t, repo)
			pinned := repo + "@" + digest
			tc.sign(t, pinned)
			r := e.trustcache(t, "verify", "--policy", mainPolicy, "--no-ledger", "--format", "json", pinned).must(t)
			v := parseVerify(t, r.stdout)
			if len(v) != 1 || !v[0].Trusted || len(v[0].Signers) != 1 || v[0].Signers[0].Builder != "gha-main" {
				t.Errorf("verify under the main identity: %+v; want trusted by gha-main", v)
			}
			r = e.trustcache(t, "verify", "--policy", prPolicy, "--no-ledger", "--format", "json", pinned).wantCode(t, 3)
			if v := parseVerify(t, r.stdout); len(v) != 1 || v[0].Trusted {
				t.Errorf("verify under the pull-request identity: %+v; want untrusted", v)
			}
		})
	}
}

// TestKeylessBuildMainVsPR: the headline of issue 15 with real BuildKit, Fulcio and TSA. The
// main-branch run of the workflow and a pull-request run of the same workflow each build,
// export their cache and sign it keyless with their own OIDC token (build --sign --keyless);
// a fresh builder under a policy naming the main-branch identity imports the first (every
// step cached, main's output) and drops the second.
func TestKeylessBuildMainVsPR(t *testing.T) {
	k := keyless(t)
	gh := oidcIssuer(t, k.githubIssuer)
	main := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/heads/main", event: "push"}
	pr := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/pull/7/merge", event: "pull_request"}
	e := trustEnv(t)
	ctx := e.project(t)
	// A first step of its own, so that other tests building the same Dockerfile on the shared
	// builder at the same time share no cache record with this one.
	df := filepath.Join(ctx, "Dockerfile")
	b, err := os.ReadFile(df)
	if err != nil {
		t.Fatal(err)
	}
	unique := strings.Replace(string(b), "RUN echo trustcache-e2e", "RUN echo "+randomHex(t, 8)+" > /nonce.txt && echo trustcache-e2e", 1)
	if err := os.WriteFile(df, []byte(unique), 0o644); err != nil {
		t.Fatal(err)
	}
	policy := e.keylessPolicy(t, k, "main.yaml", main)
	repo := uniqueRepo(t)

	produce := func(t *testing.T, run ghRun, tag string, trusted bool) (signed, output string) {
		t.Helper()
		e.prune(t)
		out := filepath.Join(e.dir, "out-"+tag)
		report := filepath.Join(e.dir, "report-"+tag+".json")
		args := append([]string{"trustcache", "build"}, remoteBuildArgs()...)
		args = append(args, "--trust-policy", policy, "--trust-report", report, "--sign", "--keyless",
			"--signing-config", k.signingConfig, "--identity-token", e.tokenFile(t, tag+".jwt", gh.token(t, run.claims())),
			"--cache-to", "type=registry,ref="+repo+":"+tag+",mode=max", "-o", "type=local,dest="+out, ctx)
		start := time.Now()
		r := e.runWith(t, deadProxy, nil, cfg.docker, args...).must(t)
		t.Logf("%s: build + cache export + keyless sign in %s", tag, time.Since(start).Round(time.Millisecond))
		// The build checks what it signed against the policy: main's signature is trusted (and
		// recorded in the ledger), the pull request's is reported as not trusted.
		if note := strings.Contains(r.stderr, "is not trusted by"); note == trusted {
			t.Errorf("%s: the policy's note on the signature (trusted %v):\n%s", tag, trusted, r.stderr)
		}
		rep := readReport(t, report)
		if len(rep.Signed) == 0 || rep.Signed[0].Kind != "cache" {
			t.Fatalf("%s signed %+v; want the cache manifest", tag, rep.Signed)
		}
		return rep.Signed[0].Reference, readResult(t, out)
	}
	mainCache, honest := produce(t, main, "main", true)
	// The signature is what cosign accepts for the main identity.
	e.cosign3(t, cosignKeylessVerifyArgs(k, main.identity(), gh.url, mainCache)...).must(t)
	_, prOutput := produce(t, pr, "pr", false)

	consume := func(t *testing.T, tag string) (result, trustReport, string) {
		t.Helper()
		e.prune(t)
		out := filepath.Join(e.dir, "consumer-"+tag)
		report := filepath.Join(e.dir, "consumer-"+tag+".json")
		args := append([]string{"build"}, remoteBuildArgs()...)
		args = append(args, "--trust-policy", policy, "--no-ledger", "--trust-report", report,
			"--cache-from", repo+":"+tag, "-o", "type=local,dest="+out, ctx)
		r := e.trustcache(t, args...).must(t)
		return r, readReport(t, report), readResult(t, out)
	}
	r, rep, got := consume(t, "main")
	if got != honest {
		t.Errorf("consumer of main's cache built %q; want main's %q", got, honest)
	}
	if len(rep.Caches) != 1 || rep.Caches[0].Action != "used" || rep.Caches[0].Pinned != mainCache {
		t.Errorf("trust report %+v; want main's cache used, pinned to %s", rep.Caches, mainCache)
	}
	if cached, total := cachedSteps(r.stderr); total == 0 || cached < total-1 {
		t.Errorf("consumer of main's cache: %d of %d RUN steps CACHED", cached, total)
	}

	r, rep, got = consume(t, "pr")
	if got == prOutput || got == honest {
		t.Errorf("consumer of the pull request's cache built %q (pr %q, main %q); want a fresh build", got, prOutput, honest)
	}
	if len(rep.Caches) != 1 || rep.Caches[0].Action != "dropped" || !strings.Contains(rep.Caches[0].Reason, "refs/pull/7/merge") {
		t.Errorf("trust report %+v; want the pull request's cache dropped, naming its ref", rep.Caches)
	}
	if !strings.Contains(r.stderr, "WARNING: trustcache: dropped cache") {
		t.Errorf("no warning for the dropped cache:\n%s", r.stderr)
	}
}

// BenchmarkKeylessSign times docker trustcache sign, whole process, legacy format, each run
// signing a fresh image (no earlier signatures to read): with a key, and keyless (a Fulcio
// certificate and an RFC 3161 timestamp from the loopback services). Run both in one
// invocation and compare them as a ratio (benchstat):
//
//	go test -tags e2e -run '^$' -bench BenchmarkKeylessSign -count 7 ./e2e/
func BenchmarkKeylessSign(b *testing.B) {
	k := keyless(b)
	gh := oidcIssuer(b, k.githubIssuer)
	main := ghRun{repo: "acme/app", workflow: ".github/workflows/build.yml", ref: "refs/heads/main", event: "push"}
	e := trustEnv(b)
	e.genKey(b, "tc")
	repo := uniqueRepo(b)
	token := e.tokenFile(b, "gh.jwt", gh.token(b, main.claims()))
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"key", []string{"--key", "tc.key"}},
		{"keyless", []string{"--keyless", "--signing-config", k.signingConfig, "--identity-token", token}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				_, digest := pushRandomImage(b, repo)
				args := append(append([]string{"trustcache", "sign", "--no-ledger"}, bc.args...), repo+"@"+digest)
				b.StartTimer()
				e.runWith(b, deadProxy, nil, cfg.docker, args...).must(b)
			}
		})
	}
}
