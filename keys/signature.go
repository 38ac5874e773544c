package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
)

// ErrInvalidSignature is returned (wrapped) by VerifySignature when a
// signature does not verify.
var ErrInvalidSignature = errors.New("invalid signature")

// Sign signs payload so that `cosign verify --key` accepts the signature. For
// an ECDSA P-256 key, the kind `cosign generate-key-pair` makes, the result is
// what `cosign sign --key` produces:
//
//   - ECDSA: ASN.1 DER signature over the SHA-256 digest of payload, for
//     every curve (cosign verifies with SHA-256 unless told otherwise);
//   - Ed25519: pure Ed25519 over payload itself (cosign v2 signs with
//     Ed25519ph but verifies pure Ed25519 with --key);
//   - RSA: PKCS #1 v1.5 over the SHA-256 digest.
func Sign(signer crypto.Signer, payload []byte) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("signing: no signer")
	}
	var (
		sig []byte
		err error
	)
	switch pub := signer.Public().(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey:
		digest := sha256.Sum256(payload)
		sig, err = signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	case ed25519.PublicKey:
		sig, err = signer.Sign(rand.Reader, payload, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("signing: unsupported key type %T", pub)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return sig, nil
}

// VerifySignature checks sig over payload with pub, for signatures made by
// Sign or by `cosign sign --key`:
//
//   - ECDSA: ASN.1 DER signature over the SHA-256 digest of payload;
//   - Ed25519: pure Ed25519 over payload, or Ed25519ph over its SHA-512
//     digest (what cosign v2 signs with an Ed25519 key by default);
//   - RSA: PKCS #1 v1.5 over the SHA-256 digest.
//
// A signature that does not verify gives an error wrapping
// ErrInvalidSignature.
func VerifySignature(pub crypto.PublicKey, payload, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return errors.New("verifying: incomplete ECDSA public key")
		}
		digest := sha256.Sum256(payload)
		if !ecdsa.VerifyASN1(k, digest[:], sig) {
			return fmt.Errorf("ECDSA: %w", ErrInvalidSignature)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("verifying: Ed25519 public key is %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		if len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("Ed25519: signature is %d bytes, want %d: %w", len(sig), ed25519.SignatureSize, ErrInvalidSignature)
		}
		if ed25519.Verify(k, payload, sig) {
			return nil
		}
		digest := sha512.Sum512(payload)
		if ed25519.VerifyWithOptions(k, digest[:], sig, &ed25519.Options{Hash: crypto.SHA512}) == nil {
			return nil
		}
		return fmt.Errorf("Ed25519: %w", ErrInvalidSignature)
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return errors.New("verifying: incomplete RSA public key")
		}
		digest := sha256.Sum256(payload)
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig); err != nil {
			return fmt.Errorf("RSA: %w", ErrInvalidSignature)
		}
		return nil
	default:
		return fmt.Errorf("verifying: unsupported key type %T", pub)
	}
}
