package plugin

// Attack tests for docs/SECURITY.md about keys, across the commands that
// read them: key material that must never be printed, private key files
// others can read, keys of other algorithms.

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"github.com/docker-trustcache/docker-trustcache/keys"
)

// secretWindows returns every 16-character window of s (step 4), the
// pieces of key material a leak would show.
func secretWindows(s string) []string {
	var out []string
	for i := 0; i+16 <= len(s); i += 4 {
		out = append(out, s[i:i+16])
	}
	return out
}

// TestKeysNeverPrinted runs every command that reads or writes a private
// key, with good, wrong and corrupt keys given as files, env://VAR and
// inline PEM, and checks that neither stdout nor stderr ever holds a PEM
// block, a run of the key file's or the key's bytes (base64 or hex), or
// the password. Error messages may name a PEM block type ("PRIVATE KEY"),
// never its contents.
func TestKeysNeverPrinted(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	const password = "test-password" // isolate's TRUSTCACHE_PASSWORD
	ref := host + "/team/cache:main"
	pushRandom(t, ref)
	if res := run(t, "keys", "generate", "--name", "ci"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	trustPolicy(t, dir, host, "")
	privPEM, err := os.ReadFile(filepath.Join(dir, "ci.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(privPEM)
	key, err := keys.LoadPrivateKey(privPEM, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	plainPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	ecDER, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})

	// Corrupt variants of the encrypted key.
	var envelope map[string]any
	if err := json.Unmarshal(block.Bytes, &envelope); err != nil {
		t.Fatal(err)
	}
	withEnvelope := func(edit func(map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(block.Bytes, &m)
		edit(m)
		b, _ := json.Marshal(m)
		return pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: b})
	}
	files := map[string][]byte{
		"truncated.key": privPEM[:len(privPEM)/2],
		"flipped.key": withEnvelope(func(m map[string]any) {
			ct, _ := base64.StdEncoding.DecodeString(m["ciphertext"].(string))
			ct[len(ct)-1] ^= 1
			m["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
		}),
		"kdf.key":      withEnvelope(func(m map[string]any) { m["kdf"].(map[string]any)["name"] = "argon2" }),
		"nonce.key":    withEnvelope(func(m map[string]any) { m["cipher"].(map[string]any)["nonce"] = "AAAA" }),
		"notjson.key":  pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes[:len(block.Bytes)-7]}),
		"plain.key":    plainPEM,
		"ec.key":       ecPEM,
		"pub-as.key":   mustRead(t, filepath.Join(dir, "ci.pub")),
		"mode0644.key": privPEM,
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "mode0644.key"), 0o644)
	// A policy that names a private key where a public key belongs.
	os.WriteFile(filepath.Join(dir, "mistake.yaml"), []byte("version: 1\nbuilders:\n  - name: ci\n    key: plain.key\n  - name: inline\n    key: |\n"+
		indentLines(string(plainPEM), "      ")+"scopes:\n  - repositories: [\"**\"]\n    builders: [ci, inline]\n"), 0o644)

	var secrets []string
	for _, s := range []string{base64.StdEncoding.EncodeToString(block.Bytes), string(block.Bytes),
		base64.StdEncoding.EncodeToString(der), hex.EncodeToString(der), base64.StdEncoding.EncodeToString(ecDER),
		hex.EncodeToString(key.(*ecdsa.PrivateKey).D.Bytes())} {
		secrets = append(secrets, secretWindows(s)...)
	}
	for _, line := range strings.Split(string(plainPEM), "\n") { // the PEM body as written, line by line
		secrets = append(secrets, secretWindows(line)...)
	}
	secrets = append(secrets, password)

	argsFile := fakeDocker(t, dir, 0)
	type step struct {
		env  map[string]string
		args []string
	}
	steps := []step{
		{nil, []string{"keys", "generate", "--name", "second"}},
		{nil, []string{"sign", "--key", "ci.key", ref}},
		{nil, []string{"sign", "--key", "ci.key", "--signature-format", "bundle", ref}},
		{map[string]string{"TRUSTCACHE_PASSWORD": "wrong-password"}, []string{"sign", "--key", "ci.key", ref}},
		{nil, []string{"sign", "--key", "mode0644.key", ref}},
		{nil, []string{"sign", "--key", string(plainPEM), ref}},
		{nil, []string{"sign", "--key", string(privPEM), ref}},
		{map[string]string{"TC_TEST_KEY": string(plainPEM)}, []string{"sign", "--key", "env://TC_TEST_KEY", ref}},
		{map[string]string{"TRUSTCACHE_KEY": "plain.key"}, []string{"sign", ref}},
		{nil, []string{"keys", "id", "ci.key"}},
		{nil, []string{"keys", "id", "plain.key"}},
		{nil, []string{"keys", "id", string(plainPEM)}},
		{nil, []string{"policy", "lint", "mistake.yaml"}},
		{nil, []string{"verify", "--policy", "mistake.yaml", ref}},
		{nil, []string{"verify", "--format", "json", ref}},
		{nil, []string{"policy", "explain", ref}},
		{nil, []string{"build", "--sign", "--push", "--key", "plain.key", "."}},
		{nil, []string{"build", "--sign", "--push", "--key", "flipped.key", "."}},
		// Key material passed where it does not belong, by mistake: the
		// errors that quote the argument hide the PEM text. (A --cache-from
		// value is echoed by the build's warnings and summary, which must
		// name the cache; a key there is not covered.)
		{nil, []string{"sign", "--key", "ci.key", string(plainPEM)}},
		{nil, []string{"sign", "--key", "ci.key", "-a", "k=" + string(plainPEM), "-a", "k=x", ref}},
		{nil, []string{"sign", "--key", "ci.key", "--signature-format", string(plainPEM), ref}},
		{nil, []string{"verify", string(plainPEM)}},
		{nil, []string{"verify", "--format", string(plainPEM), ref}},
		{nil, []string{"policy", "lint", string(plainPEM)}},
		{nil, []string{"policy", "explain", string(plainPEM)}},
		{nil, []string{"keys", "generate", "--name", string(plainPEM)}},
		{nil, []string{"build", string(plainPEM)}},
		{nil, []string{"build", "--sign", "--push", "--key", "ci.key", "--sign-annotation", string(plainPEM), "."}},
	}
	for n := range files {
		steps = append(steps, step{nil, []string{"sign", "--key", n, ref}})
	}
	for _, s := range steps {
		for k, v := range s.env {
			t.Setenv(k, v)
		}
		res := run(t, s.args...)
		for k := range s.env {
			if k == "TRUSTCACHE_PASSWORD" {
				t.Setenv(k, password)
			} else {
				os.Unsetenv(k)
			}
		}
		label := redactPEM(strings.Join(s.args, " "))
		if len(label) > 120 {
			label = label[:120] + "…"
		}
		out := res.stdout + res.stderr
		if strings.Contains(out, "-----BEGIN") || strings.Contains(out, "-----END") {
			t.Errorf("%s printed a PEM block:\n%s", label, out)
			continue
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s printed key material or the password %q:\n%s", label, s, out)
				break
			}
		}
		t.Logf("%s: exit %d: %s", label, res.code, strings.TrimSpace(firstLine(res.stderr)))
	}
	os.Remove(argsFile)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func indentLines(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPrivateKeyReadableByOthers: a key file group or others can read
// still signs, with a warning on stderr that names it; stdout stays data.
func TestPrivateKeyReadableByOthers(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	host := newRegistry(t)
	ref := host + "/team/cache:main"
	d := pushRandom(t, ref)
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	want := host + "/team/cache@" + d.String() + "\n"
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o640, true}, {0o644, true}, {0o604, true}, {0o400, false}} {
		if err := os.Chmod(filepath.Join(dir, "ci.key"), tc.mode); err != nil {
			t.Fatal(err)
		}
		res := te.run("sign", "--key", te.path("ci.key"), "-a", "mode="+tc.mode.String(), ref)
		if res.code != 0 || res.stdout != want {
			t.Errorf("sign with a key of mode %v = %d %q %q; want exit 0 and %q", tc.mode, res.code, res.stdout, res.stderr, want)
		}
		warned := strings.Contains(res.stderr, "WARNING:") && strings.Contains(res.stderr, "ci.key") && strings.Contains(res.stderr, "group or others")
		if warned != tc.warn {
			t.Errorf("sign with a key of mode %v: warned %v; want %v\n%s", tc.mode, warned, tc.warn, res.stderr)
		}
	}
}

