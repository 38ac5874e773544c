package trustpolicy

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// policyTestKey is a public key written for a test.
type policyTestKey struct {
	PEM string // the PEM text
	ID  string // its key id
}

// writePolicyKey generates an ECDSA P-256 key and writes its PEM public key
// to dir/rel.
func writePolicyKey(t testing.TB, dir, rel string) policyTestKey {
	t.Helper()
	priv := testreg.Key(t)
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	text := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := keys.ID(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return policyTestKey{PEM: string(text), ID: id}
}

// policyKeyNames are the keys every policy test directory holds, as
// keys/NAME.pub.
var policyKeyNames = []string{"ci-main", "release", "rotated", "other"}

// policyTestDir returns a directory holding keys/NAME.pub for each of
// policyKeyNames and keys/garbage.pub (not a key), and the keys by name.
func policyTestDir(t testing.TB) (string, map[string]policyTestKey) {
	t.Helper()
	dir := t.TempDir()
	ks := make(map[string]policyTestKey)
	for _, n := range policyKeyNames {
		ks[n] = writePolicyKey(t, dir, filepath.Join("keys", n+".pub"))
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "garbage.pub"), []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, ks
}

// parsePolicyInDir parses text as dir/policy.yaml and returns the error text with
// dir removed, so that it reads "policy.yaml:3:5: …".
func parsePolicyInDir(dir, text string) (*Policy, string) {
	p, err := Parse(filepath.Join(dir, "policy.yaml"), []byte(text))
	if err != nil {
		return p, strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
	}
	return p, ""
}

const validPolicyText = `version: 1
builders:
  - name: ci-main
    key: keys/ci-main.pub
  - name: release
    keys:
      - keys/release.pub
      - keys/rotated.pub
scopes:
  - repositories: ["registry.example.com/team/app-cache", "registry.example.com/team/*"]
    builders: [ci-main, release]
    threshold: 2
    level: audit
    onUntrusted: fail
    maxAge: 30d
    annotations:
      ref: refs/heads/main
      pr: 42
    acceptUnboundBundles: true
  - repositories: ["docker.io/org/*", "nginx"]
    builders: [release]
  - repositories: ["**"]
    level: skip
revoked: ["REVOKED"]
allowUnsignedTypes: [local, gha, local]
signatureFormat: bundle
requireVerifiedBytes: true
`

func TestParsePolicy(t *testing.T) {
	dir, ks := policyTestDir(t)
	text := strings.Replace(validPolicyText, "REVOKED", ks["rotated"].ID, 1)
	p, errText := parsePolicyInDir(dir, text)
	if errText != "" {
		t.Fatalf("Parse = %s; want no error", errText)
	}
	sum := sha256.Sum256([]byte(text))
	want := &Policy{
		File:    filepath.Join(dir, "policy.yaml"),
		Digest:  "sha256:" + hex.EncodeToString(sum[:]),
		Version: 1,
		Builders: []Builder{
			{Name: "ci-main", Line: 3, Keys: []Key{{ID: ks["ci-main"].ID, Ref: "keys/ci-main.pub"}}},
			{Name: "release", Line: 5, Keys: []Key{
				{ID: ks["release"].ID, Ref: "keys/release.pub"},
				{ID: ks["rotated"].ID, Ref: "keys/rotated.pub"},
			}},
		},
		Scopes: []Scope{
			{
				Repositories:         []string{"registry.example.com/team/app-cache", "registry.example.com/team/*"},
				Builders:             []string{"ci-main", "release"},
				Threshold:            2,
				Level:                LevelAudit,
				OnUntrusted:          Fail,
				MaxAge:               720 * time.Hour,
				Annotations:          map[string]string{"ref": "refs/heads/main", "pr": "42"},
				AcceptUnboundBundles: true,
				Line:                 10,
			},
			{
				Repositories: []string{"docker.io/org/*", "nginx"},
				Builders:     []string{"release"},
				Threshold:    1,
				Level:        LevelStrict,
				OnUntrusted:  Drop,
				Line:         20,
			},
			{
				Repositories: []string{"**"},
				Threshold:    1,
				Level:        LevelSkip,
				OnUntrusted:  Drop,
				Line:         22,
			},
		},
		Revoked:              []string{ks["rotated"].ID},
		AllowUnsignedTypes:   []string{"local", "gha"},
		SignatureFormat:      SignatureFormatBundle,
		RequireVerifiedBytes: true,
	}
	// Public keys are checked through their ids.
	if diff := cmp.Diff(want, p, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".Public"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
	for _, b := range p.Builders {
		for _, k := range b.Keys {
			if id, err := keys.ID(k.Public); err != nil || id != k.ID {
				t.Errorf("builder %s key %s: keys.ID(Public) = %s, %v; want %s", b.Name, k.Ref, id, err, k.ID)
			}
		}
	}
}

func TestParsePolicyKeyReferences(t *testing.T) {
	dir, ks := policyTestDir(t)
	t.Setenv("TRUSTCACHE_TEST_POLICY_KEY", ks["other"].PEM)
	inline := strings.ReplaceAll(strings.TrimSpace(ks["release"].PEM), "\n", "\n      ")
	abs := filepath.Join(dir, "keys", "rotated.pub")
	text := `version: 1
builders:
  - name: relative
    key: keys/ci-main.pub
  - name: inline
    key: |
      ` + inline + `
  - name: absolute
    key: ` + abs + `
  - name: env
    key: env://TRUSTCACHE_TEST_POLICY_KEY
scopes:
  - repositories: [registry.example.com/x]
    builders: [relative, inline, absolute, env]
`
	// The policy file's own directory, not the working directory, anchors
	// relative key paths.
	p, errText := parsePolicyInDir(dir, text)
	if errText != "" {
		t.Fatalf("Parse = %s; want no error", errText)
	}
	want := map[string]string{
		"relative": ks["ci-main"].ID,
		"inline":   ks["release"].ID,
		"absolute": ks["rotated"].ID,
		"env":      ks["other"].ID,
	}
	for name, id := range want {
		b, ok := p.Builder(name)
		if !ok {
			t.Errorf("Builder(%q) = _, false; want true", name)
			continue
		}
		if len(b.Keys) != 1 || b.Keys[0].ID != id {
			t.Errorf("Builder(%q).Keys = %+v; want one key %s", name, b.Keys, id)
		}
	}
	b, _ := p.Builder("inline")
	if got := b.Keys[0].Display(); got != "(inline PEM)" {
		t.Errorf("inline Key.Display() = %q; want (inline PEM)", got)
	}
	if _, ok := p.Builder("nobody"); ok {
		t.Errorf("Builder(%q) = _, true; want false", "nobody")
	}
}

func TestPolicyRevokedKeysStayLoaded(t *testing.T) {
	dir, ks := policyTestDir(t)
	text := `version: 1
builders:
  - name: release
    keys: [keys/release.pub, keys/rotated.pub]
scopes:
  - repositories: [registry.example.com/x]
    builders: [release]
revoked:
  - ` + ks["rotated"].ID + `
`
	p, errText := parsePolicyInDir(dir, text)
	if errText != "" {
		t.Fatalf("Parse = %s; want no error", errText)
	}
	b, key, ok := p.KeyOwner(ks["rotated"].ID)
	if !ok || b.Name != "release" || key.Ref != "keys/rotated.pub" {
		t.Errorf("KeyOwner(rotated) = %v, %v, %v; want release, keys/rotated.pub, true", b, key, ok)
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{ks["rotated"].ID, true},
		{ks["release"].ID, false},
		{ks["other"].ID, false},
	} {
		if got := p.IsRevoked(tc.id); got != tc.want {
			t.Errorf("IsRevoked(%s) = %v; want %v", tc.id, got, tc.want)
		}
	}
	if _, _, ok := p.KeyOwner(ks["other"].ID); ok {
		t.Errorf("KeyOwner(other) = _, _, true; want false")
	}
}

func TestParsePolicyDefaults(t *testing.T) {
	dir, _ := policyTestDir(t)
	p, errText := parsePolicyInDir(dir, `version: 1
builders: [{name: ci-main, key: keys/ci-main.pub}]
scopes:
  - repositories: [registry.example.com/x]
    builders: [ci-main]
    maxAge: ~
    annotations:
`)
	if errText != "" {
		t.Fatalf("Parse = %s; want no error", errText)
	}
	s := p.Scopes[0]
	got := []any{s.Threshold, s.Level, s.OnUntrusted, s.MaxAge, len(s.Annotations), s.AcceptUnboundBundles, p.SignatureFormat, len(p.Revoked), len(p.AllowUnsignedTypes)}
	want := []any{1, LevelStrict, Drop, time.Duration(0), 0, false, SignatureFormatLegacy, 0, 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if p.AllowsUnsigned("local") {
		t.Errorf("AllowsUnsigned(local) = true; want false by default")
	}
}

func TestParsePolicyAliases(t *testing.T) {
	dir, _ := policyTestDir(t)
	p, errText := parsePolicyInDir(dir, `version: 1
builders:
  - name: ci-main
    key: keys/ci-main.pub
  - name: release
    key: keys/release.pub
scopes:
  - repositories: [registry.example.com/a/*]
    builders: &both [ci-main, release]
  - repositories: [registry.example.com/b/*]
    builders: *both
    threshold: 2
`)
	if errText != "" {
		t.Fatalf("Parse = %s; want no error", errText)
	}
	if diff := cmp.Diff([]string{"ci-main", "release"}, p.Scopes[1].Builders); diff != "" {
		t.Errorf("aliased builders (-want +got):\n%s", diff)
	}
}

func TestParsePolicyMaxAge(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "720h", want: 720 * time.Hour},
		{in: "30d", want: 30 * 24 * time.Hour},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "0s", wantErr: "must be positive"},
		{in: "0d", wantErr: "must be positive"},
		{in: "-1h", wantErr: "must be positive"},
		{in: "1d-30h", wantErr: "invalid duration"},
		{in: "30x", wantErr: "invalid duration"},
		{in: "30", wantErr: "invalid duration"},
		{in: "d", wantErr: "invalid duration"},
		{in: "1.5d", wantErr: "invalid duration"},
		{in: "", wantErr: "invalid duration"},
		{in: "99999999999999999999d", wantErr: "too long"},
		{in: "106751d", want: 106751 * 24 * time.Hour},
		{in: "106751d1000h", wantErr: "too long"},
	} {
		got, err := parseMaxAge(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseMaxAge(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseMaxAge(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// policyHeader is a valid start of a policy; errors below it are on line 8
// and later.
const policyHeader = `version: 1
builders:
  - name: ci-main
    key: keys/ci-main.pub
  - name: release
    key: keys/release.pub
scopes:
`

func TestParsePolicyErrors(t *testing.T) {
	dir, ks := policyTestDir(t)
	for _, tc := range []struct {
		name string
		text string
		// want are substrings of the error, each starting with
		// "policy.yaml:LINE" and naming the field.
		want []string
		// notWant must not appear in the error.
		notWant string
	}{
		{
			// The line the parser failed on, the mis-indented key (yaml.v3
			// says line 2, the start of the block it was in).
			name: "syntax error",
			text: "version: 1\nbuilders:\n  - name: a\n   key: b\n",
			want: []string{"policy.yaml:4: YAML: did not find expected '-' indicator"},
		},
		{
			name: "syntax error under scopes",
			text: "version: 1\nbuilders:\n  - name: a\n    key: b\nscopes:\n  - repositories: [x]\n    builders: [a]\n   level: audit\n",
			want: []string{"policy.yaml:8: YAML: "},
		},
		{
			name: "unclosed quote",
			text: "version: 1\nbuilders:\n  - name: a\n    key: \"b\nscopes: []\n",
			want: []string{"policy.yaml:4: YAML: found unexpected end of stream"},
		},
		{
			name: "syntax error in a second document",
			text: "version: 1\n---\nbuilders:\n  - name: a\n   key: b\n",
			want: []string{"policy.yaml:5: YAML: did not find expected '-' indicator"},
		},
		{
			name: "tab indentation",
			text: "version: 1\n\tbuilders: []\n",
			want: []string{"policy.yaml:2: YAML: found a tab character that violates indentation"},
		},
		{
			name: "empty file",
			text: "",
			want: []string{"policy.yaml: empty policy"},
		},
		{
			name: "only a comment",
			text: "# nothing\n",
			want: []string{"policy.yaml: empty policy"},
		},
		{
			name: "two documents",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n---\nversion: 1\n",
			want: []string{"policy.yaml:10:1: more than one YAML document"},
		},
		{
			name: "not a mapping",
			text: "- version: 1\n",
			want: []string{"policy.yaml:1:1: must be a mapping, not a list"},
		},
		{
			name: "unknown top-level field",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\nrevokd: []\n",
			want: []string{`policy.yaml:10:1: revokd: unknown field (did you mean "revoked"?)`},
		},
		{
			name: "field given twice",
			text: "version: 1\nversion: 1\n" + policyHeader[len("version: 1\n"):] + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{"policy.yaml:2:1: version: given twice (first at line 1)"},
		},
		{
			name: "merge key",
			text: policyHeader + "  - <<: {threshold: 1}\n    repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{"policy.yaml:8:5: scopes[0]: merge keys (<<) are not supported"},
		},
		{
			name: "version missing",
			text: policyHeader[len("version: 1\n"):] + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{"policy.yaml:1:1: version: missing"},
		},
		{
			name: "version 2",
			text: "version: 2\n" + policyHeader[len("version: 1\n"):] + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{"policy.yaml:1:1: version: unsupported version 2"},
		},
		{
			name: "version is a string",
			text: "version: \"1\"\n" + policyHeader[len("version: 1\n"):] + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:1:1: version: must be an integer, not a string`},
		},
		{
			name: "builders missing",
			text: "version: 1\nscopes:\n  - repositories: [registry.example.com/x]\n    level: skip\n",
			want: []string{"policy.yaml:1:1: builders: missing"},
		},
		{
			name: "builders empty",
			text: "version: 1\nbuilders: []\nscopes:\n  - repositories: [registry.example.com/x]\n    level: skip\n",
			want: []string{"policy.yaml:2:1: builders: empty"},
		},
		{
			name: "builders not a list",
			text: "version: 1\nbuilders:\n  ci-main: keys/ci-main.pub\nscopes:\n  - repositories: [registry.example.com/x]\n    level: skip\n",
			want: []string{"policy.yaml:2:1: builders: must be a list, not a mapping"},
		},
		{
			name: "builder without name",
			text: "version: 1\nbuilders:\n  - key: keys/ci-main.pub\nscopes:\n  - repositories: [registry.example.com/x]\n    level: skip\n",
			want: []string{"policy.yaml:3:5: builders[0].name: missing"},
		},
		{
			name: "builder name empty",
			text: "version: 1\nbuilders:\n  - name: \"\"\n    key: keys/ci-main.pub\nscopes:\n  - repositories: [registry.example.com/x]\n    level: skip\n",
			want: []string{"policy.yaml:3:5: builders[0].name: empty builder name"},
		},
		{
			name: "duplicate builder names",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    key: keys/ci-main.pub\n  - name: ci-main\n    key: keys/release.pub\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:5:5: builders[1].name: builder "ci-main" is already defined at line 3`},
		},
		{
			name: "builder with key and keys",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    key: keys/ci-main.pub\n    keys: [keys/release.pub]\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{"policy.yaml:5:5: builders[0].keys: a builder has either key or keys, not both"},
		},
		{
			name: "builder without key",
			text: "version: 1\nbuilders:\n  - name: ci-main\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{"policy.yaml:3:5: builders[0]: builder has no key"},
		},
		{
			name: "builder with empty keys",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    keys: []\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{"policy.yaml:4:5: builders[0].keys: empty"},
		},
		{
			name: "missing key file",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    key: keys/missing.pub\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:4:10: builders[0].key: key "keys/missing.pub": stat keys/missing.pub: no such file or directory`},
		},
		{
			name: "key file is a directory",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    key: keys\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:4:10: builders[0].key: key "keys": keys is not a regular file`},
		},
		{
			name: "unparsable key file",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    keys:\n      - keys/ci-main.pub\n      - keys/garbage.pub\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:6:9: builders[0].keys[1]: public key "keys/garbage.pub": no PEM block found`},
		},
		{
			name:    "unparsable inline key",
			text:    "version: 1\nbuilders:\n  - name: ci-main\n    key: |\n      -----BEGIN PUBLIC KEY-----\n      c2VjcmV0\n      -----END PUBLIC KEY-----\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want:    []string{"policy.yaml:4:10: builders[0].key: public key (inline PEM): parsing PKIX public key"},
			notWant: "c2VjcmV0",
		},
		{
			name: "unset env key",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    key: env://TRUSTCACHE_TEST_UNSET_VARIABLE\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:4:10: builders[0].key: key reference "env://TRUSTCACHE_TEST_UNSET_VARIABLE": environment variable TRUSTCACHE_TEST_UNSET_VARIABLE is not set`},
		},
		{
			name: "KMS key",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    key: awskms:///alias/ci-main\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:4:10: builders[0].key: key "awskms:///alias/ci-main": KMS keys are not supported`},
		},
		{
			name: "unknown key scheme",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    key: https://example.com/ci.pub\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:4:10: builders[0].key: key "https://example.com/ci.pub": unsupported key reference scheme`},
		},
		{
			name: "key is a list",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    key: [keys/ci-main.pub]\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{"policy.yaml:4:10: builders[0].key: must be a string, not a list"},
		},
		{
			name: "key in two builders",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    key: keys/ci-main.pub\n  - name: release\n    keys: [keys/release.pub, ./keys/ci-main.pub]\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:6:30: builders[1].keys[1]: key "./keys/ci-main.pub" (` + ks["ci-main"].ID + `) already belongs to builder "ci-main" (line 4): a key belongs to one builder`},
		},
		{
			name: "key twice in one builder",
			text: "version: 1\nbuilders:\n  - name: ci-main\n    keys: [keys/ci-main.pub, keys/ci-main.pub]\nscopes:\n  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:4:30: builders[0].keys[1]: key "keys/ci-main.pub" (` + ks["ci-main"].ID + `) is listed twice for this builder (line 4)`},
		},
		{
			name: "scopes missing",
			text: policyHeader[:strings.Index(policyHeader, "scopes:")],
			want: []string{"policy.yaml:1:1: scopes: missing"},
		},
		{
			name: "scopes empty",
			text: policyHeader + "  []\n",
			want: []string{"policy.yaml:7:1: scopes: empty"},
		},
		{
			name: "scope without repositories",
			text: policyHeader + "  - builders: [ci-main]\n",
			want: []string{"policy.yaml:8:5: scopes[0].repositories: missing"},
		},
		{
			name: "scope with empty repositories",
			text: policyHeader + "  - builders: [ci-main]\n    repositories: []\n",
			want: []string{"policy.yaml:9:5: scopes[0].repositories: empty"},
		},
		{
			name: "unknown scope field",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    treshold: 1\n",
			want: []string{`policy.yaml:10:5: scopes[0].treshold: unknown field (did you mean "threshold"?)`},
		},
		{
			name: "bad glob",
			text: policyHeader + "  - repositories: [\"registry.example.com/team/[a-z]\"]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:8:20: scopes[0].repositories[0]: repository pattern "registry.example.com/team/[a-z]": only the wildcards * and ** are supported`},
		},
		{
			name: "double star inside a segment",
			text: policyHeader + "  - repositories: [\"registry.example.com/team-**\"]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:8:20: scopes[0].repositories[0]: repository pattern "registry.example.com/team-**": ** must be a whole path segment`},
		},
		{
			name: "ambiguous registry wildcard",
			text: policyHeader + "  - repositories: [\"*/cache\"]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:8:20: scopes[0].repositories[0]: repository pattern "*/cache": a wildcard in the registry part must match host names`},
		},
		{
			name: "invalid repository name",
			text: policyHeader + "  - repositories: [\"registry.example.com/team/app:latest\", \"registry.example.com/Team/-x*\"]\n    builders: [ci-main]\n",
			want: []string{
				`policy.yaml:8:20: scopes[0].repositories[0]: invalid repository "registry.example.com/team/app:latest"`,
				`policy.yaml:8:60: scopes[0].repositories[1]: repository pattern "registry.example.com/Team/-x*" cannot match a valid repository name`,
			},
		},
		{
			name: "pattern in two scopes",
			text: policyHeader + "  - repositories: [nginx]\n    builders: [ci-main]\n  - repositories: [docker.io/library/nginx]\n    builders: [release]\n",
			want: []string{`policy.yaml:10:20: scopes[1].repositories[0]: repository pattern "docker.io/library/nginx" (index.docker.io/library/nginx) is already in scopes[0].repositories[0] (line 8)`},
		},
		{
			name: "pattern twice in one scope",
			text: policyHeader + "  - repositories: [registry.example.com/team/*, REGISTRY.example.com/team/*]\n    builders: [ci-main]\n",
			want: []string{`policy.yaml:8:49: scopes[0].repositories[1]: repository pattern "REGISTRY.example.com/team/*" (registry.example.com/team/*) is already in scopes[0].repositories[0] (line 8)`},
		},
		{
			name: "unknown builder",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-mian]\n",
			want: []string{`policy.yaml:9:16: scopes[0].builders[0]: unknown builder "ci-mian" (did you mean "ci-main"?)`},
		},
		{
			name: "builder twice in a scope",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main, release, ci-main]\n",
			want: []string{`policy.yaml:9:34: scopes[0].builders[2]: builder "ci-main" is listed twice`},
		},
		{
			name: "strict scope without builders",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n",
			want: []string{"policy.yaml:8:5: scopes[0].builders: a strict scope needs at least one builder"},
		},
		{
			name: "audit scope with empty builders",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    level: audit\n    builders: []\n",
			want: []string{"policy.yaml:10:5: scopes[0].builders: a audit scope needs at least one builder"},
		},
		{
			name: "threshold exceeds builders",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n  - repositories: [registry.example.com/y]\n    builders: [ci-main, release]\n    threshold: 3\n",
			want: []string{"policy.yaml:12:5: scopes[1].threshold: threshold 3 exceeds the 2 builders of this scope"},
		},
		{
			name: "threshold on a skip scope without builders",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    level: skip\n    threshold: 2\n",
			want: []string{"policy.yaml:10:5: scopes[0].threshold: threshold 2 exceeds the 0 builders of this scope"},
		},
		{
			name: "threshold zero",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    threshold: 0\n",
			want: []string{"policy.yaml:10:5: scopes[0].threshold: threshold 0 is less than 1"},
		},
		{
			name: "threshold not a number",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    threshold: two\n",
			want: []string{`policy.yaml:10:5: scopes[0].threshold: must be an integer, not a string`},
		},
		{
			name: "threshold overflows",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    threshold: 99999999999999999999\n",
			want: []string{"policy.yaml:10:5: scopes[0].threshold: must be an integer"},
		},
		{
			name: "unknown level",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    level: Strict\n",
			want: []string{`policy.yaml:10:5: scopes[0].level: unknown level "Strict": want strict, audit or skip`},
		},
		{
			name: "unknown onUntrusted",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    onUntrusted: warn\n",
			want: []string{`policy.yaml:10:5: scopes[0].onUntrusted: unknown action "warn": want drop or fail`},
		},
		{
			name: "bad maxAge",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    maxAge: 30 days\n",
			want: []string{`policy.yaml:10:5: scopes[0].maxAge: invalid duration "30 days"`},
		},
		{
			name: "negative maxAge",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    maxAge: -720h\n",
			want: []string{`policy.yaml:10:5: scopes[0].maxAge: maxAge "-720h" must be positive`},
		},
		{
			name: "annotations not a mapping",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    annotations: [ref]\n",
			want: []string{"policy.yaml:10:5: scopes[0].annotations: must be a mapping of annotation key to glob, not a list"},
		},
		{
			name: "annotation with empty key",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    annotations:\n      \"\": main\n",
			want: []string{"policy.yaml:11:7: scopes[0].annotations: empty annotation key"},
		},
		{
			name: "annotation with invalid glob",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    annotations:\n      ref: \"refs/heads/[main\"\n",
			want: []string{`policy.yaml:11:12: scopes[0].annotations.ref: invalid glob "refs/heads/[main"`},
		},
		{
			name: "annotation without value",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    annotations:\n      ref:\n",
			want: []string{"policy.yaml:11:7: scopes[0].annotations.ref: want a glob the signed value must match, not null"},
		},
		{
			name: "requireVerifiedBytes not a bool",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\nrequireVerifiedBytes: 1\n",
			want: []string{`policy.yaml:10:1: requireVerifiedBytes: must be true or false, not a number`},
		},
		{
			name: "acceptUnboundBundles not a bool",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n    acceptUnboundBundles: \"yes\"\n",
			want: []string{`policy.yaml:10:5: scopes[0].acceptUnboundBundles: must be true or false, not a string`},
		},
		{
			name: "revoked not a key id",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\nrevoked:\n  - " + strings.ToUpper(ks["other"].ID) + "\n  - sha256:abc\n",
			want: []string{
				`policy.yaml:11:5: revoked[0]: "` + strings.ToUpper(ks["other"].ID) + `" is not a key id`,
				`policy.yaml:12:5: revoked[1]: "sha256:abc" is not a key id`,
			},
		},
		{
			name: "unknown unsigned type",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\nallowUnsignedTypes: [local, registry]\n",
			want: []string{`policy.yaml:10:29: allowUnsignedTypes[1]: unknown cache type "registry": want one of local, gha, s3, azblob`},
		},
		{
			name: "unknown signature format",
			text: policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\nsignatureFormat: cosign\n",
			want: []string{`policy.yaml:10:1: signatureFormat: unknown signature format "cosign": want legacy or bundle`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, got := parsePolicyInDir(dir, tc.text)
			if got == "" {
				t.Fatalf("Parse(%q) = %+v, nil; want an error", tc.text, p)
			}
			if p != nil {
				t.Errorf("Parse returned a policy with its error")
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Parse error =\n%s\nwant it to contain\n%s", got, w)
				}
			}
			if tc.notWant != "" && strings.Contains(got, tc.notWant) {
				t.Errorf("Parse error =\n%s\nwant it not to contain %q", got, tc.notWant)
			}
			_, err := Parse(filepath.Join(dir, "policy.yaml"), []byte(tc.text))
			if pes := Errors(err); len(pes) == 0 {
				t.Errorf("Errors(%v) is empty; want *Error values", err)
			}
		})
	}
}

