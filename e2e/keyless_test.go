//go:build e2e

package e2e

import (
	"encoding/json"
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
