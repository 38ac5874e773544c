package plugin

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// TestLintKeylessSummary: lint of a policy with keyless builders names the
// trusted root and what each identity matches.
func TestLintKeylessSummary(t *testing.T) {
	t.Parallel()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	rc, rk, err := ca.GenerateRootCa()
	if err != nil {
		t.Fatal(err)
	}
	ic, _, err := ca.GenerateFulcioIntermediate(rc, rk)
	if err != nil {
		t.Fatal(err)
	}
	fca := &root.FulcioCertificateAuthority{Root: rc, Intermediates: []*x509.Certificate{ic}, ValidityPeriodStart: time.Now().Add(-time.Hour), URI: "https://fulcio.test"}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, []root.CertificateAuthority{fca}, nil, vs.TimestampingAuthorities(), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "root.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pf, []byte(`version: 1
trustedRoot: root.json
builders:
  - name: gha-main
    identity:
      issuer: https://token.actions.githubusercontent.com
      subject: https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main
      ref: refs/heads/main
      eventName: push
      requireTimestamp: tsa
scopes:
  - repositories: ["r.example/team/*"]
    builders: [gha-main]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := trustpolicy.Load(pf)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	writeKeylessSummary(&b, p)
	for _, want := range []string{
		"trustedRoot: root.json (1 certificate authorities, 1 timestamp authorities, 0 transparency logs, 0 CT logs; sha256:",
		"builder gha-main: keyless identity, issuer https://token.actions.githubusercontent.com, subject https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main, ref refs/heads/main, eventName push, verified time from a timestamp authority\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary =\n%s\nwant it to contain\n%s", b.String(), want)
		}
	}
}
