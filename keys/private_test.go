package keys

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
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

func TestGenerateKeyPair(t *testing.T) {
	tests := []struct {
		name     string
		password []byte
		load     []byte // password given to LoadPrivateKey
	}{
		{name: "password", password: []byte("pässwörd ☃"), load: []byte("pässwörd ☃")},
		{name: "nil password is the empty password", password: nil, load: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			privPEM, pubPEM, err := GenerateKeyPair(tt.password)
			if err != nil {
				t.Fatalf("GenerateKeyPair(%q) = %v; want nil error", tt.password, err)
			}
			block, rest := pem.Decode(privPEM)
			if block == nil || block.Type != SigstorePrivateKeyPEMType || len(rest) != 0 {
				t.Fatalf("GenerateKeyPair(%q) private key is not one %q PEM block:\n%s", tt.password, SigstorePrivateKeyPEMType, privPEM)
			}
			var env envelope
			if err := json.Unmarshal(block.Bytes, &env); err != nil {
				t.Fatalf("private key envelope: %v", err)
			}
			gotKDF := [4]any{env.KDF.Name, env.KDF.Params.N, env.KDF.Params.R, env.KDF.Params.P}
			if want := [4]any{"scrypt", 1 << 16, 8, 1}; gotKDF != want {
				t.Errorf("GenerateKeyPair(%q) KDF = %v; want %v (cosign's)", tt.password, gotKDF, want)
			}

			signer, err := LoadPrivateKey(privPEM, tt.load)
			if err != nil {
				t.Fatalf("LoadPrivateKey(generated, %q) = %v; want nil error", tt.load, err)
			}
			priv, ok := signer.(*ecdsa.PrivateKey)
			if !ok || priv.Curve != elliptic.P256() {
				t.Fatalf("LoadPrivateKey(generated) = %T; want an ECDSA P-256 key", signer)
			}
			pub, err := ParsePublicKeyPEM(pubPEM)
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM(generated) = %v", err)
			}
			if !priv.PublicKey.Equal(pub) {
				t.Errorf("LoadPrivateKey(generated) public key differs from the generated public key")
			}
		})
	}
}

func TestEncryptPrivateKeyRoundTrip(t *testing.T) {
	password := []byte("s3cret")
	tests := []struct {
		name string
		key  crypto.Signer
	}{
		{"ECDSA P-384", mustECDSA(t, elliptic.P384())},
		{"Ed25519", mustEd25519(t)},
		{"RSA 2048", mustRSA(t, 2048)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			privPEM, err := encryptPrivateKey(tt.key, password, encrypted.Legacy)
			if err != nil {
				t.Fatalf("EncryptPrivateKey(%s) = %v; want nil error", tt.name, err)
			}
			got, err := LoadPrivateKey(privPEM, password)
			if err != nil {
				t.Fatalf("LoadPrivateKey(%s) = %v; want nil error", tt.name, err)
			}
			if !got.(interface{ Equal(crypto.PrivateKey) bool }).Equal(tt.key) {
				t.Errorf("LoadPrivateKey(%s) returned a different key", tt.name)
			}
		})
	}
}

