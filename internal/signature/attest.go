package signature

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/keys"
)

// The write side of attestations (ReadAttestations is the read side): an
// in-toto statement signed into a sigstore bundle and attached to its
// subjects as OCI referrers of its predicate type, as cosign attest
// --new-bundle-format writes.

// SignStatement returns the in-toto statement signed by s: a DSSE envelope
// (payload type in-toto) over it, in a sigstore bundle (keyless: with the
// certificate and timestamps as verification material).
func (s Signer) SignStatement(ctx context.Context, statement []byte) ([]byte, error) {
	if s.Keyless != nil {
		ks, err := s.Keyless.SignDSSE(ctx, InTotoPayloadType, statement)
		if err != nil {
			return nil, fmt.Errorf("signing the statement: %w", err)
		}
		return ks.Bundle, nil
	}
	if s.Key == nil {
		return nil, errors.New("signing the statement: no key")
	}
	bundle, err := NewBundle(statement, s.Key)
	if err != nil {
		return nil, fmt.Errorf("signing the statement: %w", err)
	}
	return bundle, nil
}

// Attest signs statement (SignStatement) and attaches the bundle to each
// subject (AttachAttestation). same, if set, is asked of each attestation
// of predicateType already attached whose signature verifies with s's
// key, with its statement: true makes the new one redundant there (a
// record equal but for its time), and nothing is written for that
// subject. A keyless signer has no key of its own to compare (each
// signature's certificate is for a new ephemeral key): its attestation is
// always written.
func (s Signer) Attest(ctx context.Context, statement []byte, predicateType string, same func(statement []byte) bool, subjects []name.Digest, opts ...remote.Option) ([]name.Digest, error) {
	bundle, err := s.SignStatement(ctx, statement)
	if err != nil {
		return nil, err
	}
	return AttachAttestation(ctx, bundle, predicateType, s.sameAttestation(same), subjects, opts...)
}

// sameAttestation returns AppendOptions.Same for Attest: an existing
// attestation is the same when it is signed by s's key and same says its
// statement is.
func (s Signer) sameAttestation(same func([]byte) bool) func(Signature) bool {
	if same == nil || s.Key == nil {
		return nil
	}
	pub := s.Key.Public()
	return func(existing Signature) bool {
		return existing.Err == nil &&
			keys.VerifySignature(pub, existing.SignedBytes(), existing.Signature) == nil &&
			same(existing.Payload)
	}
}

// AttachAttestation attaches bundle (a signed statement of predicateType)
// to each subject as an OCI 1.1 referrer (AppendBundle), each subject
// once. The bundle's blob is uploaded once per repository; each further
// subject costs one referrer manifest (and, on a registry without the
// referrers API, the referrers tag update). Repositories are written at
// once, so that their confirmation waits overlap; the subjects of one
// repository in turn. It returns the subjects the attestation is on (added
// or already there) in their order, and every failure, each naming its
// subject.
func AttachAttestation(ctx context.Context, bundle []byte, predicateType string, same func(Signature) bool, subjects []name.Digest, opts ...remote.Option) ([]name.Digest, error) {
	var uniq []name.Digest
	seen := map[string]bool{}
	for _, d := range subjects {
		if !seen[d.String()] {
			seen[d.String()] = true
			uniq = append(uniq, d)
		}
	}
	byRepo := map[string][]int{}
	var repos []string
	for i, d := range uniq {
		r := d.Context().Name()
		if byRepo[r] == nil {
			repos = append(repos, r)
		}
		byRepo[r] = append(byRepo[r], i)
	}
	errs := make([]error, len(uniq))
	ao := AppendOptions{PredicateType: predicateType, Same: same}
	var g errgroup.Group // one goroutine a repository
	for _, r := range repos {
		g.Go(func() error {
			for _, i := range byRepo[r] {
				errs[i] = attachTo(ctx, uniq[i], bundle, ao, opts)
			}
			return nil
		})
	}
	_ = g.Wait() // every failure is in errs
	var out []name.Digest
	for i, d := range uniq {
		if errs[i] == nil {
			out = append(out, d)
		}
	}
	return out, errors.Join(errs...)
}

// attachTo attaches bundle to subject d (AppendBundle).
func attachTo(ctx context.Context, d name.Digest, bundle []byte, ao AppendOptions, opts []remote.Option) error {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return fmt.Errorf("attaching the attestation to %s: %w", d, err)
	}
	if _, err := AppendBundle(ctx, d.Context(), h, bundle, ao, opts...); err != nil {
		return fmt.Errorf("attaching the attestation to %s: %w", d, err)
	}
	return nil
}
