package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cicontext"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/provenance"
	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
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
func buildExports(dockerCLI command.Cli, env *Env, inv *buildargs.Invocation) *buildSigner {
	return &buildSigner{cli: dockerCLI, env: env, cacheRepo: oneRegistryCache(inv.CacheTo), pushes: inv.Pushes(), metadataFile: inv.MetadataFile}
}

// bakeExports is buildExports for a bake: every target's one registry
// cache-to and pushed images.
func bakeExports(dockerCLI command.Cli, env *Env, inv *buildargs.BakeInvocation, targets []buildargs.BakeTarget) *bakeSigner {
	bs := &bakeSigner{base: &buildSigner{cli: dockerCLI, env: env, metadataFile: inv.MetadataFile}}
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
	md, err := buildargs.ReadMetadata(bs.metadataFile)
	if err != nil {
		return nil, err
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
// version and the source context src (cicontext.Source).
func provenanceRecord(report *trustReport, p *trustpolicy.Policy, version string, src map[string]string, targets []exportTarget, now time.Time) provenance.Statement {
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
	pred := provenance.Predicate{
		Trustcache: version,
		Source:     provenance.Source{Repository: src["repo"], Ref: src["ref"], Commit: src["commit"], Run: src["run"]},
		BuiltAt:    now.UTC().Format(time.RFC3339),
		Caches:     make([]provenance.Cache, 0, len(report.Caches)),
	}
	if p != nil {
		// The whole policy's fingerprint, key files and trusted root
		// included: what the provenance walk compares below maxDepth.
		pred.Policy = provenance.Policy{File: p.File, Digest: p.Fingerprint(nil)}
	}
	for _, c := range report.Caches {
		pc := provenance.Cache{Reference: c.Source, Target: c.Target, Type: c.Type, Action: c.Action.String(), Guarantee: c.Guarantee}
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

// envProvenanceAttach set to "off" makes a signing build sign its exports
// without attaching the record (it stays in --trust-report): what e2e/bench.sh
// measures the record's cost against. A cache signed so has no record, and
// scopes with requireProvenance do not trust it.
const envProvenanceAttach = "TRUSTCACHE_PROVENANCE_ATTACH"

// recordProvenance puts the build's provenance record into the report and,
// with sign, signs it with bs's key (one DSSE envelope over the statement,
// in a sigstore bundle) and attaches the same bundle to every subject as
// an OCI referrer of predicate type provenance.PredicateType. exported
// reads what the build exported; without sign, exports it could not read
// are left out of the record with a warning (a signing build has failed
// already on them).
func recordProvenance(ctx context.Context, bs *buildSigner, exported func() ([]exportTarget, error), sign bool, report *trustReport, p *trustpolicy.Policy, version string) error {
	targets, err := exported()
	if err != nil {
		if sign {
			return err
		}
		fmt.Fprintf(bs.cli.Err(), "WARNING: trustcache: the provenance record leaves out what the build did not report: %s\n", printable(err.Error()))
	}
	st := provenanceRecord(report, p, version, cicontext.Source(bs.env.getenv), targets, time.Now())
	report.Provenance = &st
	if !sign || len(st.Subject) == 0 || bs.env.getenv(envProvenanceAttach) == "off" {
		return nil
	}
	ropts := registry.Options(ctx, nil, 0, remote.WithAuthFromKeychain(dockerKeychain{bs.cli}))
	attested, err := attachProvenance(ctx, bs.signer, st, targets, ropts...)
	report.Attested = attested
	return err
}

// signAndRecord does, at once, what a finished build does with its
// exports: sign signs them (nil when the build does not --sign; its
// result goes to report.Signed) and record puts the provenance record in
// the report and, signing, attaches it (recordProvenance). Each half ends
// in a registry confirmation wait (the .sig or referrers tag read back
// until it is seen to hold), so run in turn the record's wait followed
// the signatures'; run together they overlap.
//
// That is sound because the record claims no signature: its subjects are
// what the build exported, its predicate the caches it imported and how
// they were verified, true whether or not the exports' signatures are
// written. Nothing trusts a cache by its record alone: verification reads
// the cache's own signatures, and requireProvenance wants both. Still, a
// build whose signing fails should not go on writing: a signing failure
// stops the record (its context is cancelled); whatever was attached by
// then stays listed in report.Attested, and the record's error says it
// was stopped. A record failure does not stop the signing. Both errors
// are returned, neither hides the other.
func signAndRecord(ctx context.Context, report *trustReport, sign func(context.Context) ([]signedReport, error), record func(context.Context) error) (signErr, recordErr error) {
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var g errgroup.Group
	if sign != nil {
		g.Go(func() error {
			signed, err := sign(ctx)
			if err != nil {
				stop()
			}
			report.Signed, signErr = signed, err
			return err
		})
	}
	if record != nil {
		g.Go(func() error {
			recordErr = record(rctx)
			return recordErr
		})
	}
	_ = g.Wait() // both errors are kept, not the first alone
	if signErr != nil && recordErr != nil && ctx.Err() == nil && errors.Is(recordErr, context.Canceled) {
		recordErr = fmt.Errorf("stopped when signing failed, attached to %d subject(s) by then: %w", len(report.Attested), recordErr)
	}
	return signErr, recordErr
}

// exportsFailed is the error of a build (what: "build" or "bake") that
// succeeded but whose signing or provenance record failed; nil when
// neither did.
func exportsFailed(what string, signErr, recordErr error) error {
	switch {
	case signErr != nil && recordErr != nil:
		return fmt.Errorf("the %s succeeded, but signing its exports failed: %w; and attaching its provenance record failed: %w", what, signErr, recordErr)
	case signErr != nil:
		return fmt.Errorf("the %s succeeded, but signing its exports failed: %w", what, signErr)
	case recordErr != nil:
		return fmt.Errorf("the %s succeeded, but attaching its provenance record failed: %w", what, recordErr)
	}
	return nil
}

// attachProvenance signs st with s and attaches it to each target as an
// attestation of predicate type provenance.PredicateType
// (signature.Signer.Attest); a record already there that is the same but
// for builtAt, signed by the same key, is not written again
// (sameRecord).
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
	attached, err := s.Attest(ctx, payload, provenance.PredicateType, sameRecord(st), subjects, opts...)
	var out []signedReport
	for _, d := range attached {
		out = append(out, signedReport{Reference: d.Name(), Kind: kind[d.Name()]})
	}
	return out, err
}

// sameRecord returns whether a record already attached (its statement as
// data) says exactly what st says but for builtAt: a build that records
// what an earlier one did (the same exports, imports, policy and source —
// a rebuild of the same commit) adds no record. Data that is no valid
// record is not the same. (A method of the provenance package's Statement
// once its move to the public package is merged.)
func sameRecord(st provenance.Statement) func(data []byte) bool {
	want := st
	want.Predicate.BuiltAt = ""
	wantJSON, err := want.Marshal()
	return func(data []byte) bool {
		if err != nil {
			return false
		}
		got, perr := provenance.Parse(data)
		if perr != nil {
			return false
		}
		got.Predicate.BuiltAt = ""
		gotJSON, merr := got.Marshal()
		return merr == nil && bytes.Equal(gotJSON, wantJSON)
	}
}
