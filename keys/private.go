package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// PEM block types of an encrypted private key. cosign (v2.0 and later) writes
// SigstorePrivateKeyPEMType; keys from older cosign versions carry
// CosignPrivateKeyPEMType. Both hold the same thing: the JSON envelope of
// go-securesystemslib/encrypted (scrypt KDF, NaCl secretbox) around the
// key's PKCS #8 DER.
const (
	SigstorePrivateKeyPEMType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	CosignPrivateKeyPEMType   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// publicKeyPEMType is the PEM block type of a PKIX public key.
const publicKeyPEMType = "PUBLIC KEY"

// minRSABits is the smallest RSA modulus accepted for a private key, as
// sigstore's goodkey does.
const minRSABits = 2048

// ErrWrongPassword is returned (wrapped) by LoadPrivateKey when the key does
// not decrypt with the password given. NaCl secretbox cannot tell a wrong
// password from ciphertext altered after encryption, so a tampered key file
// whose envelope is still well-formed also reports this.
var ErrWrongPassword = errors.New("wrong password")

// GenerateKeyPair generates an ECDSA P-256 key pair, the kind
// `cosign generate-key-pair` makes, and returns the private key encrypted with
// password (see EncryptPrivateKey) and the public key as PKIX PEM. An empty or
// nil password is allowed, as in cosign: the key is still encrypted, with the
// empty password.
func GenerateKeyPair(password []byte) (privatePEM, publicPEM []byte, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating ECDSA P-256 key: %w", err)
	}
	privatePEM, err = EncryptPrivateKey(priv, password)
	if err != nil {
		return nil, nil, err
	}
	publicPEM, err = MarshalPublicKeyPEM(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	return privatePEM, publicPEM, nil
}

// EncryptPrivateKey encodes key as cosign does: PKCS #8 DER, encrypted with
// password by go-securesystemslib/encrypted at its standard scrypt strength
// (N=2^16, r=8, p=1), in a PEM block of type SigstorePrivateKeyPEMType.
// ECDSA, Ed25519 and RSA keys are accepted.
func EncryptPrivateKey(key crypto.Signer, password []byte) ([]byte, error) {
	return encryptPrivateKey(key, password, encrypted.Standard)
}

// encryptPrivateKey is EncryptPrivateKey with the scrypt strength chosen;
// tests use the cheaper encrypted.Legacy.
func encryptPrivateKey(key crypto.Signer, password []byte, strength encrypted.KDFParameterStrength) ([]byte, error) {
	if err := checkPrivateKey(key); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key as PKCS #8: %w", err)
	}
	defer clear(der)
	if password == nil {
		password = []byte{}
	}
	envelope, err := encrypted.EncryptWithCustomKDFParameters(der, password, strength)
	if err != nil {
		return nil, fmt.Errorf("encrypting private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: SigstorePrivateKeyPEMType, Bytes: envelope}), nil
}

// MarshalPublicKeyPEM encodes pub as a PKIX "PUBLIC KEY" PEM block, the format
// of cosign.pub.
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicKeyPEMType, Bytes: der}), nil
}

// LoadPrivateKey decrypts an encrypted private key PEM, as written by
// GenerateKeyPair or by cosign (generate-key-pair, import-key-pair), with
// password. nil and empty passwords are the same. The first PEM block of
// pemData is used.
//
// A wrong password gives an error wrapping ErrWrongPassword. Other errors say
// what was found instead (no PEM block, an unencrypted or unknown PEM type, a
// corrupt envelope, an unsupported key) and never contain key material.
func LoadPrivateKey(pemData, password []byte) (crypto.Signer, error) {
	envelope, err := encryptedEnvelope(pemData)
	if err != nil {
		return nil, err
	}
	return decryptPrivateKey(envelope, password)
}

// encryptedEnvelope returns the encrypted envelope in the first PEM block of
// pemData after checking its PEM type and structure, so that a caller can
// refuse a file before asking for its password.
func encryptedEnvelope(pemData []byte) ([]byte, error) {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("no PEM block found in private key data")
	}
	if err := checkPrivateKeyPEMType(block.Type); err != nil {
		return nil, err
	}
	if err := checkEnvelope(block.Bytes); err != nil {
		return nil, fmt.Errorf("encrypted private key is corrupt: %w", err)
	}
	return block.Bytes, nil
}

