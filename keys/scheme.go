package keys

import (
	"errors"
	"fmt"
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