// encryptKey writes key, encrypted with password as cosign does (at the
// cheapest scrypt strength cosign reads), to dir/name — whatever its type,
// as a key made by another tool would be.
func encryptKey(t *testing.T, dir, name string, key any, password string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	env, err := encrypted.EncryptWithCustomKDFParameters(der, []byte(password), encrypted.Legacy)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: keys.SigstorePrivateKeyPEMType, Bytes: env}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writePublic(t *testing.T, dir, name string, pub crypto.PublicKey) {
	t.Helper()
	b, err := keys.MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestKeysOfOtherAlgorithms: keys cosign accepts (ECDSA P-256/384/521,
// Ed25519, RSA ≥ 2048) sign and verify; weaker or other ones (RSA 1024,
// ECDSA P-224, X25519) are refused with a clear error and exit 2 — as a
// private key to sign with, and as a builder's public key in a policy.
func TestKeysOfOtherAlgorithms(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	host := newRegistry(t)
	const password = "test-password"
	gen := func(kind string) crypto.Signer {
		var (
			k   crypto.Signer
			err error
		)
		switch kind {
		case "p224":
			k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
		case "p384":
			k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		case "rsa1024":
			k, err = rsa.GenerateKey(rand.Reader, 1024)
		case "rsa2048":
			k, err = rsa.GenerateKey(rand.Reader, 2048)
		case "ed25519":
			_, k, err = ed25519.GenerateKey(rand.Reader)
		}
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encryptKey(t, dir, "x25519.key", x, password)
	writePublic(t, dir, "x25519.pub", x.PublicKey())

	for _, tc := range []struct {
		kind string
		want string // "" when the key works
	}{
		{"p384", ""},
		{"rsa2048", ""},
		{"ed25519", ""},
		{"p224", "P-224"},
		{"rsa1024", "1024 bits"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			k := gen(tc.kind)
			encryptKey(t, dir, tc.kind+".key", k, password)
			writePublic(t, dir, tc.kind+".pub", k.Public())
			ref := host + "/team/" + tc.kind + ":main"
			pushRandom(t, ref)
			policy := filepath.Join(dir, tc.kind+".yaml")
			os.WriteFile(policy, []byte("version: 1\nbuilders:\n  - name: b\n    key: "+tc.kind+".pub\nscopes:\n  - repositories: [\""+host+"/team/*\"]\n    builders: [b]\n"), 0o644)

			sign := te.run("sign", "--key", te.path(tc.kind+".key"), ref)
			lint := te.run("policy", "lint", policy)
			id := te.run("keys", "id", te.path(tc.kind+".pub"))
			if tc.want == "" {
				if sign.code != 0 || lint.code != 0 || id.code != 0 {
					t.Fatalf("%s key: sign %d %q, policy lint %d %q, keys id %d %q; want all to work", tc.kind, sign.code, sign.stderr, lint.code, lint.stderr, id.code, id.stderr)
				}
				if res := te.run("verify", "--policy", policy, ref); res.code != 0 {
					t.Errorf("verify of a cache signed with a %s key = %d %s", tc.kind, res.code, res.stdout)
				}
				return
			}
			for what, res := range map[string]cmdResult{"sign": sign, "policy lint": lint, "keys id": id} {
				if res.code != ExitUsage || !strings.Contains(res.stderr, tc.want) {
					t.Errorf("%s with a %s key = %d %q; want exit %d and an error naming %q", what, tc.kind, res.code, res.stderr, ExitUsage, tc.want)
				}
			}
		})
	}
	t.Run("x25519", func(t *testing.T) {
		ref := host + "/team/x:main"
		pushRandom(t, ref)
		if res := te.run("sign", "--key", te.path("x25519.key"), ref); res.code != ExitUsage || !strings.Contains(res.stderr, "unsupported private key type") {
			t.Errorf("sign with an X25519 key = %d %q; want exit %d", res.code, res.stderr, ExitUsage)
		}
		if res := te.run("keys", "id", te.path("x25519.pub")); res.code != ExitUsage || !strings.Contains(res.stderr, "unsupported public key type") {
			t.Errorf("keys id of an X25519 key = %d %q; want exit %d", res.code, res.stderr, ExitUsage)
		}
	})
}
