//go:build kms

package keys

import (
	"context"
	"crypto"
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature/kms"

	// The cloud KMS providers; each registers its scheme with kms.Get.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)

// KMSSupported reports whether this build signs with KMS keys.
const KMSSupported = true

// kmsSigner returns a signer for a KMS key reference (awskms://,
// gcpkms://, azurekms://, hashivault://) through sigstore's KMS providers,
// as cosign does. Credentials come from each provider's usual environment.
func kmsSigner(ref string) (crypto.Signer, error) {
	ctx := context.Background()
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("KMS key %q: %w", ref, err)
	}
	// Fetch the public key now, so an unreachable KMS or a wrong key fails
	// before the build, with the provider's reason.
	if _, err := sv.PublicKey(); err != nil {
		return nil, fmt.Errorf("KMS key %q: %w", ref, err)
	}
	s, _, err := sv.CryptoSigner(ctx, func(error) {})
	if err != nil {
		return nil, fmt.Errorf("KMS key %q: %w", ref, err)
	}
	return s, nil
}
