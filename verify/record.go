package verify

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/recordsigned"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

func init() {
	recordsigned.Func = func(ctx context.Context, v any, ref string, sigs []signature.Signature) (any, error) {
		return v.(*Verifier).recordSigned(ctx, ref, sigs)
	}
}

// recordSigned records in the ledger a digest this host has just signed:
// ref is REPO@DIGEST and sigs the signatures attached to it here, as the
// registry serves them (see signature.Signer.SignFormat). They are checked
// against the policy by the same rules as signatures read from the
// registry — key, revocation, builder, digest, repository, age,
// annotations, threshold — and only a digest they make trusted is
// recorded, exactly as a verification would record it. Nothing is fetched.
//
// This is the ledger's second half (the seed's "local record of verified
// hashes"): a CI host that exports and signs a cache and imports it in its
// next build verifies it warm, without fetching the signature it wrote.
// Without a ledger, it only reports the verdict.
//
// It is the module's (sign, build --sign), reached through
// internal/recordsigned: its signatures are in the wire format
// (internal/signature), which is not verify's public API.
func (v *Verifier) recordSigned(ctx context.Context, ref string, sigs []signature.Signature) (*Result, error) {
	res, _, scope, err := v.prepare(ref, false)
	if err != nil || scope == nil || scope.Level == trustpolicy.LevelSkip {
		return res, err
	}
	if res.Digest == "" {
		err := fmt.Errorf("%s: a signed digest is recorded by digest (REPO@sha256:…), not by tag", ref)
		return res, &ReferenceError{Ref: ref, Err: err}
	}
	digest, err := v1.NewHash(res.Digest)
	if err != nil {
		return res, &ReferenceError{Ref: ref, Err: err}
	}
	if len(sigs) == 0 {
		res.addReason("no signatures found")
	}
	v.decide(res, scope, digest, sigs, false)
	if v.ledger != nil && !scope.Provenance.Required { // provenance is checked by reading the records, never here
		v.remember(ctx, res, scope) // trusted results only; a failure is ignored
	}
	return res, nil
}