func TestParsePolicyReportsAllProblems(t *testing.T) {
	dir, _ := policyTestDir(t)
	text := `version: 1
builders:
  - name: ci-main
    key: keys/missing.pub
scopes:
  - repositories: ["registry.example.com/team/*"]
    builders: [ci-main, nobody]
    threshold: 3
    level: paranoid
revoked: [nope]
`
	_, err := Parse(filepath.Join(dir, "policy.yaml"), []byte(text))
	var got []string
	for _, pe := range Errors(err) {
		got = append(got, pe.Field)
	}
	want := []string{"builders[0].key", "scopes[0].builders[1]", "scopes[0].threshold", "scopes[0].level", "revoked[0]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Errors fields (-want +got):\n%s\nerror:\n%v", diff, err)
	}
}

func TestPolicyErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		err  Error
		want string
	}{
		{Error{File: "policy.yaml", Line: 12, Column: 5, Field: "scopes[1].threshold", Msg: "threshold 3 exceeds the 2 builders of this scope"},
			"policy.yaml:12:5: scopes[1].threshold: threshold 3 exceeds the 2 builders of this scope"},
		{Error{File: "policy.yaml", Line: 3, Msg: "YAML: bad"}, "policy.yaml:3: YAML: bad"},
		{Error{File: "policy.yaml", Msg: "empty policy"}, "policy.yaml: empty policy"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error.Error() = %q; want %q", got, tc.want)
		}
	}
}

