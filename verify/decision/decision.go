// Package decision owns the verdict → cache action table: what becomes of
// one cache import once the verifier has spoken. "docker trustcache build"
// and "bake" (plugin), "docker trustcache verify"'s exit status and the
// gateway (internal/app/gateway) all decide through it, so the three cannot
// drift apart.
package decision

import (
	"context"
	"fmt"

	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// Action is what becomes of one cache import: the one vocabulary of the
// build and bake report, the gateway's rewrite and decision log, and the
// provenance record. Its zero value is Dropped, so an import whose action
// was never set leaves the build: everything that acts on an Action fails
// closed. Its words (String, MarshalText) are the provenance record's
// (verify/provenance).
type Action uint8

const (
	// Dropped: removed; the build runs without it. The zero Action.
	Dropped Action = iota
	// Blocked: onUntrusted: fail; the build must not run.
	Blocked
	// Passed: passed on as given: level skip, audit without a digest, a
	// type the policy allows unsigned.
	Passed
	// Used: verified (or audited with a digest) and imported pinned to
	// the verified digest.
	Used
)

var words = [...]string{
	Dropped: provenance.ActionDropped,
	Blocked: provenance.ActionBlocked,
	Passed:  provenance.ActionPassed,
	Used:    provenance.ActionUsed,
}

// String returns the action's word: used, passed, dropped or blocked.
func (a Action) String() string {
	if int(a) < len(words) {
		return words[a]
	}
	return fmt.Sprintf("Action(%d)", a)
}

// MarshalText writes the action's word; an action outside the vocabulary
// is an error, never a word.
func (a Action) MarshalText() ([]byte, error) {
	if int(a) >= len(words) {
		return nil, fmt.Errorf("decision: unknown action %d", a)
	}
	return []byte(words[a]), nil
}

// UnmarshalText reads an action's word.
func (a *Action) UnmarshalText(b []byte) error {
	for i, w := range words {
		if string(b) == w {
			*a = Action(i)
			return nil
		}
	}
	return fmt.Errorf("decision: unknown action %q: want used, passed, dropped or blocked", b)
}

// Removes says whether the import leaves the build (dropped, blocked, or
// an action outside the vocabulary).
func (a Action) Removes() bool { return a != Used && a != Passed }

// Policy is what the table asks of the policy: *trustpolicy.Policy.
type Policy interface {
	AllowsUnsigned(typ string) bool
}

// VerifyFunc verifies a registry reference: (*verify.Verifier).Verify.
type VerifyFunc func(ctx context.Context, ref string) (*verify.Result, error)

// Outcome is the fate of one import. Result is nil where nothing was
// verified (not a registry cache, no ref).
type Outcome struct {
	Action Action
	Reason string
	Result *verify.Result
}

// Cache decides one cache import of type typ at ref (ref is empty when
// the import names none). Only a registry cache is verified; a Used
// outcome is to be imported pinned to Result.Pinned().
func Cache(ctx context.Context, p Policy, verifyRef VerifyFunc, typ, ref string) Outcome {
	if typ != "registry" {
		if p.AllowsUnsigned(typ) {
			return Outcome{Action: Passed, Reason: "the policy allows unsigned " + typ + " caches"}
		}
		return Outcome{Action: Dropped, Reason: fmt.Sprintf("type=%s caches cannot carry registry signatures (allowUnsignedTypes in the policy lets them through)", typ)}
	}
	if ref == "" {
		return Outcome{Action: Dropped, Reason: "registry cache without ref"}
	}
	res, err := verifyRef(ctx, ref)
	if err != nil {
		return Outcome{Action: Dropped, Reason: err.Error(), Result: res}
	}
	return Of(res)
}

// Of maps a verification result to its outcome.
func Of(res *verify.Result) Outcome {
	o := Outcome{Result: res}
	switch {
	case res.Verdict == verify.VerdictSkipped:
		o.Action, o.Reason = Passed, "scope level skip: not verified"
	case res.Verdict == verify.VerdictMissing:
		// Nothing to import (a new branch's first build): the build runs
		// without it whatever onUntrusted says, as it would without the
		// --cache-from; nothing an attacker sent reaches it.
		o.Action, o.Reason = Dropped, res.Reason()
	case res.Trusted || (res.Level == trustpolicy.LevelAudit && res.Digest != ""):
		o.Action = Used
		if !res.Trusted {
			o.Reason = "level audit: used although " + string(res.Verdict) + ": " + res.Reason()
		}
	case res.Level == trustpolicy.LevelAudit:
		o.Action, o.Reason = Passed, "level audit: no digest resolved ("+res.Reason()+")"
	case res.OnUntrusted == trustpolicy.Fail:
		o.Action, o.Reason = Blocked, string(res.Verdict)+": "+res.Reason()
	default:
		o.Action, o.Reason = Dropped, string(res.Verdict)+": "+res.Reason()
	}
	return o
}

// Status is the worst of a set of verdicts that the policy enforces.
type Status int

const (
	// OK: every result is trusted or not enforced (audit, skip).
	OK Status = iota
	// Missing: at least one enforced result is missing (the tag does not
	// exist), none untrusted or inconclusive.
	Missing
	// Inconclusive: at least one enforced result is inconclusive, none
	// untrusted.
	Inconclusive
	// Untrusted: at least one enforced result is untrusted (untrusted
	// wins over inconclusive).
	Untrusted
)

// Worst returns the status of results, ignoring those the policy does not
// enforce; nil results are passed over.
func Worst(results []*verify.Result) Status {
	s := OK
	for _, r := range results {
		if r == nil || !r.Enforced() {
			continue
		}
		s = max(s, statusOf(r))
	}
	return s
}

// StatusOf returns the status one blocking result contributes:
// Inconclusive for an inconclusive verdict, Missing for a missing one,
// Untrusted otherwise (also where there is no result).
func StatusOf(r *verify.Result) Status {
	if r == nil {
		return Untrusted
	}
	return statusOf(r)
}

func statusOf(r *verify.Result) Status {
	switch r.Verdict {
	case verify.VerdictInconclusive:
		return Inconclusive
	case verify.VerdictMissing:
		return Missing
	}
	return Untrusted
}
