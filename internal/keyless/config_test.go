package keyless

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// signingConfig is what `cosign signing-config create` wrote for the e2e
// services, with a second, older Fulcio and an expired TSA added.
const signingConfig = `{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json",
"caUrls":[
 {"url":"http://old-ca","majorApiVersion":1,"validFor":{"start":"2019-01-01T00:00:00Z"},"operator":"a"},
 {"url":"http://127.0.0.1:5555","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z"},"operator":"e2e"}],
"rekorTlogConfig":{},
"tsaUrls":[
 {"url":"http://expired-tsa","majorApiVersion":1,"validFor":{"start":"2019-01-01T00:00:00Z","end":"2020-01-01T00:00:00Z"},"operator":"b"},
 {"url":"http://127.0.0.1:5560/api/v1/timestamp","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z"},"operator":"e2e"}],
"tsaConfig":{"selector":"ANY"}}`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSigningConfig(t *testing.T) {
	p := writeFile(t, "sc.json", signingConfig)
	got, err := LoadSigningConfig(p, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	want := Services{Source: p, Fulcio: "http://127.0.0.1:5555", TSAs: []string{"http://127.0.0.1:5560/api/v1/timestamp"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("LoadSigningConfig (-want +got):\n%s", d)
	}
}

func TestLoadSigningConfigErrors(t *testing.T) {
	noTSA := `{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","caUrls":[{"url":"http://c","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z"}}],"tsaUrls":[]}`
	for _, tc := range []struct {
		name, content, want string
	}{
		{"not json", "{", "sc.json"},
		{"no tsa", noTSA, "no timestamp authority (tsaUrls)"},
		{"no ca", `{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","tsaUrls":[{"url":"http://t","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z"}}]}`, "no certificate authority (caUrls)"},
		{"wrong api version", strings.ReplaceAll(signingConfig, `"majorApiVersion":1`, `"majorApiVersion":9`), "caUrls: no matching service"},
		{"wrong media type", strings.Replace(signingConfig, "signingconfig.v0.2", "trustedroot", 1), "sc.json"},
	} {
		p := writeFile(t, "sc.json", tc.content)
		_, err := LoadSigningConfig(p, time.Now())
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: LoadSigningConfig = %v; want an error naming %s and %q", tc.name, err, p, tc.want)
		}
	}
	if _, err := LoadSigningConfig(filepath.Join(t.TempDir(), "missing.json"), time.Now()); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

func TestPublicGood(t *testing.T) {
	s := PublicGood()
	if s.Fulcio != "https://fulcio.sigstore.dev" || len(s.TSAs) != 1 || s.TSAs[0] != "https://timestamp.sigstore.dev/api/v1/timestamp" {
		t.Errorf("PublicGood() = %+v", s)
	}
}
