package plugin

import (
	"context"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// exportSigner is the pipeline's signer for build and bake --sign: it
// signs what a run exported with the key (or keyless identity) loaded
// before the run, as "docker trustcache sign" signs, and records each
// digest signed in the ledger.
type exportSigner struct {
	cli    command.Cli
	signer signature.Signer
	format signature.Format
	policy *trustpolicy.Policy // nil: none
	v      *verify.Verifier    // nil: no ledger to record in
}

// loadExportSigner checks the signing options (the signature format, the
// keyless flags) and loads the key: a configuration error here costs no
// build.
func loadExportSigner(dockerCLI command.Cli, env *Env, opts buildargs.Options, p *trustpolicy.Policy, v *verify.Verifier) (pipeline.Signer, error) {
	format, err := signatureFormat(opts.SignatureFormat, p)
	if err != nil {
		return nil, err
	}
	ko := keylessOptions{keyless: opts.Keyless, identityToken: opts.IdentityToken, signingConfig: opts.SigningConfig}
	if err := ko.check(opts.Key); err != nil {
		return nil, err
	}
	var s signature.Signer
	if ko.keyless {
		s, err = loadKeylessSigner(env, dockerCLI.Err(), ko, "")
	} else {
		s, err = loadSigner(dockerCLI, env, opts.Key, "", p)
	}
	if err != nil {
		return nil, err
	}
	return &exportSigner{cli: dockerCLI, signer: s, format: format, policy: p, v: v}, nil
}

func (es *exportSigner) remoteOptions(ctx context.Context) []remote.Option {
	return registry.Options(ctx, nil, 0, remote.WithAuthFromKeychain(dockerKeychain{es.cli}))
}

// Sign signs e once for each tag it was exported under, each signature
// naming its tag, makes it the tag's signed head (signhead.go), and
// records it in the ledger.
func (es *exportSigner) Sign(ctx context.Context, e pipeline.Export, tags []string, ann map[string]string) error {
	ropts := es.remoteOptions(ctx)
	var sig signature.Signature
	for _, tag := range tags {
		tagAnn, err := withTag(ann, tag, e.Repo.Name()+":"+tag)
		if err != nil {
			return err
		}
		if sig, err = attachFresh(ctx, es.cli.Err(), es.signer, es.format, es.policy, e.Repo, e.Digest, tagAnn, ropts); err != nil {
			return err
		}
		writeHead(ctx, es.cli.Err(), es.signer, es.policy, e.Repo, tag, e.Digest, ropts)
	}
	if es.v != nil {
		recordSigned(ctx, es.cli.Err(), es.v, e.Reference(), sig)
	}
	return nil
}

// Attest signs the provenance record st and attaches it to every subject
// (attachProvenance).
func (es *exportSigner) Attest(ctx context.Context, st provenance.Statement, subjects []pipeline.Export) ([]pipeline.Signed, error) {
	targets := make([]exportTarget, len(subjects))
	for i, e := range subjects {
		targets[i] = exportTarget{e.Repo, e.Digest, e.Kind}
	}
	attested, err := attachProvenance(ctx, es.signer, st, targets, es.remoteOptions(ctx)...)
	out := make([]pipeline.Signed, len(attested))
	for i, a := range attested {
		out[i] = pipeline.Signed(a)
	}
	return out, err
}
