package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/internal/provenance"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// The provenance record (docs/provenance.md): every build and bake that
// exports something describes, in an in-toto statement, which caches it
// imported and how each was verified. --trust-report carries it; --sign
// signs it with the builder key and attaches it to every subject as a
// sigstore bundle referrer.

// trustcacheVersion returns the version of the "trustcache" command cmd
// belongs to (NewRootCommand's version). Under the docker CLI the plugin
// framework puts its own root above it, so cmd.Root() is not it.
func trustcacheVersion(cmd *cobra.Command) string {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Name() == pluginName {
			return c.Version
		}
	}
	return ""
}

// exportTarget is one digest a build exported: its cache manifest or a
// pushed image, in one repository.
type exportTarget struct {
	repo   name.Repository
	digest v1.Hash
	kind   string // cache or image
}

// signedReport is one digest a provenance record was attached to.
type signedReport struct {
	Reference string `json:"reference"` // REPO@DIGEST
	Kind      string `json:"kind"`      // cache or image
}

// attachProvenance signs st and attaches it to each target
// (attachBundle).
func attachProvenance(ctx context.Context, s signature.Signer, st provenance.Statement, targets []exportTarget, opts ...remote.Option) ([]signedReport, error) {
	bundle, err := signProvenance(ctx, s, st)
	if err != nil {
		return nil, err
	}
	return attachBundle(ctx, bundle, sameRecord(s, st), targets, opts...)
}

// sameRecord reports whether an attestation already attached is st signed
// by s's key, but for builtAt: a build that records exactly what an earlier
// one did (the same exports, imports, policy and source — a rebuild of the
// same commit) adds no record, and spares the referrers write.
//
// A keyless signer has no key of its own to compare (each build's
// certificate is for a new ephemeral key): its record is always written.
func sameRecord(s signature.Signer, st provenance.Statement) func(signature.Signature) bool {
	if s.Key == nil {
		return func(signature.Signature) bool { return false }
	}
	want := st
	want.Predicate.BuiltAt = ""
	wantJSON, err := want.Marshal()
	return func(existing signature.Signature) bool {
		if err != nil || existing.Err != nil || keys.VerifySignature(s.Key.Public(), existing.SignedBytes(), existing.Signature) != nil {
			return false
		}
		got, perr := provenance.Parse(existing.Payload)
		if perr != nil {
			return false
		}
		got.Predicate.BuiltAt = ""
		gotJSON, merr := got.Marshal()
		return merr == nil && bytes.Equal(gotJSON, wantJSON)
	}
}

// signProvenance returns st signed by s: a DSSE envelope (payload type
// in-toto) over the record, in a sigstore bundle, as cosign attest writes
// (keyless: with the certificate and timestamps as verification material).
func signProvenance(ctx context.Context, s signature.Signer, st provenance.Statement) ([]byte, error) {
	payload, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	if s.Keyless != nil {
		ks, err := s.Keyless.SignDSSE(ctx, signature.InTotoPayloadType, payload)
		if err != nil {
			return nil, fmt.Errorf("signing the provenance record: %w", err)
		}
		return ks.Bundle, nil
	}
	bundle, err := signature.NewBundle(payload, s.Key)
	if err != nil {
		return nil, fmt.Errorf("signing the provenance record: %w", err)
	}
	return bundle, nil
}

// attachBundle attaches the signed record to each target as an OCI 1.1
// referrer of predicate type provenance.PredicateType. The bundle is the
// same for all, so its blob is uploaded once per repository; each further
// subject costs one referrer manifest (and, on a registry without the
// referrers API, the referrers tag update).
func attachBundle(ctx context.Context, bundle []byte, same func(signature.Signature) bool, targets []exportTarget, opts ...remote.Option) ([]signedReport, error) {
	var uniq []exportTarget
	seen := map[string]bool{}
	for _, t := range targets {
		if ref := t.repo.Name() + "@" + t.digest.String(); !seen[ref] {
			seen[ref] = true
			uniq = append(uniq, t)
		}
	}
	// Repositories are written at once, so that the confirmation waits of
	// their referrers tags (AppendBundle) overlap; the subjects of one
	// repository in turn, so that its bundle blob is uploaded once.
	byRepo := map[string][]int{}
	var repos []string
	for i, t := range uniq {
		r := t.repo.Name()
		if byRepo[r] == nil {
			repos = append(repos, r)
		}
		byRepo[r] = append(byRepo[r], i)
	}
	errs := make([]error, len(uniq))
	var g errgroup.Group // one goroutine a repository
	for _, r := range repos {
		g.Go(func() error {
			for _, i := range byRepo[r] {
				t := uniq[i]
				if _, err := signature.AppendBundle(ctx, t.repo, t.digest, bundle, signature.AppendOptions{PredicateType: provenance.PredicateType, Same: same}, opts...); err != nil {
					errs[i] = fmt.Errorf("attaching the provenance record to %s@%s: %w", t.repo.Name(), t.digest, err)
				}
			}
			return nil
		})
	}
	_ = g.Wait() // every failure is in errs
	var out []signedReport
	for i, t := range uniq {
		if errs[i] == nil {
			out = append(out, signedReport{Reference: t.repo.Name() + "@" + t.digest.String(), Kind: t.kind})
		}
	}
	return out, errors.Join(errs...)
}
