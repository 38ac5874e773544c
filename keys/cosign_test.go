package keys

// Cross-checks against cosign's own library, used here only: importing it from
// package keys would put rekor, tuf, grpc and the rest into every start-up of
// the plugin.

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/signature"
)

// TestCosignKeyLoads: a key from cosign's GenerateKeyPair loads with
// LoadPrivateKey and matches cosign's public key.
func TestCosignKeyLoads(t *testing.T) {
	tests := []struct {
		name     string
		password []byte
	}{
		{"password", []byte("cosign password")},
		{"empty password", []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return tt.password, nil })
			if err != nil {
				t.Fatal(err)
			}
			signer, err := LoadPrivateKey(kb.PrivateBytes, tt.password)
			if err != nil {
				t.Fatalf("LoadPrivateKey(cosign key, %q) = %v; want nil error", tt.password, err)
			}
			pub, err := ParsePublicKeyPEM(kb.PublicBytes)
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM(cosign.pub) = %v; want nil error", err)
			}
			if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
				t.Errorf("LoadPrivateKey(cosign key) public key differs from cosign.pub")
			}
		})
	}
}

// TestOurKeyLoadsInCosign: GenerateKeyPair's output loads with cosign's
// LoadPrivateKey, and our public PEM is byte for byte what cosign writes.
func TestOurKeyLoadsInCosign(t *testing.T) {
	password := []byte("our password")
	privPEM, pubPEM, err := GenerateKeyPair(password)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := cosign.LoadPrivateKey(privPEM, password, nil)
	if err != nil {
		t.Fatalf("cosign.LoadPrivateKey(GenerateKeyPair(%q)) = %v; want nil error", password, err)
	}
	pub, err := sv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	cosignPubPEM, err := MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cosignPubPEM, pubPEM) {
		t.Errorf("public key cosign loads:\n%s\nwant:\n%s", cosignPubPEM, pubPEM)
	}
}

// TestCosignImportedKeys: RSA and Ed25519 keys that `cosign import-key-pair`
// encrypts load with LoadPrivateKey.
func TestCosignImportedKeys(t *testing.T) {
	tests := []struct {
		name string
		key  crypto.Signer
	}{
		{"Ed25519", mustEd25519(t)},
		{"RSA 2048", mustRSA(t, 2048)},
	}
	password := []byte("imported")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			der, err := x509.MarshalPKCS8PrivateKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "plain.pem")
			if err := os.WriteFile(path, pemOf("PRIVATE KEY", der), 0o600); err != nil {
				t.Fatal(err)
			}
			kb, err := cosign.ImportKeyPair(path, func(bool) ([]byte, error) { return password, nil })
			if err != nil {
				t.Fatal(err)
			}
			got, err := LoadPrivateKey(kb.PrivateBytes, password)
			if err != nil {
				t.Fatalf("LoadPrivateKey(cosign import-key-pair %s) = %v; want nil error", tt.name, err)
			}
			if !got.(interface{ Equal(crypto.PrivateKey) bool }).Equal(tt.key) {
				t.Errorf("LoadPrivateKey(cosign import-key-pair %s) returned a different key", tt.name)
			}
		})
	}
}

// TestSignatureInterop signs with cosign's signer (as `cosign sign --key`
// loads it) and verifies with VerifySignature, and the other way round with
// the verifier `cosign verify --key` uses (sigstore's LoadVerifier, SHA-256).
func TestSignatureInterop(t *testing.T) {
	payload := []byte(`{"critical":{"identity":{"docker-reference":"registry.example.com/cache"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":{"builder":"ci-main"}}`)
	tests := []struct {
		name string
		key  crypto.Signer
		// loadOpts are cosign's LoadPrivateKey options: nil is what
		// `cosign sign --key` uses (Ed25519ph for Ed25519 keys).
		loadOpts *[]signature.LoadOption
	}{
		{"ECDSA P-256", mustECDSA(t, elliptic.P256()), nil},
		{"Ed25519, cosign default (Ed25519ph)", mustEd25519(t), nil},
		{"Ed25519, pure", mustEd25519(t), &[]signature.LoadOption{}},
		{"RSA 2048", mustRSA(t, 2048), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// cosign signs; we verify.
			privPEM, err := encryptPrivateKey(tt.key, nil, encrypted.Legacy)
			if err != nil {
				t.Fatal(err)
			}
			sv, err := cosign.LoadPrivateKey(privPEM, nil, tt.loadOpts)
			if err != nil {
				t.Fatalf("cosign.LoadPrivateKey(%s) = %v", tt.name, err)
			}
			sig, err := sv.SignMessage(bytes.NewReader(payload))
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifySignature(tt.key.Public(), payload, sig); err != nil {
				t.Errorf("VerifySignature(%s, cosign's signature) = %v; want nil", tt.name, err)
			}

			// We sign; cosign verify --key verifies.
			ours, err := Sign(tt.key, payload)
			if err != nil {
				t.Fatalf("Sign(%s) = %v", tt.name, err)
			}
			v, err := signature.LoadVerifier(tt.key.Public(), crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.VerifySignature(bytes.NewReader(ours), bytes.NewReader(payload)); err != nil {
				t.Errorf("cosign's verifier rejects Sign(%s): %v", tt.name, err)
			}
		})
	}
}
