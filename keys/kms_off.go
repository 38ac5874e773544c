//go:build !kms

package keys

import (
	"crypto"
	"fmt"
)

// KMSSupported reports whether this build signs with KMS keys. The cloud KMS
// SDKs more than double the binary and its start-up (docs/performance.md),
// so they are linked only with -tags kms.
const KMSSupported = false

// kmsSigner refuses KMS key references in a build without -tags kms.
func kmsSigner(ref string) (crypto.Signer, error) {
	return nil, fmt.Errorf("key reference %q: %w", ref, ErrKMSNotSupported)
}
