package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/provenance"
	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/verify"
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

// buildExports returns what reads a build's exports for the provenance
// record when the build does not --sign: a buildSigner without a key. A
// build with several registry --cache-to reports one cache digest, for
// which of them is not said: its cache is left out of the subjects.
func buildExports(dockerCLI command.Cli, inv *buildargs.Invocation) *buildSigner {
	return &buildSigner{cli: dockerCLI, cacheRepo: oneRegistryCache(inv.CacheTo), pushes: inv.Pushes(), metadataFile: inv.MetadataFile}
}

// bakeExports is buildExports for a bake: every target's one registry
// cache-to and pushed images.
func bakeExports(dockerCLI command.Cli, inv *buildargs.BakeInvocation, targets []buildargs.BakeTarget) *bakeSigner {
	bs := &bakeSigner{base: &buildSigner{cli: dockerCLI, metadataFile: inv.MetadataFile}}
	for _, t := range targets {
		st := bakeSignTarget{name: t.Name, cacheRepo: oneRegistryCache(t.CacheTo), pushes: t.Pushes}
		if st.cacheRepo != nil || st.pushes {
			bs.targets = append(bs.targets, st)
		}
	}
	return bs
}

// oneRegistryCache returns the repository of the one registry cache
// export among specs; nil when there is none, or more than one.
func oneRegistryCache(specs []buildargs.CacheSpec) *name.Repository {
	var repo *name.Repository
	for _, spec := range specs {
		if spec.Type != "registry" {
			continue
		}
		if repo != nil {
			return nil
		}
		r, err := name.ParseReference(spec.Ref())
		if err != nil {
			return nil
		}
		c := r.Context()
		repo = &c
	}
	return repo
}

// prepareExports adds --metadata-file to the buildx arguments (prepare)
// when the build exports something to read back: a build that exports
// nothing runs with the arguments as given.
func (bs *buildSigner) prepareExports(pre []string) ([]string, error) {
	if bs.cacheRepo == nil && !bs.pushes {
		return pre, nil
	}
	return bs.prepare(pre)
}

// prepareExports is buildSigner.prepareExports for a bake.
func (bs *bakeSigner) prepareExports(pre []string) ([]string, error) {
	if len(bs.targets) == 0 {
		return pre, nil
	}
	return bs.base.prepare(pre)
}

// exported returns what the build reported it exported.
func (bs *buildSigner) exported() ([]exportTarget, error) {
	if bs.cacheRepo == nil && !bs.pushes {
		return nil, nil
	}
	data, err := os.ReadFile(bs.metadataFile)
	if err != nil {
		return nil, fmt.Errorf("reading the build metadata: %w", err)
	}
	var md buildMetadata
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, fmt.Errorf("parsing the build metadata %s: %w", bs.metadataFile, err)
	}
	return bs.exportTargets(md)
}

// exported returns what every target of the bake reported it exported.
func (bs *bakeSigner) exported() ([]exportTarget, error) {
	if len(bs.targets) == 0 {
		return nil, nil
	}
	targets, err := bs.targetExports()
	if err != nil {
		return nil, err
	}
	var out []exportTarget
	for _, te := range targets {
		more, err := te.signer.exportTargets(te.md)
		out = append(out, more...)
		if err != nil {
			return out, fmt.Errorf("target %s: %w", te.name, err)
		}
	}
	return out, nil
}

