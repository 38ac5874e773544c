package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cicontext"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// buildSigner signs what a build exported, by the digests the build itself
// reported in its metadata file — never by resolving a tag afterwards,
// which someone else may have moved meanwhile.
type buildSigner struct {
	cli          command.Cli
	env          *Env
	signer       signature.Signer
	annotations  map[string]string
	cacheRepo    *name.Repository    // the one registry --cache-to, if any
	cacheTag     string              // its tag ("" for none)
	policy       *trustpolicy.Policy // for the head records (signhead.go); nil: none
	pushes       bool
	format       signature.Format
	metadataFile string
	tmpDir       string
}

// newBuildSigner checks the --sign options and loads the key before the
// build starts, so a wrong password costs no build.
func newBuildSigner(dockerCLI command.Cli, env *Env, inv *buildargs.Invocation, p *trustpolicy.Policy) (*buildSigner, error) {
	bs := &buildSigner{cli: dockerCLI, env: env, pushes: inv.Pushes(), metadataFile: inv.MetadataFile}
	var caches []string
	for _, spec := range inv.CacheTo {
		if spec.Type == "registry" {
			caches = append(caches, spec.Ref())
		}
	}
	switch len(caches) {
	case 0:
	case 1:
		r, err := name.ParseReference(caches[0])
		if err != nil {
			return nil, usagef("--cache-to ref %q: %w", caches[0], err)
		}
		repo := r.Context()
		bs.cacheRepo, bs.cacheTag = &repo, tagOf(r)
	default:
		return nil, usagef("--sign signs one registry --cache-to per build (the build reports one cache digest); got %d", len(caches))
	}
	if bs.cacheRepo == nil && !bs.pushes {
		return nil, usagef("--sign: this build exports nothing to sign; add --cache-to type=registry,ref=… or --push (with inline cache)")
	}
	if err := bs.loadKey(inv.Trust, p); err != nil {
		return nil, err
	}
	return bs, nil
}

// loadKey checks the signing options (annotations, signature format) and
// loads the key.
func (bs *buildSigner) loadKey(opts buildargs.Options, p *trustpolicy.Policy) error {
	for k := range opts.SignAnnotations {
		if signature.Reserved(k) {
			return usagef("--sign-annotation %s: %q is set by docker trustcache itself", k, k)
		}
	}
	ann := cicontext.Source(bs.env.getenv)
	for k, v := range opts.SignAnnotations {
		ann[k] = v
	}
	bs.annotations, bs.policy = ann, p
	format, err := signatureFormat(opts.SignatureFormat, p)
	if err != nil {
		return err
	}
	bs.format = format
	ko := keylessOptions{keyless: opts.Keyless, identityToken: opts.IdentityToken, signingConfig: opts.SigningConfig}
	if err := ko.check(opts.Key); err != nil {
		return err
	}
	var s signature.Signer
	if ko.keyless {
		s, err = loadKeylessSigner(bs.env, bs.cli.Err(), ko, "")
	} else {
		s, err = loadSigner(bs.cli, bs.env, opts.Key, "", p)
	}
	if err != nil {
		return err
	}
	bs.signer = s
	return nil
}

// prepare adds --metadata-file to the buildx arguments when the user gave
// none, so the build reports what it exported.
func (bs *buildSigner) prepare(pre []string) ([]string, error) {
	if bs.metadataFile != "" {
		return pre, nil
	}
	dir, err := os.MkdirTemp("", "trustcache-build-")
	if err != nil {
		return nil, err
	}
	bs.tmpDir = dir
	bs.metadataFile = filepath.Join(dir, "metadata.json")
	return append(pre, "--metadata-file", bs.metadataFile), nil
}

func (bs *buildSigner) cleanup() {
	if bs.tmpDir != "" {
		os.RemoveAll(bs.tmpDir)
	}
}

