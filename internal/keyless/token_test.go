package keyless

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jwt returns an unsigned token with claims (the signature part is not
// read here: Fulcio verifies it).
func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256"}`)) + "." + enc(b) + ".c2ln"
}

func good(t *testing.T) string {
	return jwt(t, map[string]any{"iss": "https://issuer", "sub": "me", "aud": "sigstore", "exp": time.Now().Add(time.Hour).Unix()})
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestFindTokenSource(t *testing.T) {
	tok := good(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var gotAuth, gotAudience string
	// GitHub Actions' token endpoint (not a registry, so not testreg).
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotAudience = r.Header.Get("Authorization"), r.URL.Query().Get("audience")
		if r.URL.Query().Get("api-version") != "2.0" {
			http.Error(w, "api-version lost", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"value": tok})
	}))
	defer gh.Close()

	for _, tc := range []struct {
		name     string
		flag     string
		vars     map[string]string
		wantName string
	}{
		{"flag token", tok, nil, "--identity-token"},
		{"flag file", "@" + file, nil, "--identity-token @" + file},
		{"flag wins over env", tok, map[string]string{EnvSigstoreIDToken: "x.y.z"}, "--identity-token"},
		{"gitlab env", "", map[string]string{EnvSigstoreIDToken: tok}, EnvSigstoreIDToken},
		{"env wins over github", "", map[string]string{EnvSigstoreIDToken: tok, EnvGitHubRequestURL: gh.URL, EnvGitHubRequestToken: "rt"}, EnvSigstoreIDToken},
		{"github", "", map[string]string{EnvGitHubRequestURL: gh.URL + "/token?api-version=2.0", EnvGitHubRequestToken: "rt"}, "GitHub Actions (" + EnvGitHubRequestURL + ")"},
	} {
		ts, err := FindTokenSource(tc.flag, env(tc.vars), gh.Client())
		if err != nil {
			t.Errorf("%s: FindTokenSource = %v", tc.name, err)
			continue
		}
		if ts.Name != tc.wantName {
			t.Errorf("%s: source %q; want %q", tc.name, ts.Name, tc.wantName)
		}
		got, err := ts.Token(context.Background())
		if err != nil || got != tok {
			t.Errorf("%s: Token() = %q, %v; want the token", tc.name, got, err)
		}
	}
	if gotAuth != "Bearer rt" || gotAudience != Audience {
		t.Errorf("GitHub token request: Authorization %q, audience %q; want Bearer rt, sigstore", gotAuth, gotAudience)
	}
}

func TestFindTokenSourceErrors(t *testing.T) {
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no id-token permission", http.StatusForbidden)
	}))
	defer denied.Close()
	expired := jwt(t, map[string]any{"iss": "https://issuer", "sub": "me", "aud": "sigstore", "exp": time.Now().Add(-time.Minute).Unix()})
	for _, tc := range []struct {
		name string
		flag string
		vars map[string]string
		want string // in FindTokenSource's error, or else in Token's
	}{
		{"nothing", "", nil, "no OIDC identity token"},
		{"not a jwt", "abc", nil, "not a JWT"},
		{"bad base64", "a.!!!.c", nil, "not base64url"},
		{"no issuer", jwt(t, map[string]any{"sub": "me", "aud": "sigstore"}), nil, `lack "iss"`},
		{"other audience", jwt(t, map[string]any{"iss": "i", "sub": "me", "aud": []string{"a", "b"}}), nil, `want "sigstore"`},
		{"empty file name", "@", nil, "empty file name"},
		{"missing file", "@/does/not/exist", nil, "/does/not/exist"},
		{"expired", expired, nil, "expired at"},
		{"expired env", "", map[string]string{EnvSigstoreIDToken: expired}, "SIGSTORE_ID_TOKEN: token from https://issuer expired"},
		{"half github", "", map[string]string{EnvGitHubRequestURL: denied.URL}, "must both be set"},
		{"github url", "", map[string]string{EnvGitHubRequestURL: "ftp://x", EnvGitHubRequestToken: "rt"}, "not an http(s) URL"},
		{"github refuses", "", map[string]string{EnvGitHubRequestURL: denied.URL, EnvGitHubRequestToken: "rt"}, "403 Forbidden: no id-token permission"},
	} {
		ts, err := FindTokenSource(tc.flag, env(tc.vars), denied.Client())
		if err == nil {
			_, err = ts.Token(context.Background())
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v; want %q", tc.name, err, tc.want)
		}
	}
}
