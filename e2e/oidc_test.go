//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// keylessConfig is what e2e/sigstore.sh (through setup.sh's env file) says about the keyless
// services: Fulcio and the timestamp authority it started, the trust files it made from them,
// and the two issuer URLs Fulcio trusts, where this test binary serves the OIDC issuers.
type keylessConfig struct {
	fulcioURL     string // E2E_FULCIO_URL
	tsaURL        string // E2E_TSA_URL
	githubIssuer  string // E2E_OIDC_GITHUB_ISSUER: Fulcio type github-workflow
	gitlabIssuer  string // E2E_OIDC_GITLAB_ISSUER: Fulcio type gitlab-pipeline
	trustedRoot   string // E2E_KEYLESS_TRUSTED_ROOT: Fulcio's CA and the TSA's chain
	signingConfig string // E2E_SIGNING_CONFIG: the CA and TSA URLs (v0.2)
}

// keyless returns the keyless configuration, failing t when the services are not set up (run
// e2e/setup.sh, or e2e/sigstore.sh alone and source $TRUSTCACHE_E2E_DIR/sigstore.env).
func keyless(t testing.TB) keylessConfig {
	t.Helper()
	var missing []string
	need := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			missing = append(missing, k)
		}
		return v
	}
	k := keylessConfig{
		fulcioURL:     need("E2E_FULCIO_URL"),
		tsaURL:        need("E2E_TSA_URL"),
		githubIssuer:  need("E2E_OIDC_GITHUB_ISSUER"),
		gitlabIssuer:  need("E2E_OIDC_GITLAB_ISSUER"),
		trustedRoot:   need("E2E_KEYLESS_TRUSTED_ROOT"),
		signingConfig: need("E2E_SIGNING_CONFIG"),
	}
	if len(missing) > 0 {
		t.Fatalf("keyless services not configured (%s): run e2e/setup.sh and source its env file", strings.Join(missing, ", "))
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(k.fulcioURL + "/api/v1/rootCert")
	if err != nil {
		t.Fatalf("Fulcio at %s: %v (not running? run e2e/setup.sh)", k.fulcioURL, err)
	}
	resp.Body.Close()
	return k
}

// issuer is an OIDC issuer as Fulcio sees one: discovery document, JWKS, and tokens signed by
// its key. It also answers GitHub Actions' token request (GET /actions-token?audience=…, with
// the request token as bearer), for the ambient-token path.
type issuer struct {
	url          string
	key          *ecdsa.PrivateKey
	kid          string
	requestToken string                // the bearer /actions-token wants
	actionClaims func() map[string]any // the claims /actions-token mints
	mu           sync.Mutex
}

var (
	issuersMu sync.Mutex
	issuers   = map[string]*issuer{}
)

// oidcIssuer returns the issuer serving at issuerURL (a fixed loopback address that Fulcio's
// config names), starting it the first time. It lives as long as the test binary.
func oidcIssuer(t testing.TB, issuerURL string) *issuer {
	t.Helper()
	issuersMu.Lock()
	defer issuersMu.Unlock()
	if is, ok := issuers[issuerURL]; ok {
		return is
	}
	u, err := url.Parse(issuerURL)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{url: issuerURL, key: key, kid: "e2e-" + randomHex(t, 8), requestToken: randomHex(t, 16)}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatalf("OIDC issuer %s: %v (another e2e run using the keyless issuers?)", issuerURL, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                                is.url,
			"jwks_uri":                              is.url + "/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /actions-token", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		claims := is.actionClaims
		is.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+is.requestToken || claims == nil {
			http.Error(w, "bad request token", http.StatusUnauthorized)
			return
		}
		c := claims()
		c["aud"] = r.URL.Query().Get("audience")
		tok, err := is.sign(c)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]string{"value": tok})
	})
	go http.Serve(ln, mux)
	issuers[issuerURL] = is
	return is
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// token mints a token with claims, plus iss, aud sigstore, iat, nbf and a 10-minute exp unless
// claims set them.
func (is *issuer) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"aud": "sigstore"}
	for k, v := range claims {
		c[k] = v
	}
	tok, err := is.sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (is *issuer) sign(claims map[string]any) (string, error) {
	now := time.Now()
	c := map[string]any{"iss": is.url, "iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(10 * time.Minute).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: is.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", is.kid))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// tokenFile writes tok to a file in e's directory and returns "@path" for --identity-token.
func (e *env) tokenFile(t testing.TB, name, tok string) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(tok), 0o600); err != nil { // no newline: cosign reads the file as is
		t.Fatal(err)
	}
	return "@" + p
}

// ghRun is one GitHub Actions workflow run, as the claims of its OIDC token tell it.
type ghRun struct {
	repo     string // owner/name
	workflow string // path in the repository, e.g. .github/workflows/build.yml
	ref      string // refs/heads/main, refs/pull/7/merge
	event    string // push, pull_request
}

// claims are the claims GitHub puts in an Actions OIDC token (all that Fulcio's
// github-workflow type requires, and the usual others), for run r.
func (r ghRun) claims() map[string]any {
	owner, _, _ := strings.Cut(r.repo, "/")
	sha := strings.Repeat("a1", 20)
	wref := r.repo + "/" + r.workflow + "@" + r.ref
	sub := "repo:" + r.repo + ":ref:" + r.ref
	if r.event == "pull_request" {
		sub = "repo:" + r.repo + ":pull_request"
	}
	refType := "branch"
	if strings.HasPrefix(r.ref, "refs/tags/") {
		refType = "tag"
	}
	return map[string]any{
		"sub": sub, "repository": r.repo, "repository_owner": owner,
		"repository_id": "1001", "repository_owner_id": "2002", "repository_visibility": "private",
		"ref": r.ref, "ref_type": refType, "sha": sha,
		"workflow": "build", "workflow_ref": wref, "workflow_sha": sha,
		"job_workflow_ref": wref, "job_workflow_sha": sha,
		"event_name": r.event, "run_id": "3003", "run_number": "7", "run_attempt": "1",
		"runner_environment": "github-hosted", "actor": "octocat", "actor_id": "4004",
	}
}

// identity is the certificate SAN Fulcio gives run r.
func (r ghRun) identity() string {
	return "https://github.com/" + r.repo + "/" + r.workflow + "@" + r.ref
}

// glPipeline is one GitLab CI pipeline job, as the claims of its id_token tell it.
type glPipeline struct {
	project string // namespace/name
	branch  string
}

// claims are what GitLab puts in a CI id_token (all that Fulcio's gitlab-pipeline type
// requires).
func (p glPipeline) claims() map[string]any {
	ns, _, _ := strings.Cut(p.project, "/")
	sha := strings.Repeat("b2", 20)
	return map[string]any{
		"sub":          fmt.Sprintf("project_path:%s:ref_type:branch:ref:%s", p.project, p.branch),
		"namespace_id": "11", "namespace_path": ns, "project_id": "22", "project_path": p.project,
		"user_id": "33", "user_login": "dev", "pipeline_id": "44", "pipeline_source": "push",
		"job_id": "55", "ref": p.branch, "ref_type": "branch", "ref_protected": "true",
		"ci_config_ref_uri": "gitlab.com/" + p.project + "//.gitlab-ci.yml@refs/heads/" + p.branch,
		"ci_config_sha":     sha, "sha": sha, "runner_id": 66, "runner_environment": "gitlab-hosted",
		"project_visibility": "private",
	}
}

// identity is the certificate SAN Fulcio gives pipeline p.
func (p glPipeline) identity() string {
	return "https://gitlab.com/" + p.project + "//.gitlab-ci.yml@refs/heads/" + p.branch
}