func TestEncryptPrivateKeyRejects(t *testing.T) {
	tests := []struct {
		name string
		key  crypto.Signer
		want string
	}{
		{"P-224", mustECDSA(t, elliptic.P224()), "unsupported ECDSA curve P-224"},
		{"RSA 1024", mustRSA(t, 1024), "RSA key is 1024 bits, want at least 2048"},
		{"nil", nil, "no private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EncryptPrivateKey(tt.key, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("EncryptPrivateKey(%s) = %v; want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}

// TestLoadPrivateKeyFormats loads keys in every encrypted form cosign has
// written: both PEM types and all three scrypt strengths.
func TestLoadPrivateKeyFormats(t *testing.T) {
	key := mustECDSA(t, elliptic.P256())
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	password := []byte("pw")
	tests := []struct {
		name     string
		pemType  string
		strength encrypted.KDFParameterStrength
	}{
		{"cosign type, legacy", CosignPrivateKeyPEMType, encrypted.Legacy},
		{"sigstore type, OWASP", SigstorePrivateKeyPEMType, encrypted.OWASP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := encrypted.EncryptWithCustomKDFParameters(der, password, tt.strength)
			if err != nil {
				t.Fatal(err)
			}
			data := pem.EncodeToMemory(&pem.Block{Type: tt.pemType, Bytes: env})
			got, err := LoadPrivateKey(data, password)
			if err != nil {
				t.Fatalf("LoadPrivateKey(%s) = %v; want nil error", tt.name, err)
			}
			if !key.Equal(got) {
				t.Errorf("LoadPrivateKey(%s) returned a different key", tt.name)
			}
		})
	}
}

func TestLoadPrivateKeyErrors(t *testing.T) {
	fx := fixtureKeyPair(t, "right")
	password, key, good := []byte("right"), fx.key, fx.privPEM
	goodBlock, _ := pem.Decode(good)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := fx.pubPEM
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519DER, err := x509.MarshalPKCS8PrivateKey(x25519)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024DER, err := x509.MarshalPKCS8PrivateKey(mustRSA(t, 1024))
	if err != nil {
		t.Fatal(err)
	}

	// withEnvelope returns good with its envelope changed by edit.
	withEnvelope := func(edit func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(goodBlock.Bytes, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: SigstorePrivateKeyPEMType, Bytes: b})
	}
	// encrypt wraps plaintext in a valid envelope.
	encrypt := func(plaintext []byte) []byte {
		env, err := encrypted.EncryptWithCustomKDFParameters(plaintext, password, encrypted.Legacy)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: SigstorePrivateKeyPEMType, Bytes: env})
	}
	flipped := withEnvelope(func(m map[string]any) {
		ct, _ := base64.StdEncoding.DecodeString(m["ciphertext"].(string))
		ct[len(ct)-1] ^= 1
		m["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
	})

	tests := []struct {
		name     string
		data     []byte
		password []byte
		wantIs   error  // if set, errors.Is must hold
		want     string // if set, the error must contain it
	}{
		{name: "wrong password", data: good, password: []byte("wrong"), wantIs: ErrWrongPassword, want: "wrong password"},
		{name: "altered ciphertext", data: flipped, password: password, wantIs: ErrWrongPassword},
		{name: "empty", data: nil, want: "no PEM block found"},
		{name: "not PEM", data: []byte("hello, world"), want: "no PEM block found"},
		{name: "truncated PEM", data: good[:len(good)/2], want: "no PEM block found"},
		{name: "unencrypted PKCS #8", data: pemOf("PRIVATE KEY", der), want: `private key is not encrypted (PEM block "PRIVATE KEY")`},
		{name: "unencrypted EC", data: pemOf("EC PRIVATE KEY", ecDER), want: `private key is not encrypted (PEM block "EC PRIVATE KEY")`},
		{name: "unencrypted RSA", data: pemOf("RSA PRIVATE KEY", []byte{1}), want: `not encrypted (PEM block "RSA PRIVATE KEY")`},
		{name: "openssl encrypted", data: pemOf("ENCRYPTED PRIVATE KEY", []byte{1}), want: `PEM block "ENCRYPTED PRIVATE KEY" is a password-protected PKCS #8 key`},
		{name: "public key", data: pubPEM, want: `PEM block "PUBLIC KEY" is a public key, which the policy lists: pass the private key instead`},
		{name: "certificate", data: pemOf("CERTIFICATE", []byte{1}), want: `PEM block "CERTIFICATE" is not an encrypted private key`},
		{name: "envelope not JSON", data: pemOf(SigstorePrivateKeyPEMType, []byte("not json")), want: "encrypted private key is corrupt: the envelope is not valid JSON"},
		{name: "envelope truncated", data: pemOf(SigstorePrivateKeyPEMType, goodBlock.Bytes[:len(goodBlock.Bytes)-10]), want: "encrypted private key is corrupt"},
		{name: "envelope wrong type", data: withEnvelope(func(m map[string]any) { m["kdf"] = "scrypt" }), want: `field "kdf" has the wrong type`},
		{name: "unknown kdf", data: withEnvelope(func(m map[string]any) { m["kdf"].(map[string]any)["name"] = "argon2" }), want: `unknown key derivation "argon2"`},
		{name: "unknown cipher", data: withEnvelope(func(m map[string]any) { m["cipher"].(map[string]any)["name"] = "aes" }), want: `unknown cipher "aes"`},
		{name: "costly scrypt", data: withEnvelope(func(m map[string]any) { m["kdf"].(map[string]any)["params"].(map[string]any)["N"] = 1 << 24 }), want: "unsupported scrypt parameters N=16777216 r=8 p=1"},
		{name: "short nonce", data: withEnvelope(func(m map[string]any) { m["cipher"].(map[string]any)["nonce"] = "AAAA" }), want: "nonce is 3 bytes, want 24"},
		{name: "short ciphertext", data: withEnvelope(func(m map[string]any) { m["ciphertext"] = "AAAA" }), want: "ciphertext is 3 bytes"},
		{name: "not PKCS #8 inside", data: encrypt([]byte("plain text")), password: password, want: "decrypted private key is not a valid PKCS #8 key"},
		{name: "X25519 inside", data: encrypt(x25519DER), password: password, want: "unsupported private key type *ecdh.PrivateKey"},
		{name: "RSA 1024 inside", data: encrypt(rsa1024DER), password: password, want: "RSA key is 1024 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := LoadPrivateKey(tt.data, tt.password)
			if err == nil {
				t.Fatalf("LoadPrivateKey(%s) = %T, nil; want an error", tt.name, got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("LoadPrivateKey(%s) = %v; want %v", tt.name, err, tt.wantIs)
			}
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadPrivateKey(%s) = %v; want an error containing %q", tt.name, err, tt.want)
			}
			checkNoKeyMaterial(t, err, tt.data, der)
		})
	}
}