// decryptPrivateKey decrypts an envelope that encryptedEnvelope checked.
func decryptPrivateKey(envelope, password []byte) (crypto.Signer, error) {
	if password == nil {
		password = []byte{}
	}
	der, err := encrypted.Decrypt(envelope, password)
	if err != nil {
		// checkEnvelope has ruled out every failure but the secretbox
		// authentication.
		return nil, fmt.Errorf("decrypting private key: %w", ErrWrongPassword)
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("decrypted private key is not a valid PKCS #8 key")
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	if err := checkPrivateKey(signer); err != nil {
		return nil, err
	}
	return signer, nil
}

// errPublicKey is the error for a public key given where the private key is
// needed.
var errPublicKey = errors.New("pass the private key instead")

// checkPrivateKeyPEMType explains why a PEM block type is not an encrypted
// cosign key.
func checkPrivateKeyPEMType(t string) error {
	const want = `want "` + SigstorePrivateKeyPEMType + `" or "` + CosignPrivateKeyPEMType + `"`
	switch t {
	case SigstorePrivateKeyPEMType, CosignPrivateKeyPEMType:
		return nil
	case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return fmt.Errorf("private key is not encrypted (PEM block %q); encrypt it with `cosign import-key-pair`", t)
	case "ENCRYPTED PRIVATE KEY":
		return fmt.Errorf("PEM block %q is a password-protected PKCS #8 key (openssl), which is not supported; convert it with `cosign import-key-pair`", t)
	case publicKeyPEMType:
		return fmt.Errorf("PEM block %q is a public key, which the policy lists: %w", t, errPublicKey)
	default:
		return fmt.Errorf("PEM block %q is not an encrypted private key; %s", truncate(t, 64), want)
	}
}

// envelope mirrors the JSON that go-securesystemslib/encrypted writes.
type envelope struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N int `json:"N"`
			R int `json:"r"`
			P int `json:"p"`
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// secretboxOverhead is the authenticator length NaCl secretbox prepends.
const secretboxOverhead = 16

// checkEnvelope checks what encrypted.Decrypt checks before it decrypts, and
// what it would panic or fail on, so that a failure of Decrypt afterwards can
// only mean that authentication failed. Its errors describe the structure,
// never the bytes.
func checkEnvelope(data []byte) error {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return fmt.Errorf("field %q has the wrong type", typeErr.Field)
		}
		return errors.New("the envelope is not valid JSON or its base64 is malformed")
	}
	if e.KDF.Name != "scrypt" {
		return fmt.Errorf("unknown key derivation %q, want \"scrypt\"", truncate(e.KDF.Name, 32))
	}
	if e.Cipher.Name != "nacl/secretbox" {
		return fmt.Errorf("unknown cipher %q, want \"nacl/secretbox\"", truncate(e.Cipher.Name, 32))
	}
	p := e.KDF.Params
	switch {
	case p.R == 8 && p.P == 1 && (p.N == 1<<15 || p.N == 1<<16 || p.N == 1<<17):
	default:
		return fmt.Errorf("unsupported scrypt parameters N=%d r=%d p=%d", p.N, p.R, p.P)
	}
	if len(e.Cipher.Nonce) != 24 {
		return fmt.Errorf("nonce is %d bytes, want 24", len(e.Cipher.Nonce))
	}
	if len(e.Ciphertext) < secretboxOverhead {
		return fmt.Errorf("ciphertext is %d bytes, shorter than its %d-byte authenticator", len(e.Ciphertext), secretboxOverhead)
	}
	return nil
}

// checkPrivateKey accepts the key types and sizes cosign accepts.
func checkPrivateKey(key crypto.Signer) error {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k == nil || k.Curve == nil {
			return errors.New("incomplete ECDSA private key")
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return fmt.Errorf("private Ed25519 key is %d bytes, want %d", len(k), ed25519.PrivateKeySize)
		}
		return nil
	case *rsa.PrivateKey:
		if k == nil || k.N == nil {
			return errors.New("incomplete RSA private key")
		}
		if bits := k.N.BitLen(); bits < minRSABits {
			return fmt.Errorf("RSA key is %d bits, want at least %d", bits, minRSABits)
		}
		return nil
	case nil:
		return errors.New("no private key")
	default:
		return fmt.Errorf("unsupported private key type %T", key)
	}
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
