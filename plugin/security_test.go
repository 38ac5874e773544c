package plugin

// Attack tests for docs/SECURITY.md at the command level: a tag moved in
// the middle of a build, --cache-from values that try to smuggle a second
// ref, key material that must never be printed, private key files others
// can read, keys of other algorithms, and bad input that must write
// nothing.

import (
	"context"
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
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// trustPolicy writes a policy allowing builder ci (ci.pub) for host/team/*.
func trustPolicy(t *testing.T, dir, host, extra string) {
	t.Helper()
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"" + host + "/team/*\"]\n    builders: [ci]\n" + extra
	if err := os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBuildTagMovedDuringBuild: the registry moves the tag to the
// attacker's cache right after trustcache resolved it, before the
// signatures are read and long before BuildKit imports anything. The build
// is handed the verified digest, never the tag (the e2e test
// TestBuildTagMovedAfterVerification runs the same race against a real
// BuildKit).
func TestBuildTagMovedDuringBuild(t *testing.T) {
	dir := isolate(t)
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var (
		mu    sync.Mutex
		moved bool
		evil  []byte // the attacker's manifest
		evilT string // and its media type
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reg.ServeHTTP(w, r)
		mu.Lock()
		defer mu.Unlock()
		if evil == nil || moved || !strings.HasSuffix(r.URL.Path, "/team/cache/manifests/main") {
			return
		}
		// The tag was just resolved: move it, as a racing attacker would.
		moved = true
		put := httptest.NewRequest(http.MethodPut, "/v2/team/cache/manifests/main", strings.NewReader(string(evil)))
		put.Header.Set("Content-Type", evilT)
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, put)
		if rec.Code != http.StatusCreated {
			panic("moving the tag: " + rec.Body.String())
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	cache := host + "/team/cache:main"
	good := pushRandom(t, cache)
	if res := run(t, "sign", "--key", "ci.key", cache); res.code != 0 {
		t.Fatal(res.stderr)
	}
	bad := pushRandom(t, host+"/team/cache:evil")
	evilRef, err := name.ParseReference(host + "/team/cache:evil")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(evilRef)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	evil, evilT = desc.Manifest, string(desc.MediaType)
	mu.Unlock()

	argsFile := fakeDocker(t, dir, 0)
	res := run(t, "build", "--no-ledger", "--cache-from", cache, ".")
	if res.code != 0 {
		t.Fatalf("build = %d %s", res.code, res.stderr)
	}
	want := []string{"buildx", "build", "--cache-from", "type=registry,ref=ENDPOINT@" + good.String(), "."}
	if diff := cmp.Diff(want, viaEndpoint(readArgs(t, argsFile))); diff != "" {
		t.Errorf("buildx argv (-want +got):\n%s", diff)
	}
	cacheRef, err := name.ParseReference(cache)
	if err != nil {
		t.Fatal(err)
	}
	now, err := remote.Head(cacheRef)
	if err != nil {
		t.Fatal(err)
	}
	if !moved || now.Digest != bad {
		t.Fatalf("the tag was not moved during the build (now %s, attacker's %s): the test proves nothing", now.Digest, bad)
	}
}

// TestBuildCacheFromSmuggling: a --cache-from value that names two refs.
// buildx keeps the last value of a repeated key (keys are case-insensitive),
// so that is the one verified, and the rewritten value holds only the
// pinned ref.
func TestBuildCacheFromSmuggling(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	good := host + "/team/cache:main"
	bad := host + "/team/cache:evil"
	dGood := pushRandom(t, good)
	pushRandom(t, bad)
	if res := run(t, "sign", "--key", "ci.key", good); res.code != 0 {
		t.Fatal(res.stderr)
	}
	pinned := "type=registry,ref=ENDPOINT@" + dGood.String()
	for _, tc := range []struct {
		cacheFrom string
		want      []string // the --cache-from values buildx gets
	}{
		{"type=registry,ref=" + good + ",ref=" + bad, nil},
		{"type=registry,ref=" + bad + ",REF=" + good, []string{pinned}},
		{"type=registry,ref=" + bad + `,"ref=` + good + `"`, []string{pinned}},
		{good + "," + bad, []string{pinned}},
	} {
		argsFile := fakeDocker(t, dir, 0)
		os.Remove(argsFile)
		res := run(t, "build", "--no-ledger", "--cache-from", tc.cacheFrom, ".")
		if res.code != 0 {
			t.Errorf("build --cache-from %q = %d %s", tc.cacheFrom, res.code, res.stderr)
			continue
		}
		var got []string
		args := viaEndpoint(readArgs(t, argsFile))
		for i, a := range args {
			if a == "--cache-from" && i+1 < len(args) {
				got = append(got, args[i+1])
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("build --cache-from %q: buildx --cache-from values (-want +got):\n%s", tc.cacheFrom, diff)
		}
	}
}

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
	dir := isolate(t)
	host := newRegistry(t)
	ref := host + "/team/cache:main"
	d := pushRandom(t, ref)
	run(t, "keys", "generate", "--name", "ci")
	want := host + "/team/cache@" + d.String() + "\n"
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o640, true}, {0o644, true}, {0o604, true}, {0o400, false}} {
		if err := os.Chmod(filepath.Join(dir, "ci.key"), tc.mode); err != nil {
			t.Fatal(err)
		}
		res := run(t, "sign", "--key", "ci.key", "-a", "mode="+tc.mode.String(), ref)
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
	dir := isolate(t)
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

			sign := run(t, "sign", "--key", tc.kind+".key", ref)
			lint := run(t, "policy", "lint", policy)
			id := run(t, "keys", "id", tc.kind+".pub")
			if tc.want == "" {
				if sign.code != 0 || lint.code != 0 || id.code != 0 {
					t.Fatalf("%s key: sign %d %q, policy lint %d %q, keys id %d %q; want all to work", tc.kind, sign.code, sign.stderr, lint.code, lint.stderr, id.code, id.stderr)
				}
				if res := run(t, "verify", "--policy", policy, ref); res.code != 0 {
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
		if res := run(t, "sign", "--key", "x25519.key", ref); res.code != ExitUsage || !strings.Contains(res.stderr, "unsupported private key type") {
			t.Errorf("sign with an X25519 key = %d %q; want exit %d", res.code, res.stderr, ExitUsage)
		}
		if res := run(t, "keys", "id", "x25519.pub"); res.code != ExitUsage || !strings.Contains(res.stderr, "unsupported public key type") {
			t.Errorf("keys id of an X25519 key = %d %q; want exit %d", res.code, res.stderr, ExitUsage)
		}
	})
}

// TestSignBadInputWritesNothing: bad annotations, refs, flags and keys
// each fail with a clear error and the documented exit code, before
// anything is written: no signature appears for the good ref given
// alongside.
func TestSignBadInputWritesNothing(t *testing.T) {
	isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	good := host + "/team/cache:main"
	d := pushRandom(t, good)
	for _, tc := range []struct {
		flags []string
		refs  []string // given after the good ref
		code  int
		msg   string
	}{
		{flags: []string{"-a", "=x"}, code: ExitUsage, msg: "want KEY=VALUE"},
		{flags: []string{"-a", " =x"}, code: ExitUsage, msg: "want KEY=VALUE"},
		{flags: []string{"-a", "novalue"}, code: ExitUsage, msg: "want KEY=VALUE"},
		{flags: []string{"-a", "builder=me"}, code: ExitUsage, msg: "set by docker trustcache"},
		{flags: []string{"-a", " created =2020-01-01T00:00:00Z"}, code: ExitUsage, msg: "set by docker trustcache"},
		{flags: []string{"-a", "ref=a", "-a", "ref=b"}, code: ExitUsage, msg: "given twice"},
		{flags: []string{"--signature-format", "xml"}, code: ExitUsage, msg: "--signature-format"},
		{flags: []string{"--policy", "missing.yaml"}, code: ExitUsage, msg: "missing.yaml"},
		{flags: []string{"--key", "missing.key"}, code: ExitUsage, msg: "missing.key"},
		{flags: []string{"--key", "ci.pub"}, code: ExitUsage, msg: "public key"},
		{refs: []string{"Not A Ref!"}, code: ExitUsage, msg: "invalid reference"},
		{refs: []string{host + "/team/cache@sha256:1234"}, code: ExitUsage, msg: "invalid reference"},
		{refs: []string{host + "/team/cache:missing"}, code: ExitFailure, msg: "does not exist"},
		{refs: []string{host + "/team/other:main"}, code: ExitFailure, msg: "does not exist"},
	} {
		args := []string{"sign"}
		if !slices.Contains(tc.flags, "--key") {
			args = append(args, "--key", "ci.key")
		}
		args = append(append(append(args, tc.flags...), good), tc.refs...)
		res := run(t, args...)
		if res.code != tc.code || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("%q = exit %d, %q; want exit %d containing %q", args, res.code, res.stderr, tc.code, tc.msg)
		}
		if res.stdout != "" {
			t.Errorf("%q printed %q on stdout; want nothing", args, res.stdout)
		}
	}
	repo, _ := name.NewRepository(host + "/team/cache")
	if _, err := remote.Head(signature.SigTag(repo, d)); err == nil {
		t.Errorf("a failed sign wrote %s", signature.SigTag(repo, d))
	}
	if idx, err := remote.Referrers(repo.Digest(d.String())); err == nil {
		if im, _ := idx.IndexManifest(); im != nil && len(im.Manifests) > 0 {
			t.Errorf("a failed sign attached %d referrers", len(im.Manifests))
		}
	}
}

// TestSignIdentityAnnotation: a bundle's repository binding is the signed
// "identity" annotation, which trustcache sets itself: -a identity=OTHER
// cannot make a bundle name another repository.
func TestSignIdentityAnnotation(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	ref := host + "/team/cache:main"
	d := pushRandom(t, ref)
	res := run(t, "sign", "--key", "ci.key", "--signature-format", "bundle", "-a", "identity="+host+"/team/other", ref)
	if res.code != 0 {
		t.Fatalf("sign = %d %s", res.code, res.stderr)
	}
	repo, _ := name.NewRepository(host + "/team/cache")
	sigs, err := signature.ReadBundles(context.Background(), repo, d)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("ReadBundles = %v, %v; want one bundle", sigs, err)
	}
	st, err := signature.ParseStatement(sigs[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := st.Identity(); id != repo.Name() {
		t.Errorf("signed identity = %q; want the signed repository %q", id, repo.Name())
	}
	if res := run(t, "verify", ref); res.code != 0 {
		t.Errorf("verify = %d %s", res.code, res.stdout)
	}
}

// TestBuildBadInputBuildsNothing: bad trustcache flags stop the build
// before it starts.
func TestBuildBadInputBuildsNothing(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("version: 1\nbuilders: []\n"), 0o644)
	argsFile := fakeDocker(t, dir, 0)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"build", "--sign", "--push", "--key", "ci.key", "--sign-annotation", "builder=me", "."}, "set by docker trustcache"},
		{[]string{"build", "--sign", "--push", "--key", "ci.key", "--sign-annotation", "created=now", "."}, "set by docker trustcache"},
		{[]string{"build", "--sign", "--push", "--key", "ci.key", "--sign-annotation", "=x", "."}, "key=value"},
		{[]string{"build", "--sign", "--push", "--key", "ci.key", "--signature-format", "xml", "."}, "legacy or bundle"},
		{[]string{"build", "--sign", "--cache-to", "type=registry,ref=Not A Ref!", "--key", "ci.key", "."}, "--cache-to"},
		{[]string{"build", "--trust-policy", "bad.yaml", "--cache-from", host + "/team/cache:main", "."}, "bad.yaml"},
		{[]string{"build", "--cache-from", "type=registry,ref=a,\"ref=b", "."}, "cache-from"},
	} {
		res := run(t, tc.args...)
		if res.code != ExitUsage || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("%v = %d %q; want %d containing %q", tc.args, res.code, res.stderr, ExitUsage, tc.msg)
		}
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Errorf("docker buildx build ran despite a usage error")
	}
}