// checkNoKeyMaterial fails when err quotes a run of 12 or more characters of
// the input's PEM body or of the key's DER (raw, hex-ish or base64).
func checkNoKeyMaterial(t *testing.T, err error, data, der []byte) {
	t.Helper()
	msg := err.Error()
	var leaks []string
	if block, _ := pem.Decode(data); block != nil {
		leaks = append(leaks, base64.StdEncoding.EncodeToString(block.Bytes), string(block.Bytes))
	}
	leaks = append(leaks, base64.StdEncoding.EncodeToString(der), string(der))
	for _, s := range leaks {
		for i := 0; i+12 <= len(s); i += 4 {
			if w := s[i : i+12]; strings.Contains(msg, w) {
				t.Fatalf("error %q quotes input bytes %q", msg, w)
			}
		}
	}
}

func TestMarshalPublicKeyPEM(t *testing.T) {
	for _, key := range []crypto.Signer{mustECDSA(t, elliptic.P256()), mustEd25519(t), mustRSA(t, 2048)} {
		data, err := MarshalPublicKeyPEM(key.Public())
		if err != nil {
			t.Fatalf("MarshalPublicKeyPEM(%T) = %v; want nil error", key.Public(), err)
		}
		got, err := ParsePublicKeyPEM(data)
		if err != nil {
			t.Fatalf("ParsePublicKeyPEM(MarshalPublicKeyPEM(%T)) = %v; want nil error", key.Public(), err)
		}
		wantID, _ := ID(key.Public())
		gotID, _ := ID(got)
		if diff := cmp.Diff(wantID, gotID); diff != "" {
			t.Errorf("key id after a PEM round trip (-want +got):\n%s", diff)
		}
	}
}

// keyPair is a test key and its PEM encodings.
type keyPair struct {
	key             *ecdsa.PrivateKey
	privPEM, pubPEM []byte
}

// fixtures caches fixtureKeyPair's keys by password: every scrypt run costs
// a large fraction of a second, many seconds under the race detector.
var fixtures sync.Map

// fixtureKeyPair returns an ECDSA P-256 key encrypted with password, at
// the cheapest scrypt strength cosign reads.
func fixtureKeyPair(t testing.TB, password string) keyPair {
	t.Helper()
	if kp, ok := fixtures.Load(password); ok {
		return kp.(keyPair)
	}
	key := mustECDSA(t, elliptic.P256())
	privPEM, err := encryptPrivateKey(key, []byte(password), encrypted.Legacy)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := MarshalPublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := fixtures.LoadOrStore(password, keyPair{key: key, privPEM: privPEM, pubPEM: pubPEM})
	return kp.(keyPair)
}

func pemOf(typ string, b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})
}

func mustECDSA(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEd25519(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRSA(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
