package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	payload := []byte(`{"critical":{"identity":{"docker-reference":"registry.example.com/app-cache"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}`)
	tests := []struct {
		name string
		key  crypto.Signer
		// check verifies sig independently of VerifySignature, the way
		// the algorithm is specified.
		check func(pub crypto.PublicKey, sig []byte) bool
	}{
		{"ECDSA P-256", mustECDSA(t, elliptic.P256()), checkECDSASHA256(payload)},
		{"ECDSA P-384", mustECDSA(t, elliptic.P384()), checkECDSASHA256(payload)},
		{"Ed25519", mustEd25519(t), func(pub crypto.PublicKey, sig []byte) bool {
			return ed25519.Verify(pub.(ed25519.PublicKey), payload, sig)
		}},
		{"RSA 2048", mustRSA(t, 2048), func(pub crypto.PublicKey, sig []byte) bool {
			d := sha256.Sum256(payload)
			return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, d[:], sig) == nil
		}},
	}
	other := mustECDSA(t, elliptic.P256())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sig, err := Sign(tt.key, payload)
			if err != nil {
				t.Fatalf("Sign(%s) = %v; want nil error", tt.name, err)
			}
			if !tt.check(tt.key.Public(), sig) {
				t.Errorf("Sign(%s) signature does not verify as the algorithm specifies", tt.name)
			}
			if err := VerifySignature(tt.key.Public(), payload, sig); err != nil {
				t.Errorf("VerifySignature(%s, good) = %v; want nil", tt.name, err)
			}

			tampered := append([]byte(nil), sig...)
			tampered[len(tampered)/2] ^= 0x40
			otherPayload := append([]byte(nil), payload...)
			otherPayload[10] ^= 1
			bad := []struct {
				name    string
				pub     crypto.PublicKey
				payload []byte
				sig     []byte
			}{
				{"other payload", tt.key.Public(), otherPayload, sig},
				{"tampered signature", tt.key.Public(), payload, tampered},
				{"truncated signature", tt.key.Public(), payload, sig[:len(sig)-1]},
				{"empty signature", tt.key.Public(), payload, nil},
			}
			if _, isECDSA := tt.key.Public().(*ecdsa.PublicKey); isECDSA {
				bad = append(bad, struct {
					name    string
					pub     crypto.PublicKey
					payload []byte
					sig     []byte
				}{"other key", other.Public(), payload, sig})
			}
			for _, b := range bad {
				if err := VerifySignature(b.pub, b.payload, b.sig); !errors.Is(err, ErrInvalidSignature) {
					t.Errorf("VerifySignature(%s, %s) = %v; want %v", tt.name, b.name, err, ErrInvalidSignature)
				}
			}
		})
	}
}

func checkECDSASHA256(payload []byte) func(crypto.PublicKey, []byte) bool {
	return func(pub crypto.PublicKey, sig []byte) bool {
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) != 0 {
			return false // not ASN.1 DER
		}
		d := sha256.Sum256(payload)
		return ecdsa.Verify(pub.(*ecdsa.PublicKey), d[:], rs.R, rs.S)
	}
}

// TestVerifyEd25519ph checks the Ed25519ph signatures cosign v2 makes with an
// Ed25519 key by default.
func TestVerifyEd25519ph(t *testing.T) {
	key := mustEd25519(t)
	payload := []byte("payload")
	digest := sha512.Sum512(payload)
	sig, err := key.Sign(nil, digest[:], &ed25519.Options{Hash: crypto.SHA512})
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(key.Public(), payload, sig); err != nil {
		t.Errorf("VerifySignature(Ed25519ph) = %v; want nil", err)
	}
	if err := VerifySignature(key.Public(), []byte("other"), sig); !errors.Is(err, ErrInvalidSignature) {
		t.Errorf("VerifySignature(Ed25519ph, other payload) = %v; want %v", err, ErrInvalidSignature)
	}
}

// opaqueSigner hides the concrete key type, as a KMS or hardware signer does.
type opaqueSigner struct{ crypto.Signer }

type fakeSigner struct{}

func (fakeSigner) Public() crypto.PublicKey { return "not a key" }
func (fakeSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("unreachable")
}

func TestSignOpaqueSigner(t *testing.T) {
	for _, key := range []crypto.Signer{mustECDSA(t, elliptic.P256()), mustEd25519(t), mustRSA(t, 2048)} {
		sig, err := Sign(opaqueSigner{key}, []byte("p"))
		if err != nil {
			t.Fatalf("Sign(opaque %T) = %v; want nil error", key, err)
		}
		if err := VerifySignature(key.Public(), []byte("p"), sig); err != nil {
			t.Errorf("VerifySignature(opaque %T) = %v; want nil", key, err)
		}
	}
}

func TestSignVerifyUnsupported(t *testing.T) {
	if _, err := Sign(fakeSigner{}, []byte("p")); err == nil || !strings.Contains(err.Error(), "unsupported key type string") {
		t.Errorf("Sign(fakeSigner) = %v; want an unsupported key type error", err)
	}
	if _, err := Sign(nil, []byte("p")); err == nil {
		t.Errorf("Sign(nil) = nil error; want an error")
	}
	x, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	badKeys := []struct {
		name string
		pub  crypto.PublicKey
	}{
		{"string", "not a key"},
		{"nil", nil},
		{"nil ECDSA", (*ecdsa.PublicKey)(nil)},
		{"nil RSA", (*rsa.PublicKey)(nil)},
		{"short Ed25519", ed25519.PublicKey{1, 2, 3}},
		{"ECDSA by value", x.PublicKey},
	}
	for _, k := range badKeys {
		if err := VerifySignature(k.pub, []byte("p"), []byte("sig")); err == nil || errors.Is(err, ErrInvalidSignature) {
			t.Errorf("VerifySignature(%s) = %v; want an error about the key", k.name, err)
		}
	}
}
