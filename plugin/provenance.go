package plugin

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
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

// attachProvenance signs st with s and attaches it to each target as an
// attestation of predicate type provenance.PredicateType
// (signature.Signer.Attest); a record already there that is the same but
// for builtAt, signed by the same key, is not written again
// (provenance.Statement.SameRecord).
func attachProvenance(ctx context.Context, s signature.Signer, st provenance.Statement, targets []exportTarget, opts ...remote.Option) ([]signedReport, error) {
	payload, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	kind := map[string]string{}
	var subjects []name.Digest
	for _, t := range targets {
		d := t.repo.Digest(t.digest.String())
		if _, ok := kind[d.Name()]; !ok {
			kind[d.Name()] = t.kind
		}
		subjects = append(subjects, d)
	}
	attached, err := s.Attest(ctx, payload, provenance.PredicateType, st.SameRecord(), subjects, opts...)
	var out []signedReport
	for _, d := range attached {
		out = append(out, signedReport{Reference: d.Name(), Kind: kind[d.Name()]})
	}
	return out, err
}
