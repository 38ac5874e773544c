package keys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrKMSNotSupported is returned (wrapped) for a key reference naming a key in
// a KMS, which this build cannot use.
var ErrKMSNotSupported = errors.New("KMS keys are not supported in this build (build with -tags kms)")

// kmsSchemes are the KMS key reference schemes cosign understands.
var kmsSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"}

// isKMSRef reports whether ref names a key in a KMS.
func isKMSRef(ref string) bool {
	for _, s := range kmsSchemes {
		if strings.HasPrefix(ref, s) {
			return true
		}
	}
	return false
}

// hasScheme reports whether ref looks like SCHEME://… (other than env://),
// so that it is not mistaken for a file path.
func hasScheme(ref string) bool {
	scheme, _, ok := strings.Cut(ref, "://")
	if !ok || scheme == "" {
		return false
	}
	for _, r := range scheme {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '+', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}

// schemeError explains why a SCHEME:// key reference cannot be used.
func schemeError(ref string) error {
	for _, s := range kmsSchemes {
		if strings.HasPrefix(ref, s) {
			return fmt.Errorf("key reference %q: %w", ref, ErrKMSNotSupported)
		}
	}
	scheme, _, _ := strings.Cut(ref, "://")
	return fmt.Errorf("key reference %q: scheme %q is not supported; use a file path or %sVAR", ref, scheme+"://", EnvScheme)
}

// RefKind is what a key reference names. The rules are written once, here:
// LoadPublicKey and LoadSigner read by them, and the policy parser
// (verify/trustpolicy/policy_schema.go) refuses by them what a policy may not name.
type RefKind int

const (
	RefEmpty  RefKind = iota // ""
	RefInline                // inline PEM text (starts with "-----BEGIN", after spaces)
	RefEnv                   // env://VAR
	RefKMS                   // awskms://, gcpkms://, azurekms://, hashivault://
	RefScheme                // another SCHEME://…, which no loader reads
	RefFile                  // a file path, relative to a base directory unless absolute
)

// KindOf returns what ref names.
func KindOf(ref string) RefKind {
	switch {
	case ref == "":
		return RefEmpty
	case strings.HasPrefix(strings.TrimSpace(ref), "-----BEGIN"):
		return RefInline
	case strings.HasPrefix(ref, EnvScheme):
		return RefEnv
	case isKMSRef(ref):
		return RefKMS
	case hasScheme(ref):
		return RefScheme
	}
	return RefFile
}

// DescribeRef names a key reference in a message without echoing inline
// key material: "(inline PEM)", else the reference quoted.
func DescribeRef(ref string) string { return describeRef(ref) }

// MaxPublicKeyFileSize bounds a public key file a policy names; a PEM
// public key is far smaller.
const MaxPublicKeyFileSize = 64 << 10

// CheckPublicKeyFile refuses a file key reference (RefFile) that does not
// name a small regular file, relative to baseDir unless absolute: a
// policy naming /dev/zero or a FIFO must fail, not hang.
func CheckPublicKeyFile(ref, baseDir string) error {
	path := ref
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("key %q: %w", ref, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("key %q: %s is not a regular file", ref, path)
	}
	if fi.Size() > MaxPublicKeyFileSize {
		return fmt.Errorf("key %q: %s is larger than %d bytes, not a PEM public key", ref, path, MaxPublicKeyFileSize)
	}
	return nil
}
