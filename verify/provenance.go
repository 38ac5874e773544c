package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// The provenance rule (a scope's requireProvenance) and the chain walk
// behind it and behind `docker trustcache provenance`.
//
// A cache of a scope that requires provenance counts only when, besides
// its signatures, it carries a provenance record (package provenance,
// attached by `build --sign` as a bundle attestation referrer) that
//
//   - is signed by a key of a builder the scope allows, not revoked;
//   - parses as a record (provenance.Parse);
//   - names the cache itself, repository and digest, among its subjects;
//   - lists no import the build used unverified (action passed or
//     blocked) or with a verdict other than trusted; and
//   - lists imports whose pinned digests verify now, under this policy —
//     re-verified, not taken from the record, so that a policy edit (a
//     revoked key, a builder removed) reaches every cache built from what
//     it now refuses. An import whose own scope requires provenance has
//     its own record checked in turn, and so on down the chain.
//
// One such record is enough (a digest rebuilt byte for byte carries one
// record per build that made it). The walk is bounded: maxDepth levels of
// imports are re-verified; an import below that is accepted only when the
// record listing it was made under this very policy (the same
// Policy.Fingerprint(nil): policy file, key files, trusted root), which
// verified it then — otherwise the chain is too deep and
// the cache does not count. All the walk's registry requests together are
// bounded by maxRequests; a walk that needs more does not count either.
// An import that is one of its own ancestors (a cycle) proves nothing.

// ErrRequestLimit is the error of a registry request the chain walk was not
// allowed to make: the walk had made its scope's maxRequests already.
var ErrRequestLimit = errors.New("the provenance walk's request limit is reached")

// ProvenanceNode is what the chain walk found for one digest: each record
// attached to it and how it was checked.
type ProvenanceNode struct {
	Reference  string `json:"reference"` // REPOSITORY@DIGEST
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Depth      int    `json:"depth"`
	// OK is true when at least one record holds.
	OK bool `json:"ok"`
	// Inconclusive is true when no record holds and a registry failure may
	// have hidden one that does.
	Inconclusive bool `json:"inconclusive,omitempty"`
	// Missing is true when the reference is a tag that does not exist:
	// there is nothing to hold a record.
	Missing bool           `json:"missing,omitempty"`
	Records []RecordResult `json:"records"`
	Reasons []string       `json:"reasons"`
}

// RecordResult is one provenance record and its check.
type RecordResult struct {
	Source string `json:"source"` // the referrer it came from
	OK     bool   `json:"ok"`
	// Signer is the allowed builder whose key signed the record, when it is
	// one.
	Signer  *Signer               `json:"signer,omitempty"`
	Record  *provenance.Predicate `json:"record,omitempty"`
	Subject []provenance.Subject  `json:"subject,omitempty"`
	Imports []ImportResult        `json:"imports,omitempty"`
	Reasons []string              `json:"reasons"`
	inconc  bool                  // a registry failure, not a verdict
}

// ImportResult is one cache import of a record and its check now.
type ImportResult struct {
	provenance.Cache
	OK bool `json:"ok"`
	// Pinned is REPOSITORY@DIGEST, re-verified.
	Pinned string `json:"pinned,omitempty"`
	// Now is the re-verification of Pinned under the current policy; nil
	// when it was not re-verified.
	Now *Result `json:"now,omitempty"`
	// Chain is the import's own records, when the walk read them.
	Chain  *ProvenanceNode `json:"chain,omitempty"`
	Reason string          `json:"reason"`
}

// walk is the state one chain walk shares across its levels.
type walk struct {
	maxDepth int
	limit    int64
	show     int // Provenance: read the records of imports this deep
	used     atomic.Int64
	exceeded atomic.Bool
}

// walkFrame is where in a walk a verification is: its depth and the
// digests above it.
type walkFrame struct {
	w     *walk
	depth int
	path  []string // REPOSITORY@DIGEST of each ancestor, the verified one last
}

type walkKey struct{}

func frameFrom(ctx context.Context) *walkFrame {
	f, _ := ctx.Value(walkKey{}).(*walkFrame)
	return f
}

// budgetTransport counts the registry requests of a chain walk (found in
// the request's context) and refuses those past its limit.
type budgetTransport struct{ next http.RoundTripper }

func (t budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if f := frameFrom(req.Context()); f != nil {
		if f.w.used.Add(1) > f.w.limit {
			f.w.exceeded.Store(true)
			return nil, fmt.Errorf("%w (%d requests)", ErrRequestLimit, f.w.limit)
		}
	}
	next := t.next
	if next == nil {
		next = remote.DefaultTransport
	}
	return next.RoundTrip(req)
}