// provenanceRecord returns the provenance record of a build: its subjects
// are targets (each repository and digest once), its predicate the
// report's cache decisions, the policy's fingerprint, the trustcache
// version and the source context the environment tells.
func provenanceRecord(report *trustReport, p *verify.Policy, version string, targets []exportTarget, now time.Time) provenance.Statement {
	var subjects []provenance.Subject
	seen := map[string]bool{}
	for _, t := range targets {
		key := t.repo.Name() + "@" + t.digest.String()
		if seen[key] || t.digest.Algorithm != "sha256" {
			continue
		}
		seen[key] = true
		subjects = append(subjects, provenance.Subject{Name: t.repo.Name(), Digest: map[string]string{"sha256": t.digest.Hex}})
	}
	src := sourceContext(getenv)
	pred := provenance.Predicate{
		Trustcache: version,
		Source:     provenance.Source{Repository: src["repo"], Ref: src["ref"], Commit: src["commit"], Run: src["run"]},
		BuiltAt:    now.UTC().Format(time.RFC3339),
		Caches:     make([]provenance.Cache, 0, len(report.Caches)),
	}
	if p != nil {
		pred.Policy = provenance.Policy{File: p.File, Digest: p.Digest}
	}
	for _, c := range report.Caches {
		pc := provenance.Cache{Reference: c.Source, Target: c.Target, Type: c.Type, Action: c.Action, Guarantee: c.Guarantee}
		if r := c.Result; r != nil {
			pc.Digest, pc.Verdict = r.Digest, string(r.Verdict)
			for _, s := range r.Signers {
				pc.Signers = append(pc.Signers, provenance.Signer{Builder: s.Builder, KeyID: s.KeyID, SignedAt: s.SignedAt})
			}
		}
		pred.Caches = append(pred.Caches, pc)
	}
	return provenance.New(subjects, pred)
}

// recordProvenance puts the build's provenance record into the report and,
// with sign, signs it with bs's key (one DSSE envelope over the statement,
// in a sigstore bundle) and attaches the same bundle to every subject as
// an OCI referrer of predicate type provenance.PredicateType. exported
// reads what the build exported; without sign, exports it could not read
// are left out of the record with a warning (a signing build has failed
// already on them).
func recordProvenance(ctx context.Context, bs *buildSigner, exported func() ([]exportTarget, error), sign bool, report *trustReport, p *verify.Policy, version string) error {
	targets, err := exported()
	if err != nil {
		if sign {
			return err
		}
		fmt.Fprintf(bs.cli.Err(), "WARNING: trustcache: the provenance record leaves out what the build did not report: %s\n", printable(err.Error()))
	}
	st := provenanceRecord(report, p, version, targets, time.Now())
	report.Provenance = &st
	if !sign || len(st.Subject) == 0 {
		return nil
	}
	ropts := registry.Options(ctx, nil, 0, remote.WithAuthFromKeychain(dockerKeychain{bs.cli}))
	attested, err := attachProvenance(ctx, bs.signer, st, targets, ropts...)
	report.Attested = attested
	return err
}

// attachProvenance signs st and attaches it to each target
// (attachBundle).
func attachProvenance(ctx context.Context, s signature.Signer, st provenance.Statement, targets []exportTarget, opts ...remote.Option) ([]signedReport, error) {
	bundle, err := signProvenance(s, st)
	if err != nil {
		return nil, err
	}
	return attachBundle(ctx, bundle, targets, opts...)
}

// signProvenance returns st signed by s: a DSSE envelope (payload type
// in-toto) over the record, in a sigstore bundle, as cosign attest writes.
func signProvenance(s signature.Signer, st provenance.Statement) ([]byte, error) {
	payload, err := st.Marshal()
	if err != nil {
		return nil, err
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
func attachBundle(ctx context.Context, bundle []byte, targets []exportTarget, opts ...remote.Option) ([]signedReport, error) {
	var out []signedReport
	seen := map[string]bool{}
	for _, t := range targets {
		ref := t.repo.Name() + "@" + t.digest.String()
		if seen[ref] {
			continue
		}
		seen[ref] = true
		if _, err := signature.AppendBundle(ctx, t.repo, t.digest, bundle, signature.AppendOptions{PredicateType: provenance.PredicateType}, opts...); err != nil {
			return out, fmt.Errorf("attaching the provenance record to %s: %w", ref, err)
		}
		out = append(out, signedReport{Reference: ref, Kind: t.kind})
	}
	return out, nil
}
