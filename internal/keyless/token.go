package keyless

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment variables the token sources read. The caller passes a getenv
// function; this package reads no environment itself.
const (
	// EnvSigstoreIDToken is GitLab CI's id_tokens convention (and cosign's):
	// the token itself, audience sigstore.
	EnvSigstoreIDToken = "SIGSTORE_ID_TOKEN"
	// EnvGitHubRequestURL and EnvGitHubRequestToken are set in a GitHub
	// Actions job with "permissions: id-token: write".
	EnvGitHubRequestURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	EnvGitHubRequestToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

// Audience is the audience Fulcio requires of identity tokens.
const Audience = "sigstore"

// maxTokenSize bounds an identity token read from a file or a response.
const maxTokenSize = 64 << 10

// TokenSource returns an OIDC identity token when asked; it is asked when a
// certificate is needed (after a build, not before it), so that a
// short-lived CI token is fresh.
type TokenSource struct {
	// Name says where the token comes from, for messages: "--identity-token",
	// "SIGSTORE_ID_TOKEN", "GitHub Actions".
	Name  string
	fetch func(ctx context.Context) (string, error)
}

// Token returns a token and checks its shape (a JWT whose claims name an
// issuer and a subject, not expired).
func (ts TokenSource) Token(ctx context.Context) (string, error) {
	tok, err := ts.fetch(ctx)
	if err != nil {
		return "", fmt.Errorf("identity token from %s: %w", ts.Name, err)
	}
	if _, err := ParseClaims(tok, time.Now()); err != nil {
		return "", fmt.Errorf("identity token from %s: %w", ts.Name, err)
	}
	return tok, nil
}

// ErrNoToken reports that no token source is configured.
var ErrNoToken = errors.New("no OIDC identity token: pass --identity-token TOKEN|@FILE, or run where one is provided (GitHub Actions with permissions id-token: write sets " + EnvGitHubRequestURL + "; GitLab CI id_tokens named " + EnvSigstoreIDToken + ")")

// FindTokenSource picks the token source: flag (a token, or @FILE), else
// $SIGSTORE_ID_TOKEN, else the GitHub Actions ambient token (requested
// with audience sigstore through client; nil: http.DefaultClient). It
// fetches nothing: TokenSource.Token does.
func FindTokenSource(flag string, getenv func(string) string, client *http.Client) (TokenSource, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if flag != "" {
		if path, ok := strings.CutPrefix(flag, "@"); ok {
			if path == "" {
				return TokenSource{}, errors.New("--identity-token @FILE: empty file name")
			}
			return TokenSource{Name: "--identity-token @" + path, fetch: func(context.Context) (string, error) {
				return readTokenFile(path)
			}}, nil
		}
		tok := strings.TrimSpace(flag)
		if _, err := ParseClaims(tok, time.Time{}); err != nil {
			return TokenSource{}, fmt.Errorf("--identity-token: %w", err)
		}
		return TokenSource{Name: "--identity-token", fetch: func(context.Context) (string, error) { return tok, nil }}, nil
	}
	if tok := strings.TrimSpace(getenv(EnvSigstoreIDToken)); tok != "" {
		return TokenSource{Name: EnvSigstoreIDToken, fetch: func(context.Context) (string, error) { return tok, nil }}, nil
	}
	reqURL, reqTok := getenv(EnvGitHubRequestURL), getenv(EnvGitHubRequestToken)
	if reqURL != "" || reqTok != "" {
		if reqURL == "" || reqTok == "" {
			return TokenSource{}, fmt.Errorf("GitHub Actions token: %s and %s must both be set (the job needs permissions id-token: write)", EnvGitHubRequestURL, EnvGitHubRequestToken)
		}
		u, err := url.Parse(reqURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return TokenSource{}, fmt.Errorf("%s %q is not an http(s) URL", EnvGitHubRequestURL, reqURL)
		}
		q := u.Query()
		q.Set("audience", Audience)
		u.RawQuery = q.Encode()
		return TokenSource{Name: "GitHub Actions (" + EnvGitHubRequestURL + ")", fetch: func(ctx context.Context) (string, error) {
			return fetchGitHubToken(ctx, client, u.String(), reqTok)
		}}, nil
	}
	return TokenSource{}, ErrNoToken
}

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenSize+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxTokenSize {
		return "", fmt.Errorf("%s: more than %d bytes, not a token", path, maxTokenSize)
	}
	return strings.TrimSpace(string(b)), nil
}

// fetchGitHubToken asks the Actions runtime for a token (GitHub's
// documented "request an OIDC token" call: GET with the request token as
// bearer; the answer is {"value": TOKEN}).
func fetchGitHubToken(ctx context.Context, client *http.Client, reqURL, reqTok string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reqURL, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+reqTok)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("requesting the token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenSize+1))
	if err != nil {
		return "", fmt.Errorf("reading the token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token request answered %s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Value == "" {
		return "", fmt.Errorf("token response is not {\"value\": TOKEN}")
	}
	return v.Value, nil
}

// Claims are the identity token claims checked before asking Fulcio (which
// verifies the token; this only gives clear errors early).
type Claims struct {
	Issuer        string   `json:"iss"`
	Subject       string   `json:"sub"`
	Audience      audience `json:"aud"`
	Expiry        int64    `json:"exp"`
	Email         string   `json:"email"`
	EmailVerified any      `json:"email_verified"` // a bool, or "true" from some issuers
}

// proofSubject is what the proof of possession signs: the verified email
// for tokens that carry one (as sigstore's oauthflow reads it), else the
// subject (every CI token).
func (c Claims) proofSubject() string {
	if c.Email != "" && (c.EmailVerified == true || c.EmailVerified == "true") {
		return c.Email
	}
	return c.Subject
}

// audience is a JWT "aud": one string or a list.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New(`"aud" is neither a string nor a list of strings`)
	}
	*a = many
	return nil
}

// ParseClaims reads the claims of a JWT without verifying its signature
// (Fulcio does) and checks that it names an issuer and a subject, has
// audience sigstore, and, when now is not zero, has not expired.
func ParseClaims(token string, now time.Time) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("not a JWT (want three dot-separated parts, got %d)", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, fmt.Errorf("JWT claims are not base64url: %w", err)
	}
	var c Claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return Claims{}, fmt.Errorf("JWT claims are not a JSON object: %w", err)
	}
	if c.Issuer == "" || c.Subject == "" {
		return Claims{}, errors.New(`JWT claims lack "iss" or "sub"`)
	}
	found := false
	for _, a := range c.Audience {
		found = found || a == Audience
	}
	if !found {
		return Claims{}, fmt.Errorf("token audience is %q, want %q (Fulcio refuses others)", []string(c.Audience), Audience)
	}
	if !now.IsZero() && c.Expiry != 0 && now.Unix() >= c.Expiry {
		return Claims{}, fmt.Errorf("token from %s expired at %s", c.Issuer, time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}
