package keys

// Key-material tests for docs/SECURITY.md: keys of other algorithms and
// sizes, as private keys to sign with and as builders' public keys.

import (
	"crypto"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// TestPrivateKeyAlgorithms: an encrypted key made by another tool loads
// only if it is a kind cosign signs with (ECDSA P-256/384/521, Ed25519, RSA
// of 2048 bits or more); anything else fails with an error that names what
// it is.
func TestPrivateKeyAlgorithms(t *testing.T) {
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  any
		want string // "" when it loads
	}{
		{"ECDSA P-256", mustECDSA(t, elliptic.P256()), ""},
		{"ECDSA P-384", mustECDSA(t, elliptic.P384()), ""},
		{"ECDSA P-521", mustECDSA(t, elliptic.P521()), ""},
		{"Ed25519", mustEd25519(t), ""},
		{"RSA 2048", mustRSA(t, 2048), ""},
		{"ECDSA P-224", mustECDSA(t, elliptic.P224()), "unsupported ECDSA curve P-224"},
		{"RSA 1024", mustRSA(t, 1024), "RSA key is 1024 bits, want at least 2048"},
		{"X25519", x25519, "unsupported private key type *ecdh.PrivateKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, err := x509.MarshalPKCS8PrivateKey(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			env, err := encrypted.EncryptWithCustomKDFParameters(der, []byte("pw"), encrypted.Legacy)
			if err != nil {
				t.Fatal(err)
			}
			data := pem.EncodeToMemory(&pem.Block{Type: SigstorePrivateKeyPEMType, Bytes: env})
			signer, err := LoadPrivateKey(data, []byte("pw"))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("LoadPrivateKey(%s) = %v; want it to load", tc.name, err)
				}
				sig, err := Sign(signer, []byte("payload"))
				if err != nil || VerifySignature(signer.Public(), []byte("payload"), sig) != nil {
					t.Errorf("%s: Sign/VerifySignature = %v", tc.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadPrivateKey(%s) = %v; want an error containing %q", tc.name, err, tc.want)
			}
			checkNoKeyMaterial(t, err, data, der)
			// And through LoadSigner, as sign does.
			path := filepath.Join(t.TempDir(), "k.key")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadSigner(path, func(bool) ([]byte, error) { return []byte("pw"), nil }); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadSigner(%s) = %v; want an error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestPublicKeyAlgorithms: a builder's public key is held to the rules a
// signing key is: a policy cannot trust a key trustcache (and sigstore's
// key policy) would refuse to sign with — RSA under 2048 bits, ECDSA on
// curves other than P-256/384/521 — nor a key that cannot sign (X25519).
func TestPublicKeyAlgorithms(t *testing.T) {
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  crypto.PublicKey
		want string // "" when it parses
	}{
		{"ECDSA P-256", mustECDSA(t, elliptic.P256()).Public(), ""},
		{"ECDSA P-384", mustECDSA(t, elliptic.P384()).Public(), ""},
		{"ECDSA P-521", mustECDSA(t, elliptic.P521()).Public(), ""},
		{"Ed25519", mustEd25519(t).Public(), ""},
		{"RSA 2048", mustRSA(t, 2048).Public(), ""},
		{"RSA 4096", mustRSA(t, 4096).Public(), ""},
		{"ECDSA P-224", mustECDSA(t, elliptic.P224()).Public(), "unsupported ECDSA curve P-224"},
		{"RSA 1024", mustRSA(t, 1024).Public(), "RSA key is 1024 bits, want at least 2048"},
		{"X25519", x25519.PublicKey(), "unsupported public key type *ecdh.PublicKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, err := x509.MarshalPKIXPublicKey(tc.pub)
			if err != nil {
				t.Fatal(err)
			}
			data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			got, err := ParsePublicKeyPEM(data)
			if tc.want == "" {
				if err != nil || got == nil {
					t.Fatalf("ParsePublicKeyPEM(%s) = %v, %v; want the key", tc.name, got, err)
				}
				return
			}
			if err == nil || got != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParsePublicKeyPEM(%s) = %v, %v; want no key and an error containing %q", tc.name, got, err, tc.want)
			}
			if _, err := LoadPublicKey(string(data), ""); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadPublicKey(inline %s) = %v; want an error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestKeyErrorsNameNoMaterial: the errors of loading a private key never
// quote it, whichever way the key reference names it (file, env://VAR,
// inline PEM) and whatever is wrong with it.
func TestKeyErrorsNameNoMaterial(t *testing.T) {
	fx := fixtureKeyPair(t, "right")
	der, err := x509.MarshalPKCS8PrivateKey(fx.key)
	if err != nil {
		t.Fatal(err)
	}
	plain := pemOf("PRIVATE KEY", der)
	dir := t.TempDir()
	for _, data := range [][]byte{fx.privPEM, plain, fx.privPEM[:len(fx.privPEM)-30]} {
		path := filepath.Join(dir, "k.key")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("TRUSTCACHE_TEST_KEY_PEM", string(data))
		for _, ref := range []string{path, "env://TRUSTCACHE_TEST_KEY_PEM", string(data)} {
			_, err := LoadSigner(ref, func(bool) ([]byte, error) { return []byte("wrong"), nil })
			if err == nil {
				t.Fatalf("LoadSigner with a wrong password or a bad key succeeded")
			}
			if strings.Contains(err.Error(), "-----") {
				t.Errorf("LoadSigner error quotes PEM text: %v", err)
			}
			checkNoKeyMaterial(t, err, data, der)
			if errors.Is(err, ErrWrongPassword) && strings.Contains(err.Error(), "wrong\"") {
				t.Errorf("LoadSigner error quotes the password: %v", err)
			}
		}
	}
}
