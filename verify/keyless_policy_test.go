package verify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// TestParseKeylessPolicy: the keyless fields parse, and every bad input
// names the file, line, column and field.
func TestParseKeylessPolicy(t *testing.T) {
	k := newKeylessFixture(t)
	if err := os.WriteFile(filepath.Join(k.dir, "garbage.json"), []byte(`{"mediaType": "nope"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	head := func(root string) string {
		s := "version: 1\n"
		if root != "" {
			s += "trustedRoot: " + root + "\n"
		}
		return s
	}
	const scopes = `scopes:
  - repositories: ["r.example/team/*"]
    builders: [gha]
`
	gha := func(fields string) string {
		return "builders:\n  - name: gha\n    identity:\n" + fields
	}
	okIdentity := "      issuer: https://token.actions.githubusercontent.com\n      subject: https://github.com/acme/app/.github/workflows/*@refs/heads/main\n"
	tests := []struct {
		name, text string
		want       []string // error lines; none: valid
	}{{
		name: "valid identity and key on one builder",
		text: head("trusted_root.json") + gha(okIdentity+"      ref: refs/heads/main\n      eventName: push\n      requireTimestamp: tsa\n") + "    key: ci.pub\n" + scopes,
	}, {
		name: "identity without trustedRoot",
		text: head("") + gha(okIdentity) + scopes,
		want: []string{"policy.yaml:4: builders[0].identity: a keyless builder needs the policy's top-level trustedRoot"},
	}, {
		name: "trustedRoot file missing",
		text: head("nope.json") + gha(okIdentity) + scopes,
		want: []string{`policy.yaml:2:14: trustedRoot: trusted root "nope.json": stat nope.json: no such file or directory`},
	}, {
		name: "trustedRoot not a trusted root",
		text: head("garbage.json") + gha(okIdentity) + scopes,
		want: []string{`policy.yaml:2:14: trustedRoot: trusted root "garbage.json": not a sigstore trusted root`},
	}, {
		name: "misspelled claim",
		text: head("trusted_root.json") + gha(okIdentity+"      reposiotry: https://github.com/acme/app\n") + scopes,
		want: []string{`policy.yaml:8:7: builders[0].identity.reposiotry: unknown field (did you mean "repository"?)`},
	}, {
		name: "bad requireTimestamp, issuer not a URL, empty claim, bad glob",
		text: head("trusted_root.json") + gha("      issuer: github\n      subject: \"[\"\n      ref: \"\"\n      requireTimestamp: sometimes\n") + scopes,
		want: []string{
			`policy.yaml:6:15: builders[0].identity.issuer: "github" is not an issuer URL`,
			`policy.yaml:7:16: builders[0].identity.subject: invalid glob "["`,
			`policy.yaml:8:12: builders[0].identity.ref: empty`,
			`policy.yaml:9:25: builders[0].identity.requireTimestamp: unknown value "sometimes": want any or tsa`,
		},
	}, {
		name: "requireTimestamp tlog is refused, not silently unmet",
		text: head("trusted_root.json") + gha(okIdentity+"      requireTimestamp: tlog\n") + scopes,
		want: []string{`policy.yaml:8:25: builders[0].identity.requireTimestamp: tlog: transparency log entries are not verified by trustcache`},
	}, {
		name: "identity without issuer and subject",
		text: head("trusted_root.json") + gha("      ref: refs/heads/main\n") + scopes,
		want: []string{
			"policy.yaml:5:5: builders[0].identity.issuer: missing",
			"policy.yaml:5:5: builders[0].identity.subject: missing",
		},
	}, {
		name: "builder with neither key nor identity",
		text: head("trusted_root.json") + "builders:\n  - name: gha\n" + scopes,
		want: []string{"policy.yaml:4:5: builders[0]: builder has no key: give key (one), keys (a list, while rotating) or identity"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parseInDir(k.dir, tc.text)
			lines := []string{}
			if got != "" {
				lines = strings.Split(got, "\n")
			}
			if len(lines) != len(tc.want) {
				t.Fatalf("errors =\n%s\nwant %d:\n%s\npolicy:\n%s", got, len(tc.want), strings.Join(tc.want, "\n"), tc.text)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d = %q; want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

// TestKeylessPolicyDigest: the trusted root is part of the policy's
// digest, so that a verdict remembered under it (the ledger) does not
// outlive a change of the trusted root; a policy without one keeps the
// digest of its bytes.
func TestKeylessPolicyDigest(t *testing.T) {
	k := newKeylessFixture(t)
	text := "version: 1\ntrustedRoot: trusted_root.json\nbuilders:\n  - name: gha\n    identity:\n      issuer: https://x.example\n      subject: s\nscopes:\n  - repositories: [\"r.example/a\"]\n    builders: [gha]\n"
	p1, err := trustpolicy.Parse(filepath.Join(k.dir, "policy.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	k.writeRoot(t, "trusted_root.json", newFulcioCA(t))
	p2, err := trustpolicy.Parse(filepath.Join(k.dir, "policy.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if p1.Digest == p2.Digest {
		t.Errorf("policy digest %s did not change with the trusted root", p1.Digest)
	}
	if p1.TrustedRootDigest() == "" || p1.TrustedRootDigest() == p2.TrustedRootDigest() {
		t.Errorf("trusted root digests %q, %q", p1.TrustedRootDigest(), p2.TrustedRootDigest())
	}
}

// parseInDir parses text as dir/policy.yaml and returns its error text
// with dir left out.
func parseInDir(dir, text string) (*trustpolicy.Policy, string) {
	p, err := trustpolicy.Parse(filepath.Join(dir, "policy.yaml"), []byte(text))
	if err != nil {
		return p, strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
	}
	return p, ""
}