// requireProvenance applies scope's provenance rule to a digest whose
// signatures made res trusted: it reads its records (starting a walk, or
// continuing the one in ctx) and makes res untrusted — or inconclusive,
// after a registry failure — when none holds.
func (v *Verifier) requireProvenance(ctx context.Context, repo name.Repository, res *Result, scope *trustpolicy.Scope, digest v1.Hash, ropts []remote.Option) {
	f := frameFrom(ctx)
	top := f == nil
	if top {
		f = &walkFrame{w: &walk{maxDepth: scope.Provenance.MaxDepth, limit: int64(scope.Provenance.MaxRequests)}}
	}
	f = &walkFrame{w: f.w, depth: f.depth, path: append(slices.Clip(f.path), res.Repository+"@"+digest.String())}
	ctx = context.WithValue(ctx, walkKey{}, f)
	node := v.records(ctx, f, repo, res.Repository, digest, scope, ropts)
	res.Provenance = node
	label := "provenance: "
	if top {
		label = fmt.Sprintf("provenance (requireProvenance, maxDepth %d, maxRequests %d): ", scope.Provenance.MaxDepth, scope.Provenance.MaxRequests)
	}
	fail := func(verdict Verdict, why string) {
		res.Trusted = false
		res.Verdict = verdict
		res.addReason(label + why)
	}
	switch {
	case top && f.w.exceeded.Load():
		fail(VerdictUntrusted, fmt.Sprintf("the chain walk needed more than %d registry requests (the scope's maxRequests): not verified", f.w.limit))
	case node.OK:
		res.addReason(label + node.summary())
	case node.Inconclusive:
		fail(VerdictInconclusive, node.summary())
	default:
		fail(VerdictUntrusted, node.summary())
	}
}

// summary is the node's outcome in one line.
func (n *ProvenanceNode) summary() string {
	if n.OK {
		for _, r := range n.Records {
			if r.OK {
				return fmt.Sprintf("record %s signed by %s holds (%d imports verified)", r.Source, r.Signer.Builder, len(r.Imports))
			}
		}
	}
	var why []string
	why = append(why, n.Reasons...)
	for _, r := range n.Records {
		for _, reason := range r.Reasons {
			why = append(why, r.Source+": "+reason)
		}
	}
	if len(why) == 0 {
		return "no record holds"
	}
	s := why[0]
	for _, w := range why[1:] {
		s += "; " + w
	}
	return s
}

// records reads and checks the provenance records attached to digest.
func (v *Verifier) records(ctx context.Context, f *walkFrame, repo name.Repository, canon string, digest v1.Hash, scope *trustpolicy.Scope, ropts []remote.Option) *ProvenanceNode {
	node := &ProvenanceNode{Reference: canon + "@" + digest.String(), Repository: canon, Digest: digest.String(), Depth: f.depth, Records: []RecordResult{}, Reasons: []string{}}
	sigs, err := signature.ReadAttestations(ctx, repo, digest, provenance.PredicateType, ropts...)
	if err != nil {
		node.Inconclusive = !errors.Is(err, signature.ErrTooManySignatures)
		node.Reasons = append(node.Reasons, fmt.Sprintf("reading provenance records: %v", err))
		return node
	}
	if len(sigs) == 0 {
		node.Reasons = append(node.Reasons, fmt.Sprintf("no provenance record (an attestation of type %s) is attached to %s", provenance.PredicateType, node.Reference))
		return node
	}
	for _, s := range sigs {
		r := v.checkRecord(ctx, f, scope, canon, digest, s)
		node.OK = node.OK || r.OK
		node.Inconclusive = node.Inconclusive || r.inconc
		node.Records = append(node.Records, r)
	}
	if node.OK {
		node.Inconclusive = false
	}
	return node
}

// checkRecord checks one record: signature, parse, subject, imports.
func (v *Verifier) checkRecord(ctx context.Context, f *walkFrame, scope *trustpolicy.Scope, canon string, digest v1.Hash, s signature.Signature) RecordResult {
	r := RecordResult{Source: s.Source, Reasons: []string{}}
	bad := func(format string, args ...any) RecordResult {
		r.Reasons = append(r.Reasons, fmt.Sprintf(format, args...))
		return r
	}
	if s.Err != nil {
		if signature.IsMalformed(s.Err) {
			return bad("malformed record: %v", s.Err)
		}
		r.inconc = true
		return bad("%v", s.Err)
	}
	if scope == nil {
		return bad("no policy scope matches %s: no builder may sign a record for it", canon)
	}
	b, key := v.keyFor(scope, s.SignedBytes(), s.Signature)
	switch {
	case b == nil:
		return bad("the record is not signed by any key in the policy")
	case v.policy.IsRevoked(key.ID):
		return bad("the record is signed by builder %s with revoked key %s", b.Name, key.ID)
	case !slices.Contains(scope.Builders, b.Name):
		return bad("the record is signed by builder %s, which is not allowed for %s", b.Name, canon)
	}
	r.Signer = &Signer{Builder: b.Name, KeyID: key.ID, Format: string(signature.FormatBundle)}
	return v.checkStatement(ctx, f, canon, digest, s.Payload, r)
}