// TestBuildUnsignedCacheTypes: cache types registry signatures cannot
// cover are dropped unless the policy's allowUnsignedTypes lists them.
func TestBuildUnsignedCacheTypes(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "allowUnsignedTypes: [local]\n")
	argsFile := fakeDocker(t, dir, 0)
	res := run(t, "build", "--no-ledger", "--cache-from", "type=local,src=/tmp/c", "--cache-from", "type=gha,scope=x",
		"--cache-from", "type=s3,bucket=b", "--cache-from", "type=azblob,name=n", ".")
	if res.code != 0 {
		t.Fatalf("build = %d %s", res.code, res.stderr)
	}
	want := []string{"buildx", "build", "--cache-from", "type=local,src=/tmp/c", "."}
	if diff := cmp.Diff(want, readArgs(t, argsFile)); diff != "" {
		t.Errorf("buildx argv (-want +got):\n%s", diff)
	}
	for _, typ := range []string{"gha", "s3", "azblob"} {
		if !strings.Contains(res.stderr, "dropped cache type="+typ) {
			t.Errorf("no warning for the dropped type=%s cache:\n%s", typ, res.stderr)
		}
	}
}

// TestMalformedDockerConfig: a docker config.json that does not parse
// gives no credentials (the docker CLI warns and goes on with none):
// verification still decides, on what an anonymous client can read.
func TestMalformedDockerConfig(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	ref := host + "/team/cache:main"
	pushRandom(t, ref)
	if res := run(t, "sign", "--key", "ci.key", ref); res.code != 0 {
		t.Fatal(res.stderr)
	}
	cfg := filepath.Join(dir, "docker-config", "config.json")
	os.MkdirAll(filepath.Dir(cfg), 0o700)
	if err := os.WriteFile(cfg, []byte(`{"auths": {"`+host+`": {"auth": "c2VjcmV0OnBhc3N3b3Jk"`), 0o600); err != nil {
		t.Fatal(err)
	}
	res := run(t, "verify", ref)
	if res.code != 0 {
		t.Errorf("verify with a malformed docker config = %d %q %q; want 0", res.code, res.stdout, res.stderr)
	}
	if strings.Contains(res.stdout+res.stderr, "c2VjcmV0OnBhc3N3b3Jk") || strings.Contains(res.stdout+res.stderr, "password") {
		t.Errorf("verify printed the credentials of the docker config:\n%s%s", res.stdout, res.stderr)
	}
	t.Logf("stderr: %s", res.stderr)
}

