//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// trustEnv is an env with the trustcache key password set and helpers for
// keys and policies kept in its directory.
func trustEnv(t testing.TB) *env {
	t.Helper()
	e := newEnv(t)
	e.setenv("TRUSTCACHE_PASSWORD", keyPassword)
	return e
}

// genKey makes NAME.key and NAME.pub in e's directory with docker trustcache.
func (e *env) genKey(t testing.TB, name string) {
	t.Helper()
	r := e.trustcache(t, "keys", "generate", "--name", name, "--dir", e.dir).must(t)
	if !strings.HasPrefix(strings.TrimSpace(r.stdout), "sha256:") {
		t.Fatalf("keys generate printed %q; want a key id", r.stdout)
	}
}

// builder is one builder of a test policy: a name and its public key files.
type builder struct {
	name string
	keys []string
}

// scope is one scope of a test policy.
type scope struct {
	repos    []string
	builders []string
	extra    string // further YAML lines for the scope, indented four spaces
}

// writePolicy writes a policy to e's directory as FILE and returns its path.
func (e *env) writePolicy(t testing.TB, file string, builders []builder, scopes []scope) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\nbuilders:\n")
	for _, bl := range builders {
		b.WriteString("  - name: " + bl.name + "\n    keys: [" + strings.Join(bl.keys, ", ") + "]\n")
	}
	b.WriteString("scopes:\n")
	for _, s := range scopes {
		q := make([]string, len(s.repos))
		for i, r := range s.repos {
			q[i] = `"` + r + `"`
		}
		b.WriteString("  - repositories: [" + strings.Join(q, ", ") + "]\n    builders: [" + strings.Join(s.builders, ", ") + "]\n")
		if s.extra != "" {
			b.WriteString(s.extra + "\n")
		}
	}
	path := filepath.Join(e.dir, file)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// verifyJSON is the part of `verify --format json` the tests read.
type verifyJSON struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	Trusted   bool   `json:"trusted"`
	Verdict   string `json:"verdict"`
	Level     string `json:"level"`
	Signers   []struct {
		Builder  string `json:"builder"`
		KeyID    string `json:"keyId"`
		SignedAt string `json:"signedAt"`
	} `json:"signers"`
	Reasons []string `json:"reasons"`
}

// parseVerify parses the JSON lines verify --format json printed.
func parseVerify(t testing.TB, out string) []verifyJSON {
	t.Helper()
	var res []verifyJSON
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v verifyJSON
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("verify --format json output: %v\n%s", err, out)
		}
		res = append(res, v)
	}
	return res
}

// cosignVerifyArgs are the arguments for an offline `cosign verify --key`.
func cosignVerifyArgs(pub, ref string) []string {
	return []string{"verify", "--key", pub, "--insecure-ignore-tlog=true", "--trusted-root", cfg.trustedRoot, ref}
}

// repoOf returns the repository of a tag or digest reference.
func repoOf(ref string) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}
