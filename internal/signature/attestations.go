package signature

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ReadAttestations returns the sigstore bundle attestations of predicate
// type predicateType attached to digest in repo as OCI referrers (the
// layout AppendBundle with AppendOptions.PredicateType and `cosign attest
// --new-bundle-format` write): through the referrers API, else the
// referrers tag. Each entry is as ReadBundles returns it: the statement as
// Payload (not parsed), the DSSE signature, and the PAE it signs; nothing
// is verified here.
//
// Only referrers whose manifest annotation
// dev.sigstore.bundle.predicateType names predicateType are read (cosign
// and trustcache always set it on an attestation); the others — signatures,
// attestations of other types — are skipped unread. The bounds are
// ReadBundles': more than MaxSignatures candidates is ErrTooManySignatures,
// manifests over MaxReferrerManifestSize and bundles over MaxBundleSize are
// malformed entries (IsMalformed), a failure reading one referrer is its
// entry's Err, and a failure listing the referrers is the error. No
// attestation is (nil, nil).
func ReadAttestations(ctx context.Context, repo name.Repository, digest v1.Hash, predicateType string, opts ...remote.Option) ([]Signature, error) {
	if predicateType == "" || predicateType == SignPredicateType {
		return nil, fmt.Errorf("attestations: predicate type %q is not an attestation type", predicateType)
	}
	opts = append(slices.Clip(opts), remote.WithContext(ctx))
	subject, im, err := listReferrers(repo, digest, opts)
	if err != nil {
		return nil, err
	}
	var cands []v1.Descriptor
	for _, d := range im.Manifests {
		if d.MediaType != types.OCIManifestSchema1 || d.Annotations[annotationBundlePredicateType] != predicateType {
			continue
		}
		switch d.ArtifactType {
		case BundleMediaType, bundleMediaTypeAlt, "", EmptyMediaType:
			cands = append(cands, d)
		}
	}
	if len(cands) > MaxSignatures {
		return nil, fmt.Errorf("referrers of %s: %w (%d %s attestations)", subject, ErrTooManySignatures, len(cands), predicateType)
	}
	return readBundles(ctx, repo, cands, opts, predicateType), nil
}