// signExported signs the cache manifest and pushed images the build
// reported.
func (bs *buildSigner) signExported(ctx context.Context, v *verify.Verifier) ([]signedReport, error) {
	md, err := buildargs.ReadMetadata(bs.metadataFile)
	if err != nil {
		return nil, err
	}
	return bs.signMetadata(ctx, v, md)
}

// exportTarget is one digest a build exported: its cache manifest or a
// pushed image, in one repository.
type exportTarget struct {
	repo   name.Repository
	digest v1.Hash
	kind   string // cache or image
}

// exportTargets returns the cache manifest and pushed images md reports,
// as the build reported them: never a tag resolved afterwards.
func (bs *buildSigner) exportTargets(md buildargs.Metadata) ([]exportTarget, error) {
	var targets []exportTarget
	if bs.cacheRepo != nil {
		d, err := md.CacheDigest()
		if err != nil {
			return nil, fmt.Errorf("the build did not report the digest of the cache it exported to %s (%v); not signing by tag, which may have moved", bs.cacheRepo.Name(), err)
		}
		targets = append(targets, exportTarget{*bs.cacheRepo, d, "cache"})
	}
	if bs.pushes {
		d, err := v1.NewHash(md.ImageDigest)
		if err != nil || md.ImageName == "" {
			return nil, fmt.Errorf("the build did not report the digest and name of the image it pushed (containerimage.digest, image.name); not signing by tag")
		}
		seen := map[string]bool{}
		for _, n := range strings.Split(md.ImageName, ",") {
			r, err := name.ParseReference(strings.TrimSpace(n))
			if err != nil {
				return nil, fmt.Errorf("image name %q reported by the build: %w", n, err)
			}
			if !seen[r.Context().Name()] {
				seen[r.Context().Name()] = true
				targets = append(targets, exportTarget{r.Context(), d, "image"})
			}
		}
	}
	return targets, nil
}

// signMetadata signs the cache manifest and pushed images md reports.
func (bs *buildSigner) signMetadata(ctx context.Context, v *verify.Verifier, md buildargs.Metadata) ([]signedReport, error) {
	targets, err := bs.exportTargets(md)
	if err != nil {
		return nil, err
	}
	ropts := registry.Options(ctx, nil, 0, remote.WithAuthFromKeychain(dockerKeychain{bs.cli}))
	var signed []signedReport
	var p *trustpolicy.Policy
	if v != nil {
		p = v.Policy()
	}
	for _, t := range targets {
		var sig signature.Signature
		for _, tag := range bs.exportedTags(t, md) { // one signature per tag it was exported under, each naming it
			ann, err := withTag(bs.annotations, tag, t.repo.Name()+":"+tag)
			if err != nil {
				return signed, err
			}
			if sig, err = attachFresh(ctx, bs.cli.Err(), bs.signer, bs.format, p, t.repo, t.digest, ann, ropts); err != nil {
				return signed, err
			}
			writeHead(ctx, bs.cli.Err(), bs.signer, bs.policy, t.repo, tag, t.digest, ropts)
		}
		ref := t.repo.Name() + "@" + t.digest.String()
		signed = append(signed, signedReport{Reference: ref, Kind: t.kind})
		if v != nil {
			recordSigned(ctx, bs.cli.Err(), v, ref, sig)
		}
	}
	return signed, nil
}

// exportedTags returns the tags t was exported under (the --cache-to
// ref's, or each pushed image name's in t's repository), or [""] when it
// has none: what the signatures name as the tag annotation and the heads
// written (signhead.go).
func (bs *buildSigner) exportedTags(t exportTarget, md buildargs.Metadata) []string {
	if t.kind == "cache" {
		return []string{bs.cacheTag}
	}
	var tags []string
	for _, n := range strings.Split(md.ImageName, ",") {
		if r, err := name.ParseReference(strings.TrimSpace(n)); err == nil && r.Context().Name() == t.repo.Name() && tagOf(r) != "" && !slices.Contains(tags, tagOf(r)) {
			tags = append(tags, tagOf(r))
		}
	}
	if len(tags) == 0 {
		return []string{""}
	}
	return tags
}