// checkStatement checks the content of a record whose signature holds:
// parse, subject, imports.
func (v *Verifier) checkStatement(ctx context.Context, f *walkFrame, canon string, digest v1.Hash, payload []byte, r RecordResult) RecordResult {
	bad := func(format string, args ...any) RecordResult {
		r.Reasons = append(r.Reasons, fmt.Sprintf(format, args...))
		return r
	}
	st, err := provenance.Parse(payload)
	if err != nil {
		return bad("malformed record: %v", err)
	}
	r.Record, r.Subject = &st.Predicate, st.Subject
	if r.Signer != nil {
		r.Signer.SignedAt = st.Predicate.BuiltAt
	}
	if !namesSubject(st.Subject, canon, digest) {
		return bad("the record's subjects do not include %s@%s (a record for another artifact)", canon, digest)
	}
	r.OK = true
	for _, c := range st.Predicate.Caches {
		ir := v.checkImport(ctx, f, st, c)
		if !ir.OK {
			r.OK = false
			r.Reasons = append(r.Reasons, ir.Reason)
			if ir.Now != nil && ir.Now.Verdict == VerdictInconclusive {
				r.inconc = true
			}
		}
		r.Imports = append(r.Imports, ir)
	}
	return r
}

// namesSubject reports whether subjects include repository canon at
// digest.
func namesSubject(subjects []provenance.Subject, canon string, digest v1.Hash) bool {
	for _, s := range subjects {
		if s.Digest["sha256"] != digest.Hex || digest.Algorithm != "sha256" {
			continue
		}
		if repo, ok := identityRepository(s.Name); ok && repo == canon {
			return true
		}
	}
	return false
}

// checkImport checks one import of a record.
func (v *Verifier) checkImport(ctx context.Context, f *walkFrame, st *provenance.Statement, c provenance.Cache) ImportResult {
	ir := ImportResult{Cache: c}
	fail := func(format string, args ...any) ImportResult {
		ir.Reason = fmt.Sprintf(format, args...)
		return ir
	}
	switch c.Action {
	case provenance.ActionDropped:
		ir.OK, ir.Reason = true, "dropped by the build: not used"
		return ir
	case provenance.ActionUsed:
	default:
		return fail("the build %s %s without verifying it", actionVerb(c.Action), c.Reference)
	}
	if c.Verdict != string(VerdictTrusted) {
		return fail("the build used %s with verdict %q (not trusted)", c.Reference, c.Verdict)
	}
	spec, err := cachespec.Parse(c.Reference)
	if err != nil || spec.Type != "registry" || spec.Ref() == "" || c.Digest == "" {
		return fail("the build used %s, which names no registry cache and pinned digest to re-verify", c.Reference)
	}
	ref, err := name.ParseReference(spec.Ref())
	if err != nil {
		return fail("the build used %s, whose reference does not parse: %v", c.Reference, err)
	}
	canon, err := trustpolicy.CanonicalRepository(ref.Context().Name())
	if err != nil {
		return fail("the build used %s, whose repository is invalid: %v", c.Reference, err)
	}
	ir.Pinned = canon + "@" + c.Digest
	if slices.Contains(f.path, ir.Pinned) {
		return fail("the build imported %s, the artifact itself or one it was built from (a cycle proves nothing)", ir.Pinned)
	}
	depth := f.depth + 1
	if depth > f.w.maxDepth {
		// "The same policy" is the whole policy's fingerprint: the file,
		// every key it names (a key rotated by replacing its file changes
		// it), its trusted root and revocations. A record written before
		// the fingerprint holds the file's digest and never matches.
		if fp := v.policy.Fingerprint(nil); st.Predicate.Policy.Digest == fp {
			ir.OK, ir.Reason = true, fmt.Sprintf("below maxDepth %d: not re-verified; the record was made under this same policy and keys (%s), which verified it", f.w.maxDepth, fp)
			return ir
		}
		return fail("the chain is deeper than maxDepth %d: %s was not re-verified, and the record was made under another policy (%s)", f.w.maxDepth, ir.Pinned, orNone(st.Predicate.Policy.Digest))
	}
	child := &walkFrame{w: f.w, depth: depth, path: f.path}
	res, err := v.Verify(context.WithValue(ctx, walkKey{}, child), ir.Pinned)
	if err != nil {
		return fail("re-verifying %s: %v", ir.Pinned, err)
	}
	ir.Now, ir.Chain = res, res.Provenance
	if ir.Chain == nil && depth <= f.w.show {
		// Provenance (the command) shows the records where the import's
		// scope does not require them.
		ir.Chain = v.importRecords(ctx, f.w, depth, append(slices.Clip(f.path), ir.Pinned), canon, c.Digest)
	}
	if !res.Trusted {
		return fail("%s no longer verifies under this policy (%s): %s", ir.Pinned, res.Verdict, res.Reason())
	}
	ir.OK, ir.Reason = true, fmt.Sprintf("re-verified: trusted under this policy")
	return ir
}