// TestBuildSignsReportedDigest: an attacker races the trusted builder's
// push and moves the cache tag to their own cache between the export and
// the signing. --sign signs the digest the build reported (buildx's
// metadata file), never the tag re-resolved; a build that reports no
// digest signs nothing.
func TestBuildSignsReportedDigest(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	cache := host + "/team/cache:main"
	built := pushRandom(t, cache) // what the build exported
	evil := pushRandom(t, cache)  // the tag, moved by the attacker since
	repo, _ := name.NewRepository(host + "/team/cache")

	// The docker CLI the plugin runs: writes the metadata buildx would.
	script := filepath.Join(dir, "docker")
	writeDocker := func(metadata string) {
		body := "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = --metadata-file ]; then f=\"$2\"; fi; shift; done\n" +
			"printf '%s' '" + metadata + "' > \"$f\"\n"
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", script)
	args := []string{"build", "--no-ledger", "--sign", "--key", "ci.key", "--trust-report", "report.json",
		"--cache-to", "type=registry,ref=" + cache + ",mode=max", "."}

	writeDocker(`{"buildx.build.ref":"x"}`)
	res := run(t, args...)
	if res.code == 0 || !strings.Contains(res.stderr, "not signing by tag") {
		t.Errorf("build --sign without a reported digest = %d %q; want a failure saying it does not sign by tag", res.code, res.stderr)
	}
	for _, d := range []v1.Hash{built, evil} {
		if _, err := remote.Head(signature.SigTag(repo, d)); err == nil {
			t.Fatalf("a build that reported no digest signed %s", d)
		}
	}

	writeDocker(`{"cache.manifest":{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + built.String() + `","size":1}}`)
	res = run(t, args...)
	if res.code != 0 {
		t.Fatalf("build --sign = %d %s", res.code, res.stderr)
	}
	if _, err := remote.Head(signature.SigTag(repo, built)); err != nil {
		t.Errorf("the reported digest %s was not signed: %v", built, err)
	}
	if _, err := remote.Head(signature.SigTag(repo, evil)); err == nil {
		t.Errorf("the digest the tag was moved to (%s) was signed", evil)
	}
	if res := run(t, "verify", cache); res.code != ExitUntrusted {
		t.Errorf("verify of the moved tag = %d %s; want %d", res.code, res.stdout, ExitUntrusted)
	}

	// With the ledger, the digest the build signed is recorded: this
	// host's next verification of it fetches no signature.
	pinned := repo.Name() + "@" + built.String()
	if res := run(t, append([]string{"build"}, args[2:]...)...); res.code != 0 {
		t.Fatalf("build --sign (ledger) = %d %s", res.code, res.stderr)
	}
	if res := run(t, "verify", pinned); res.code != 0 || !strings.Contains(res.stdout, "verified before on this host (ledger)") {
		t.Errorf("verify of the digest the build signed = %d %q; want it from the ledger", res.code, res.stdout)
	}
}

// TestBuildSignRefusesUnverifiedImports: a signing build must not import a
// cache that was not verified trusted (an audit scope's untrusted cache, a
// skip scope's, an unsigned type the policy allows) and then sign what it
// exported with the trusted key: every strict consumer would trust a cache
// built from the attacker's. The build does not start, nothing is signed,
// and the report says why.
func TestBuildSignRefusesUnverifiedImports(t *testing.T) {
	for _, tc := range []struct {
		name, cacheFrom, why string
	}{
		{"audit scope, unsigned cache", "type=registry,ref=HOST/audit/cache:main", "level audit"},
		{"skip scope", "type=registry,ref=HOST/skip/cache:main", "level skip"},
		{"unsigned type the policy allows", "type=local,src=/tmp/cache", "allows unsigned local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := isolate(t)
			host := newRegistry(t)
			run(t, "keys", "generate", "--name", "ci")
			policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nallowUnsignedTypes: [local]\nscopes:\n" +
				"  - repositories: [\"" + host + "/team/*\"]\n    builders: [ci]\n" +
				"  - repositories: [\"" + host + "/audit/*\"]\n    builders: [ci]\n    level: audit\n" +
				"  - repositories: [\"" + host + "/skip/*\"]\n    builders: [ci]\n    level: skip\n"
			if err := os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644); err != nil {
				t.Fatal(err)
			}
			pushRandom(t, host+"/audit/cache:main") // the attacker's, unsigned
			pushRandom(t, host+"/skip/cache:main")
			cache := host + "/team/cache:main"
			argsFile := fakeDocker(t, dir, 0)
			res := run(t, "build", "--no-ledger", "--sign", "--key", "ci.key", "--trust-report", "report.json",
				"--cache-from", strings.ReplaceAll(tc.cacheFrom, "HOST", host),
				"--cache-to", "type=registry,ref="+cache+",mode=max", ".")
			if res.code != ExitUntrusted {
				t.Errorf("build --sign importing an unverified cache = exit %d; want %d\n%s", res.code, ExitUntrusted, res.stderr)
			}
			if _, err := os.Stat(argsFile); err == nil {
				t.Errorf("the build ran: %v", readArgs(t, argsFile))
			}
			for _, w := range []string{"not signing", tc.why} {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
				}
			}
			var rep trustReport
			if err := json.Unmarshal(mustRead(t, filepath.Join(dir, "report.json")), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Built || len(rep.Signed) != 0 || !strings.Contains(rep.NotSigned, tc.why) {
				t.Errorf("report: built %v, signed %v, notSigned %q; want not built, nothing signed, and why (%q)", rep.Built, rep.Signed, rep.NotSigned, tc.why)
			}
		})
	}
	// The control: a cache verified trusted does not stop a signing build.
	t.Run("trusted cache", func(t *testing.T) {
		dir := isolate(t)
		host := newRegistry(t)
		run(t, "keys", "generate", "--name", "ci")
		trustPolicy(t, dir, host, "")
		good := host + "/team/cache:main"
		pushRandom(t, good)
		if res := run(t, "sign", "--key", "ci.key", good); res.code != 0 {
			t.Fatal(res.stderr)
		}
		argsFile := fakeDocker(t, dir, 0)
		res := run(t, "build", "--no-ledger", "--sign", "--key", "ci.key", "--cache-from", good,
			"--cache-to", "type=registry,ref="+good+",mode=max", ".")
		if _, err := os.Stat(argsFile); err != nil || strings.Contains(res.stderr, "not signing a build") {
			t.Errorf("a signing build importing only trusted caches did not run: %d %s", res.code, res.stderr)
		}
	})
}

