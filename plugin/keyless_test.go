package plugin

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeylessFlagErrors: the keyless flags of build, bake and sign are
// checked before anything runs; each mistake is a usage error naming the
// flag or the file, and buildx never starts.
func TestKeylessFlagErrors(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil) // no SIGSTORE_ID_TOKEN, no GitHub Actions token request
	dir := te.dir
	host := newRegistry(t)
	te.run("keys", "generate", "--name", "ci", "--dir", dir)
	trustPolicy(t, dir, host, "")
	argsFile := te.fakeDocker(0)
	enc := base64.RawURLEncoding.EncodeToString
	token := enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(`{"iss":"https://token.actions.githubusercontent.com","sub":"repo:acme/app:ref:refs/heads/main","aud":"sigstore"}`)) + ".c2ln"
	missing := filepath.Join(dir, "missing-sc.json")
	badConfig := filepath.Join(dir, "sc.json")
	if err := os.WriteFile(badConfig, []byte(`{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","caUrls":[{"url":"http://ca","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z"}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"build", "--keyless", "."}, "need --sign"},
		{[]string{"build", "--identity-token", token, "."}, "need --sign"},
		{[]string{"build", "--signing-config", badConfig, "."}, "need --sign"},
		{[]string{"build", "--sign", "--push", "--keyless", "--key", te.path("ci.key"), "."}, "drop --key"},
		{[]string{"build", "--sign", "--push", "--identity-token", token, "--key", te.path("ci.key"), "."}, "need --keyless"},
		{[]string{"build", "--sign", "--push", "--keyless", "."}, "no OIDC identity token"},
		{[]string{"build", "--sign", "--push", "--keyless", "--identity-token", "nope", "."}, "--identity-token: not a JWT"},
		{[]string{"build", "--sign", "--push", "--keyless", "--identity-token", token, "--signing-config", missing, "."}, missing},
		{[]string{"build", "--sign", "--push", "--keyless", "--identity-token", token, "--signing-config", badConfig, "."}, "no timestamp authority (tsaUrls)"},
		{[]string{"build", "--sign", "--push", "--keyless", "--identity-token=", "."}, "non-empty value"},
		{[]string{"bake", "--keyless"}, "need --sign"},
		{[]string{"bake", "--identity-token", token}, "need --sign"},
		{[]string{"sign", "--keyless", "--key", te.path("ci.key"), host + "/team/cache@sha256:" + strings.Repeat("0", 64)}, "drop --key"},
		{[]string{"sign", "--signing-config", badConfig, "--key", te.path("ci.key"), host + "/team/cache@sha256:" + strings.Repeat("0", 64)}, "need --keyless"},
	} {
		res := te.run(tc.args...)
		if res.code != ExitUsage || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("%v = %d %q; want %d containing %q", tc.args, res.code, res.stderr, ExitUsage, tc.msg)
		}
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Errorf("docker buildx ran despite a usage error")
	}
}