// TestPolicyTestdata parses the files in testdata: NAME.yaml must
// parse when there is no NAME.err, else fail with exactly NAME.err's text.
// The keys they name are generated (keys/ci-main.pub and so on), so key ids
// read "<id of keys/NAME.pub>" in NAME.err, and REVOKED_KEY_ID in NAME.yaml
// is the id of keys/rotated.pub.
func TestPolicyTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.yaml (%v)", err)
	}
	dir, ks := policyTestDir(t)
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(data), "REVOKED_KEY_ID", ks["rotated"].ID)
			_, got := parsePolicyInDir(dir, text)
			got = strings.ReplaceAll(got, "policy.yaml", name)
			for n, k := range ks {
				got = strings.ReplaceAll(got, k.ID, "<id of keys/"+n+".pub>")
			}
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
			if os.IsNotExist(err) {
				if got != "" {
					t.Errorf("Parse(%s) = %s; want no error", name, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w := strings.TrimSpace(string(want)); got != w {
				t.Errorf("Parse(%s) error =\n%s\nwant\n%s", name, got, w)
			}
		})
	}
}

func TestStarterPolicyParses(t *testing.T) {
	dir := t.TempDir()
	k := writePolicyKey(t, dir, StarterKeyRef)
	path := filepath.Join(dir, ".trustcache.yaml")
	if err := os.WriteFile(path, Starter(), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load(starter policy) = %v; want no error", err)
	}
	if b, ok := p.Builder("ci-main"); !ok || len(b.Keys) != 1 || b.Keys[0].ID != k.ID {
		t.Errorf("starter policy builder ci-main = %+v, %v; want key %s", b, ok, k.ID)
	}
	if s, ok := p.Match("registry.example.com/team/app-cache"); !ok || s.Level != LevelStrict {
		t.Errorf("starter policy Match(registry.example.com/team/app-cache) = %+v, %v; want the strict scope", s, ok)
	}
	// Without its key file the starter policy says which file is missing.
	if _, err := Parse(filepath.Join(t.TempDir(), ".trustcache.yaml"), Starter()); err == nil || !strings.Contains(err.Error(), StarterKeyRef) {
		t.Errorf("Parse(starter policy without key) = %v; want an error naming %s", err, StarterKeyRef)
	}
}

func TestLoadPolicy(t *testing.T) {
	dir, _ := policyTestDir(t)
	path := filepath.Join(dir, "policy.yaml")
	data := []byte(policyHeader + "  - repositories: [registry.example.com/x]\n    builders: [ci-main]\n")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q) = %v", path, err)
	}
	sum := sha256.Sum256(data)
	if want := "sha256:" + hex.EncodeToString(sum[:]); p.Digest != want || p.File != path {
		t.Errorf("Load(%q) File, Digest = %s, %s; want %s, %s", path, p.File, p.Digest, path, want)
	}
	missing := filepath.Join(dir, "nope.yaml")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), `reading policy "`+missing+`"`) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(%q) = %v; want a not-exist error naming the file", missing, err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, maxPolicySize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(%q) = %v; want a size error", big, err)
	}
}