// importRecords reads and checks the records of an import, for display.
func (v *Verifier) importRecords(ctx context.Context, w *walk, depth int, path []string, canon, digest string) *ProvenanceNode {
	f := &walkFrame{w: w, depth: depth, path: path}
	ctx = context.WithValue(ctx, walkKey{}, f)
	node := &ProvenanceNode{Reference: canon + "@" + digest, Repository: canon, Digest: digest, Depth: depth, Records: []RecordResult{}, Reasons: []string{}}
	r, err := name.NewDigest(canon + "@" + digest)
	if err != nil {
		node.Reasons = append(node.Reasons, err.Error())
		return node
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		node.Reasons = append(node.Reasons, err.Error())
		return node
	}
	ropts, err := v.pullers.Current().Options(ctx)
	if err != nil {
		node.Inconclusive = true
		node.Reasons = append(node.Reasons, err.Error())
		return node
	}
	scope, _, _ := v.policy.MatchExplain(canon)
	return v.records(ctx, f, r.Context(), canon, h, scope, ropts)
}

func actionVerb(action string) string {
	switch action {
	case provenance.ActionPassed:
		return "passed on"
	case provenance.ActionBlocked:
		return "was blocked by"
	}
	return fmt.Sprintf("did %q with", action)
}

func orNone(s string) string {
	if s == "" {
		return "none recorded"
	}
	return s
}

// ProvenanceOptions configures Verifier.Provenance.
type ProvenanceOptions struct {
	// Depth is how many levels of imports to show the records of: 0, the
	// records of the reference only (each import still re-verified).
	Depth int
}

// Provenance reads the provenance records attached to ref's digest and
// checks each against the policy — signed by a builder ref's scope allows,
// naming ref, its imports re-verified now — and, with opts.Depth, the
// records of those imports and so on. The walk is bounded as the
// provenance rule's is: the larger of opts.Depth and the scope's maxDepth,
// and the scope's maxRequests (defaults when the scope sets none). The
// Result is ref's own verification (its signatures and, where its scope
// requires it, provenance); the node is never nil. err is a
// *ReferenceError for a reference that does not parse.
func (v *Verifier) Provenance(ctx context.Context, ref string, opts ProvenanceOptions) (*ProvenanceNode, error) {
	res, r, scope, err := v.prepare(ref, false)
	if err != nil {
		return &ProvenanceNode{Reference: ref, Records: []RecordResult{}, Reasons: res.Reasons}, err
	}
	rule := trustpolicy.ProvenanceRule{MaxDepth: trustpolicy.DefaultProvenanceMaxDepth, MaxRequests: trustpolicy.DefaultProvenanceMaxRequests}
	if scope != nil && scope.Provenance.Required {
		rule = scope.Provenance
	}
	w := &walk{maxDepth: max(opts.Depth, rule.MaxDepth), limit: int64(rule.MaxRequests), show: opts.Depth}
	total := v.total
	if total <= 0 {
		total = DefaultVerifyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	node := &ProvenanceNode{Reference: ref, Repository: res.Repository, Records: []RecordResult{}, Reasons: []string{}}
	p := v.pullers.Current()
	ropts, err := p.Options(ctx)
	if err != nil {
		node.Inconclusive = true
		node.Reasons = append(node.Reasons, err.Error())
		return node, nil
	}
	digest, err := registry.Digest(r, ropts...)
	if err != nil {
		if registry.IsNotFound(err) {
			node.Missing = true
			node.Reasons = append(node.Reasons, fmt.Sprintf("missing: %s does not exist in the registry", ref))
			return node, nil
		}
		node.Inconclusive = true
		node.Reasons = append(node.Reasons, fmt.Sprintf("resolving %s: %v", ref, err))
		return node, nil
	}
	f := &walkFrame{w: w, path: []string{res.Repository + "@" + digest.String()}}
	node = v.records(context.WithValue(ctx, walkKey{}, f), f, r.Context(), res.Repository, digest, scope, ropts)
	if scope == nil {
		node.Reasons = append(node.Reasons, res.Reasons...)
	}
	if w.exceeded.Load() {
		node.OK, node.Inconclusive = false, false
		node.Reasons = append(node.Reasons, fmt.Sprintf("the chain walk needed more than %d registry requests (maxRequests): not verified", w.limit))
	}
	return node, nil
}
