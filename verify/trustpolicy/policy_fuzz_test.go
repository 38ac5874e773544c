package trustpolicy

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/docker-trustcache/docker-trustcache/keys"
)

// FuzzParsePolicy checks that Parse never panics, that a failure is
// reported as Errors, and that a policy it returns holds every
// invariant the verifier relies on. The policy directory holds
// keys/{ci-main,release,rotated,other,garbage}.pub for the seeds to name.
func FuzzParsePolicy(f *testing.F) {
	dir, ks := policyTestDir(f)
	name := filepath.Join(dir, "policy.yaml")

	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.ReplaceAll(string(data), "REVOKED_KEY_ID", ks["rotated"].ID))
	}
	for _, seed := range []string{
		starterPolicy,
		strings.Replace(validPolicyText, "REVOKED", ks["rotated"].ID, 1),
		matchPolicy,
		policyHeader + "  - repositories: [\"**\"]\n    level: skip\n    threshold: 5\n",
		policyHeader + "  - repositories: [x, docker.io/x]\n    builders: &b [ci-main, release]\n  - repositories: [y]\n    builders: *b\n    threshold: 2\n",
		"version: 1\nbuilders: &a [*a]\n",
		"version: 1\nbuilders:\n  - name: inline\n    key: |\n" + indent(ks["other"].PEM, "      ") + "scopes:\n  - repositories: [\"*.example.com/**\"]\n    builders: [inline]\n    maxAge: 1d12h\n",
		"",
		"- a\n- b\n",
		"version: 1\n---\nversion: 1\n",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(name, []byte(text))
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a policy and an error: %v", err)
			}
			pes := Errors(err)
			if len(pes) == 0 {
				t.Fatalf("Parse error %v holds no *Error", err)
			}
			for _, pe := range pes {
				if pe.File != name || pe.Msg == "" {
					t.Fatalf("Error %+v: want File %q and a message", pe, name)
				}
			}
			return
		}
		checkPolicyInvariants(t, p, []byte(text))
	})
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

// checkPolicyInvariants re-validates a parsed policy.
func checkPolicyInvariants(t *testing.T, p *Policy, data []byte) {
	t.Helper()
	sum := sha256.Sum256(data)
	if want := "sha256:" + hex.EncodeToString(sum[:]); p.Digest != want {
		t.Fatalf("Digest = %s; want %s", p.Digest, want)
	}
	if p.Version != Version {
		t.Fatalf("Version = %d; want %d", p.Version, Version)
	}
	if len(p.Builders) == 0 || len(p.Scopes) == 0 {
		t.Fatalf("policy has %d builders and %d scopes; want at least one of each", len(p.Builders), len(p.Scopes))
	}
	keyIDs := make(map[string]bool)
	for i, b := range p.Builders {
		if strings.TrimSpace(b.Name) == "" || len(b.Keys) == 0 {
			t.Fatalf("builder %d = %+v; want a name and keys", i, b)
		}
		if got, _ := p.Builder(b.Name); got != &p.Builders[i] {
			t.Fatalf("Builder(%q) is not builders[%d]: names are not unique", b.Name, i)
		}
		for _, k := range b.Keys {
			id, err := keys.ID(k.Public)
			if err != nil || id != k.ID {
				t.Fatalf("builder %s key %s: keys.ID = %s, %v; want %s", b.Name, k.Display(), id, err, k.ID)
			}
			if keyIDs[k.ID] {
				t.Fatalf("key %s belongs to two builders", k.ID)
			}
			keyIDs[k.ID] = true
		}
	}
	patterns := make(map[string]bool)
	for i := range p.Scopes {
		s := &p.Scopes[i]
		if len(s.Repositories) == 0 {
			t.Fatalf("scope %d has no repositories", i)
		}
		switch s.Level {
		case LevelStrict, LevelAudit:
			if len(s.Builders) == 0 {
				t.Fatalf("%s scope %d has no builders", s.Level, i)
			}
		case LevelSkip:
		default:
			t.Fatalf("scope %d level = %q", i, s.Level)
		}
		if s.OnUntrusted != Drop && s.OnUntrusted != Fail {
			t.Fatalf("scope %d onUntrusted = %q", i, s.OnUntrusted)
		}
		skipAll := s.Level == LevelSkip && len(s.Builders) == 0 && s.Threshold == 1
		if s.Threshold < 1 || (s.Threshold > len(s.Builders) && !skipAll) {
			t.Fatalf("scope %d threshold %d with %d builders", i, s.Threshold, len(s.Builders))
		}
		if s.MaxAge < 0 {
			t.Fatalf("scope %d maxAge %v", i, s.MaxAge)
		}
		for j, b := range s.Builders {
			if _, ok := p.Builder(b); !ok || slices.Index(s.Builders, b) != j {
				t.Fatalf("scope %d builder %q is unknown or listed twice", i, b)
			}
		}
		for k, g := range s.Annotations {
			if strings.TrimSpace(k) == "" || !doublestar.ValidatePattern(g) {
				t.Fatalf("scope %d annotation %q: %q", i, k, g)
			}
		}
		for _, pat := range s.Repositories {
			c, err := canonicalPattern(pat)
			if err != nil {
				t.Fatalf("scope %d pattern %q: %v", i, pat, err)
			}
			if patterns[c] {
				t.Fatalf("pattern %q (%s) is in two scopes", pat, c)
			}
			patterns[c] = true
			// An exact pattern is matched by its scope; a glob by some
			// scope.
			example := strings.ReplaceAll(strings.ReplaceAll(c, "**", "0"), "*", "0")
			if c == "**" || strings.HasPrefix(c, "**/") {
				example = "example.com/" + example
			}
			got, ok := p.Match(example)
			switch {
			case !ok:
				t.Fatalf("Match(%q) = _, false; want a match (pattern %q)", example, pat)
			case !strings.Contains(c, "*") && got != s:
				t.Fatalf("Match(%q) = scope %v; want scope %d", example, got.Repositories, i)
			}
		}
	}
	for _, id := range p.Revoked {
		if !revokedRE.MatchString(id) || !p.IsRevoked(id) {
			t.Fatalf("revoked %q is not a key id", id)
		}
	}
	for _, u := range p.AllowUnsignedTypes {
		if !slices.Contains(unsignedTypes, u) {
			t.Fatalf("allowUnsignedTypes %q", u)
		}
	}
	if p.SignatureFormat != SignatureFormatLegacy && p.SignatureFormat != SignatureFormatBundle {
		t.Fatalf("signatureFormat %q", p.SignatureFormat)
	}
}