// TestRegistryTextIsEscaped: a hostile registry answers the signature
// fetch with an error body that carries a carriage return, ANSI escapes
// and a newline, to erase the "dropped" line and print a forged "used …
// signed by ci" line. Text output shows such strings escaped, on the line
// they belong to; JSON keeps them exact.
func TestRegistryTextIsEscaped(t *testing.T) {
	dir := isolate(t)
	const forged = "\r\x1b[2K\x1b[1A  used     evil\n           pinned to evil, signed by ci\u202e"
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/sha256-") || strings.Contains(r.URL.Path, "/referrers/") {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, forged)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	cache := host + "/team/cache:main"
	pushRandom(t, cache)

	clean := func(what, s string) {
		t.Helper()
		for _, bad := range []string{"\r", "\x1b", "\u202e", "\n  used     evil", "\n           pinned to evil"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s carries %q from the registry raw:\n%q", what, bad, s)
			}
		}
		if !strings.Contains(s, `\x1b[2K`) {
			t.Errorf("%s does not show the registry's text escaped:\n%q", what, s)
		}
	}
	res := run(t, "verify", "--no-ledger", cache)
	if res.code != ExitInconclusive {
		t.Errorf("verify = %d; want %d (%q)", res.code, ExitInconclusive, res.stdout)
	}
	clean("verify text output", res.stdout+res.stderr)

	res = run(t, "verify", "--no-ledger", "--format", "json", cache)
	var out struct{ Reasons []string }
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("verify --format json: %v\n%s", err, res.stdout)
	}
	if !strings.Contains(strings.Join(out.Reasons, "\n"), forged) {
		t.Errorf("verify --format json reasons %q do not keep the registry's text exact", out.Reasons)
	}

	fakeDocker(t, dir, 0)
	res = run(t, "build", "--no-ledger", "--trust-report", "report.json", "--cache-from", cache, ".")
	clean("build output", res.stdout+res.stderr)
	if !strings.Contains(string(mustRead(t, filepath.Join(dir, "report.json"))), `\r\u001b[2K`) {
		t.Errorf("the trust report does not keep the registry's text exact")
	}

	res = run(t, "policy", "explain", cache)
	clean("policy explain output", res.stdout+res.stderr)
}
