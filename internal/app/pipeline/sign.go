package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/internal/cicontext"
	"github.com/docker-trustcache/docker-trustcache/internal/termtext"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
)

// envProvenanceAttach set to "off" makes a signing run sign its exports
// without attaching the record (it stays in --trust-report): what
// e2e/bench.sh measures the record's cost against. A cache signed so has
// no record, and scopes with requireProvenance do not trust it.
const envProvenanceAttach = "TRUSTCACHE_PROVENANCE_ATTACH"

// signAndRecord does what a finished build does with its exports, read
// from buildx's metadata file mdFile: signer (nil without --sign) signs
// them, and the provenance record goes into the report and, signing, is
// attached to them. The error says what failed of the two.
func (r *run) signAndRecord(ctx context.Context, plan *exportPlan, mdFile string, signer Signer) error {
	targets, readErr := plan.read(mdFile)
	var sign func(context.Context) ([]Signed, error)
	if signer != nil {
		sign = func(ctx context.Context) ([]Signed, error) {
			if readErr != nil {
				return nil, readErr
			}
			return r.signExports(ctx, signer, targets)
		}
	}
	signErr, recordErr := signAndRecord(ctx, r.report, sign, func(ctx context.Context) error {
		return r.record(ctx, signer, targets, readErr)
	})
	return exportsFailed(r.o.Command, signErr, recordErr)
}

// signExports signs every target's exports, target by target, each with
// the source context the environment tells and the user's annotations.
func (r *run) signExports(ctx context.Context, signer Signer, targets []targetExports) ([]Signed, error) {
	ann := cicontext.Source(r.o.Getenv)
	maps.Copy(ann, r.o.Trust.SignAnnotations)
	var signed []Signed
	for _, te := range targets {
		if te.err != nil {
			return signed, te.err
		}
		for _, e := range te.exports {
			if err := signer.Sign(ctx, e.Export, e.tags, ann); err != nil {
				if te.name != "" {
					err = fmt.Errorf("target %s: %w", te.name, err)
				}
				return signed, err
			}
			signed = append(signed, Signed{Reference: e.Reference(), Kind: e.Kind})
		}
	}
	return signed, nil
}

// record puts the run's provenance record into the report and, with
// signer, has it signed and attached to every subject. What the targets
// reported they exported are its subjects; without signer, exports that
// could not be read are left out of the record with a warning (a signing
// run has failed already on them).
func (r *run) record(ctx context.Context, signer Signer, targets []targetExports, readErr error) error {
	var subjects []Export
	err := readErr
	for _, te := range targets {
		if err != nil {
			break
		}
		for _, e := range te.exports {
			subjects = append(subjects, e.Export)
		}
		err = te.err
	}
	if err != nil {
		if signer != nil {
			return err
		}
		fmt.Fprintf(r.o.Stderr, "WARNING: trustcache: the provenance record leaves out what the build did not report: %s\n", termtext.Line(err.Error()))
	}
	st := r.provenanceRecord(subjects, r.o.Now())
	r.report.Provenance = &st
	if signer == nil || len(st.Subject) == 0 || r.o.Getenv(envProvenanceAttach) == "off" {
		return nil
	}
	attested, err := signer.Attest(ctx, st, subjects)
	r.report.Attested = attested
	return err
}

// provenanceRecord returns the provenance record of a run: its subjects
// are exports (each repository and digest once), its predicate the
// report's cache decisions, the policy's fingerprint, the trustcache
// version and the source context the environment tells.
func (r *run) provenanceRecord(exports []Export, now time.Time) provenance.Statement {
	var subjects []provenance.Subject
	seen := map[string]bool{}
	for _, e := range exports {
		if seen[e.Reference()] || e.Digest.Algorithm != "sha256" {
			continue
		}
		seen[e.Reference()] = true
		subjects = append(subjects, provenance.Subject{Name: e.Repo.Name(), Digest: map[string]string{"sha256": e.Digest.Hex}})
	}
	src := cicontext.Source(r.o.Getenv)
	pred := provenance.Predicate{
		Trustcache: r.o.Version,
		Source:     provenance.Source{Repository: src["repo"], Ref: src["ref"], Commit: src["commit"], Run: src["run"]},
		BuiltAt:    now.UTC().Format(time.RFC3339),
		Caches:     make([]provenance.Cache, 0, len(r.report.Caches)),
	}
	if r.policy != nil {
		// The whole policy's fingerprint, key files and trusted root
		// included: what the provenance walk compares below maxDepth.
		pred.Policy = provenance.Policy{File: r.policy.File, Digest: r.policy.Fingerprint(nil)}
	}
	for _, c := range r.report.Caches {
		pc := provenance.Cache{Reference: c.Source, Target: c.Target, Type: c.Type, Action: c.Action.String(), Guarantee: c.Guarantee}
		if res := c.Result; res != nil {
			pc.Digest, pc.Verdict = res.Digest, string(res.Verdict)
			for _, s := range res.Signers {
				pc.Signers = append(pc.Signers, provenance.Signer{Builder: s.Builder, KeyID: s.KeyID, SignedAt: s.SignedAt})
			}
		}
		pred.Caches = append(pred.Caches, pc)
	}
	return provenance.New(subjects, pred)
}

// signAndRecord does, at once, what a finished build does with its
// exports: sign signs them (nil when the build does not --sign; its
// result goes to report.Signed) and record puts the provenance record in
// the report and, signing, attaches it. Each half ends in a registry
// confirmation wait (the .sig or referrers tag read back until it is seen
// to hold), so run in turn the record's wait followed the signatures';
// run together they overlap.
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
func signAndRecord(ctx context.Context, report *Report, sign func(context.Context) ([]Signed, error), record func(context.Context) error) (signErr, recordErr error) {
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

// exportsFailed is the error of a run (command: "build" or "bake") that
// succeeded but whose signing or provenance record failed; nil when
// neither did.
func exportsFailed(command string, signErr, recordErr error) error {
	switch {
	case signErr != nil && recordErr != nil:
		return fmt.Errorf("the %s succeeded, but signing its exports failed: %w; and attaching its provenance record failed: %w", command, signErr, recordErr)
	case signErr != nil:
		return fmt.Errorf("the %s succeeded, but signing its exports failed: %w", command, signErr)
	case recordErr != nil:
		return fmt.Errorf("the %s succeeded, but attaching its provenance record failed: %w", command, recordErr)
	}
	return nil
}
