// Package keys handles builder key material: cosign-compatible encrypted
// private keys, PKIX public keys, key ids and the key references a policy
// uses to name a builder's public key, whose rules (scheme.go) the
// loaders and the policy parser (verify/trustpolicy/policy_schema.go) share.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvScheme prefixes a key reference that names an environment variable
// holding the PEM text, as cosign's env:// key references do.
const EnvScheme = "env://"

// ID returns the key id of a public key: "sha256:" followed by the lowercase
// hex SHA-256 of the key's PKIX DER encoding.
func ID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ParsePublicKeyPEM parses the first PEM block of data as a PKIX public key
// ("PUBLIC KEY"), the format cosign writes to cosign.pub. ECDSA (P-256,
// P-384, P-521), Ed25519 and RSA (2048 bits or more) keys are accepted: the
// kinds a private key may be (a policy cannot trust a weaker key than one
// trustcache would sign with).
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing PKIX public key: %w", err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return pub, nil
		}
		return nil, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("RSA key is %d bits, want at least %d", bits, minRSABits)
		}
		return pub, nil
	case ed25519.PublicKey:
		return pub, nil
	default:
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
}

// LoadPublicKey loads a public key named by ref, as a policy file names it:
//
//   - inline PEM text (starts with "-----BEGIN");
//   - env://VAR: the PEM text is in the environment variable VAR;
//   - otherwise a file path, relative to baseDir unless absolute.
//
// KMS URIs (awskms://, gcpkms://, azurekms://, hashivault://) give an error
// wrapping ErrKMSNotSupported; other SCHEME:// references are refused too.
func LoadPublicKey(ref, baseDir string) (crypto.PublicKey, error) {
	data, err := readKeyRef(ref, baseDir)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", describeRef(ref), err)
	}
	return pub, nil
}

// readKeyRef returns the bytes a key reference points at.
func readKeyRef(ref, baseDir string) ([]byte, error) {
	switch KindOf(ref) {
	case RefEmpty:
		return nil, errors.New("empty key reference")
	case RefInline:
		return []byte(ref), nil
	case RefEnv:
		name := strings.TrimPrefix(ref, EnvScheme)
		if name == "" {
			return nil, fmt.Errorf("key reference %q names no environment variable", ref)
		}
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil, fmt.Errorf("key reference %q: environment variable %s is not set", ref, name)
		}
		return []byte(v), nil
	case RefKMS, RefScheme:
		return nil, schemeError(ref)
	default:
		path := ref
		if !filepath.IsAbs(path) && baseDir != "" {
			path = filepath.Join(baseDir, path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading key file: %w", err)
		}
		return data, nil
	}
}

// describeRef names a key reference in an error without echoing inline key
// material.
func describeRef(ref string) string {
	if KindOf(ref) == RefInline {
		return "(inline PEM)"
	}
	return fmt.Sprintf("%q", ref)
}
