package pipeline

import (
	"context"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
	"github.com/docker-trustcache/docker-trustcache/internal/termtext"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// verifyConcurrency bounds the caches verified at once.
const verifyConcurrency = 8

// decided is the fate of one distinct cache source: its report and what it
// is passed on to buildx as (nil when it leaves the build).
type decided struct {
	report Cache
	pass   *cachespec.Spec
}

// decide verifies every distinct cache source once, whichever targets
// import it (concurrently, bounded), and decides each target's cache-from
// entries by the verdict → action table in verify/decision. It fills the
// report's caches, target by target, warns about each one the build runs
// without, and returns what each target's entries are passed on as. The
// error is a *StoppedError when the policy says the run must not start.
func (r *run) decide(ctx context.Context) ([]map[int]cachespec.Spec, error) {
	var uniq []cachespec.Spec
	seen := map[string]int{}
	for _, t := range r.targets {
		for _, spec := range t.CacheFrom {
			if _, ok := seen[spec.String()]; !ok {
				seen[spec.String()] = len(uniq)
				uniq = append(uniq, spec)
			}
		}
	}
	fates := make([]decided, len(uniq))
	var g errgroup.Group
	g.SetLimit(verifyConcurrency)
	for i, spec := range uniq {
		g.Go(func() error {
			fates[i] = decideCache(ctx, r.verifier, spec)
			return nil
		})
	}
	_ = g.Wait() // decideCache reports its failures in its report

	pass := make([]map[int]cachespec.Spec, len(r.targets))
	var blocked *StoppedError
	for ti, t := range r.targets {
		pass[ti] = map[int]cachespec.Spec{}
		for i, spec := range t.CacheFrom {
			f := fates[seen[spec.String()]]
			c := f.report
			c.Target = t.Name
			r.report.Caches = append(r.report.Caches, c)
			noteRemoved(r.o.Stderr, c)
			if f.pass != nil {
				pass[ti][i] = *f.pass
			}
			if c.Action == decision.Blocked {
				s := decision.StatusOf(c.Result)
				if blocked == nil || (s == decision.Untrusted && blocked.Status != decision.Untrusted) {
					blocked = &StoppedError{Command: r.o.Command, Status: s, Reason: fmt.Sprintf("cache %s%s is %s (policy onUntrusted: fail)", c.Source, ofTarget(c.Target), c.Result.Verdict)}
				}
			}
		}
	}
	if blocked != nil {
		return nil, blocked
	}
	return pass, nil
}

// decideCache verifies one cache source and decides its fate.
func decideCache(ctx context.Context, v *verify.Verifier, spec cachespec.Spec) decided {
	// Key material given as a cache by mistake is never echoed.
	c := Cache{Source: termtext.RedactPEM(spec.String()), Type: spec.Type}
	o := decision.Cache(ctx, v.Policy(), v.Verify, spec.Type, spec.Ref())
	c.Action, c.Reason, c.Result = o.Action, termtext.RedactPEM(o.Reason), o.Result
	switch o.Action {
	case decision.Used:
		pinned := spec
		pinned.Set("ref", o.Result.Pinned())
		c.Pinned = o.Result.Pinned()
		return decided{c, &pinned}
	case decision.Passed:
		return decided{c, &spec}
	}
	return decided{c, nil}
}

// ofTarget names a bake target after a cache ("" for a build's).
func ofTarget(target string) string {
	if target == "" {
		return ""
	}
	return " of target " + termtext.Line(target)
}

// noteRemoved writes one line for a cache the build runs without: a note
// for a missing one (a tag nothing was pushed to yet, as on a new branch's
// first build), a warning for a dropped or blocked one.
func noteRemoved(w io.Writer, c Cache) {
	if !c.Action.Removes() {
		return
	}
	if c.Result != nil && c.Result.Missing {
		fmt.Fprintf(w, "trustcache: no cache at %s%s yet (the tag does not exist in the registry): building without it\n", termtext.Line(c.Result.Reference), ofTarget(c.Target))
		return
	}
	fmt.Fprintf(w, "WARNING: trustcache: %s cache %s%s: %s\n", c.Action, termtext.Line(c.Source), ofTarget(c.Target), termtext.Line(c.Reason))
}

// unverifiedImports says why a signing run must not start: the caches it
// would import without a trusted verdict (an audit scope's untrusted
// cache, a skip scope's, an unsigned type the policy allows). A build that
// imported one and signed its own export would hand the trusted key's
// signature to content built from a cache nobody vouched for. It returns
// "" when every imported cache was verified trusted.
func unverifiedImports(caches []Cache) string {
	var bad []string
	for _, c := range caches {
		switch {
		case c.Action == decision.Passed,
			c.Action == decision.Used && (c.Result == nil || !c.Result.Trusted):
			bad = append(bad, c.Source+ofTarget(c.Target)+" ("+c.Reason+")")
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return "not signing a build that imports caches not verified trusted: " + strings.Join(bad, "; ") +
		". A signing build imports only trusted caches: remove these --cache-from, or make their scopes strict so they are dropped"
}
