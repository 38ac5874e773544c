package verify

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// The fallback (docs/fallback.md): a tag whose digest is not trusted, is
// missing or is older than the newest known for the tag yields the newest
// digest trusted *for that tag* — signed naming the tag, by every rule of
// the scope — never older than the newest this host has taken for it
// (fallback_ledger.go) nor than what the tag's signed head record says.

// Why the tag's own digest was not used (Fallback.TagStatus).
const (
	TagMissing      = "missing"      // the tag does not exist
	TagUntrusted    = "untrusted"    // its digest is not trusted
	TagInconclusive = "inconclusive" // the registry failed before a verdict
	TagRolledBack   = "rolledBack"   // its digest is trusted but older than the newest known for the tag
)

// Where the digest used instead was found (Fallback.Source).
const (
	FromHead         = "head"         // the tag's signed head record
	FromHeadPrevious = "headPrevious" // the digest before it, as the head names it
	FromLedger       = "ledger"       // the newest this host took for the tag
	FromScan         = "scan"         // the repository's signature tags
)

// fallbackStart is what the fallback reads before the tag's own
// verification starts: this host's record for the tag and, when there is
// none, the tag's head record. A host with no record needs the head
// whatever the tag's digest turns out to be (it is the rollback bound of a
// trusted digest as much as the fallback of an untrusted one), and the
// head is named by the tag alone: it is read concurrently with the tag's
// own requests instead of after them (docs/performance.md). Only the
// reading is early; judgeHead judges it as before. A host with a record
// reads the head only when the tag's digest is not the record's (the warm
// path stays one request).
type fallbackStart struct {
	rec    *tagRecord
	head   chan headRead // nil: not read early
	puller *registry.Puller
}

type headRead struct {
	sh  *signature.SignedHead
	err error
}

// startFallback loads the tag's record and, when there is none, starts
// reading the tag's head through p. The record is the one this host had
// when the verification started: a verification in another process that
// takes a newer digest meanwhile is as concurrent as it was before.
func (v *Verifier) startFallback(ctx context.Context, tag name.Tag, canon string, scope *trustpolicy.Scope, p *registry.Puller) *fallbackStart {
	fs := &fallbackStart{rec: v.loadTag(ctx, canon, tag.TagStr(), v.policy.Fingerprint(scope)), puller: p}
	if fs.rec != nil {
		return fs
	}
	ropts, err := p.Options(ctx)
	if err != nil {
		return fs
	}
	fs.head = make(chan headRead, 1)
	go func() {
		sh, err := signature.ReadHead(ctx, tag.Context(), tag.TagStr(), ropts...)
		fs.head <- headRead{sh, err}
	}()
	return fs
}

// signedHead returns the tag's head as read from the registry: the early
// read when there is one and it went through p, else a read now. A puller
// renewed since (verify: a remembered ping the registry no longer answers
// the same) reads again: an answer through the stale one proves nothing,
// not even that there is no head.
func (fs *fallbackStart) signedHead(ctx context.Context, tag name.Tag, p *registry.Puller, ropts []remote.Option) (*signature.SignedHead, error) {
	if fs.head != nil {
		r := <-fs.head
		fs.head = nil // taken: a later call reads again
		if p == fs.puller {
			return r.sh, r.err
		}
	}
	return signature.ReadHead(ctx, tag.Context(), tag.TagStr(), ropts...)
}

// fallback applies the scope's fallback to res, the verification of the
// tag's own digest: it keeps a trusted digest that is not a rollback, and
// otherwise puts the last trusted digest of the tag in its place, or
// leaves res untrusted. fs is what startFallback read before res.
func (v *Verifier) fallback(ctx context.Context, tag name.Tag, res *Result, scope *trustpolicy.Scope, p *registry.Puller, fs *fallbackStart) {
	ropts, err := p.Options(ctx)
	if err != nil {
		return
	}
	t := tag.TagStr()
	fp := v.policy.Fingerprint(scope)
	rec := fs.rec
	readHead := func() (*signature.Head, string) {
		sh, err := fs.signedHead(ctx, tag, p, ropts)
		return v.judgeHead(sh, err, tag, res.Repository, scope, rec)
	}
	if !res.Trusted {
		status := TagUntrusted
		switch {
		case res.Verdict == VerdictInconclusive:
			status = TagInconclusive
		case res.Digest == "":
			status = TagMissing
		}
		fb := &Fallback{Tag: t, TagDigest: res.Digest, TagStatus: status, Why: res.Reason()}
		head, note := readHead()
		v.takeFallback(ctx, tag, res, scope, rec, head, note, fb, p)
		return
	}

	signedAt := newestSigned(res.Signers)
	seen := tagRecord{Repository: res.Repository, Tag: t, Policy: fp, Digest: res.Digest, SignedAt: signedAt, ForTag: countForTag(res.Signers, t) >= scope.Threshold}
	if rec != nil && rec.Digest == res.Digest {
		// The newest this host has taken for the tag: nothing older can
		// be, and nothing to read (the warm path stays one request). The
		// record is written only when it changes, or once a day to keep
		// it from expiring (TagRecordTTL): a write costs the ledger's
		// exclusive lock and an fsync.
		if m := rec.merged(seen); m.HeadSequence != rec.HeadSequence || m.ForTag != rec.ForTag || !m.SignedAt.Equal(rec.SignedAt) ||
			v.now().Sub(rec.UpdatedAt) > 24*time.Hour {
			v.saveTag(ctx, seen)
		}
		return
	}
	head, note := readHead()
	var why string
	switch {
	case head != nil && head.Digest.String() != res.Digest && !notOlder(signedAt, head.Created):
		why = fmt.Sprintf("%s (signed %s) is older than the tag's signed head record (sequence %d, %s), which names %s",
			res.Digest, timeOrNone(signedAt), head.Sequence, head.Created.UTC().Format(time.RFC3339), head.Digest)
	case rec != nil && !notOlder(signedAt, rec.SignedAt):
		why = fmt.Sprintf("%s (signed %s) is older than %s (signed %s), the newest digest this host has taken for the tag",
			res.Digest, timeOrNone(signedAt), rec.Digest, timeOrNone(rec.SignedAt))
	}
	if why == "" {
		if head != nil {
			seen.HeadSequence = head.Sequence
		}
		v.saveTag(ctx, seen)
		return
	}
	fb := &Fallback{Tag: t, TagDigest: res.Digest, TagStatus: TagRolledBack, Why: "rolled back: " + why}
	v.takeFallback(ctx, tag, res, scope, rec, head, note, fb, p)
}

// takeFallback looks for the last trusted digest of the tag and, when one
// is found, makes res its verification (res.Fallback says so); otherwise
// res is left untrusted with the reasons. head is the accepted head record
// (nil: none, and headNote says why).
func (v *Verifier) takeFallback(ctx context.Context, tag name.Tag, res *Result, scope *trustpolicy.Scope, rec *tagRecord, head *signature.Head, headNote string, fb *Fallback, p *registry.Puller) {
	repo := tag.Context()
	var floor time.Time
	var recDigest string
	if rec != nil {
		floor, recDigest = rec.SignedAt, rec.Digest
	}
	var notes []string
	try := func(d, source string) *Result {
		cres := v.verifyForTag(ctx, repo, res.Repository, d, scope, fb.Tag, p)
		switch {
		case !cres.Trusted:
			notes = append(notes, fmt.Sprintf("%s %s is not trusted for the tag: %s", source, d, cres.Reason()))
			return nil
		case d != recDigest && !notOlder(newestSigned(cres.Signers), floor):
			notes = append(notes, fmt.Sprintf("%s %s is older than %s, the newest this host has taken for the tag", source, d, recDigest))
			return nil
		}
		return cres
	}

	var got *Result
	var source string
	switch {
	case head != nil && rec != nil && rec.ForTag && rec.Digest != head.Digest.String() && rec.SignedAt.After(head.Created):
		// This host took a newer digest for the tag than the head names.
		source = FromLedger
		got = try(rec.Digest, source)
	case head != nil:
		fb.HeadSequence = head.Sequence
		source = FromHead
		// The head may name the tag's own digest: verified for the tag it
		// may still count (this host's ledger holds it) where the tag's
		// own verification read junk.
		got = try(head.Digest.String(), source)
		// A head whose digest cannot be verified (junk signatures, gone,
		// expired) yields the digest before it, which the same signed
		// head names; never further back.
		if got == nil && head.Previous != "" {
			source = FromHeadPrevious
			got = try(head.Previous, source)
		}
	default:
		if headNote != "" {
			notes = append(notes, headNote)
		}
		if rec != nil && rec.ForTag && rec.Digest != fb.TagDigest {
			source = FromLedger
			got = try(rec.Digest, source)
		}
		if got == nil {
			source = FromScan
			var note string
			got, note = v.scan(ctx, repo, res.Repository, fb.Tag, scope, fb.TagDigest, rec, p)
			if note != "" {
				notes = append(notes, note)
			}
		}
	}

	seen := tagRecord{Repository: res.Repository, Tag: fb.Tag, Policy: v.policy.Fingerprint(scope)}
	if head != nil {
		seen.HeadSequence = head.Sequence
	}
	if got == nil {
		if fb.TagStatus == TagRolledBack {
			res.Trusted, res.Verdict = false, VerdictUntrusted
			res.addReason(fb.Why)
		}
		res.addReason(fmt.Sprintf("no trusted fallback for tag %s: %s", fb.Tag, strings.Join(notes, "; ")))
		v.saveTag(ctx, seen) // the head sequence seen, if any
		return
	}

	signedAt := newestSigned(got.Signers)
	fb.Digest, fb.Source, fb.Signers = got.Digest, source, got.Signers
	if !signedAt.IsZero() {
		fb.SignedAt = signedAt.UTC().Format(time.RFC3339)
		fb.Age = v.now().Sub(signedAt).Round(time.Second).String()
	}
	if source != FromHead && source != FromHeadPrevious {
		fb.HeadSequence = 0
	}
	res.Digest, res.Trusted, res.Verdict, res.Missing = got.Digest, true, VerdictTrusted, false
	res.Signers, res.FromLedger, res.Provenance, res.Fallback = got.Signers, got.FromLedger, got.Provenance, fb
	if fb.TagStatus == TagRolledBack {
		res.Reasons = []string{fb.Why}
	}
	res.addReason(fmt.Sprintf("tag %s %s: using %s, its last trusted digest (%s%s)", fb.Tag, describeTagStatus(fb), got.Digest, describeSource(fb), describeAge(fb)))
	seen.Digest, seen.SignedAt, seen.ForTag = got.Digest, signedAt, true
	v.saveTag(ctx, seen)
}

// verifyForTag verifies repo@digest under scope counting only signatures
// that name tag: the full verification (ledger, signatures, provenance),
// with the tag annotation required.
func (v *Verifier) verifyForTag(ctx context.Context, repo name.Repository, canon, digest string, scope *trustpolicy.Scope, tag string, p *registry.Puller) *Result {
	res := &Result{Reference: canon + "@" + digest, Repository: canon, Digest: digest, Verdict: VerdictUntrusted, Level: scope.Level, OnUntrusted: scope.OnUntrusted, Threshold: scope.Threshold, Signers: []Signer{}, Reasons: []string{}}
	ts, ok := scopeForTag(scope, tag)
	if !ok {
		res.addReason(fmt.Sprintf("the scope's required annotation %s=%q does not match tag %q", signature.AnnotationTag, scope.Annotations[signature.AnnotationTag], tag))
		return res
	}
	d, err := name.NewDigest(repo.Name()+"@"+digest, name.WeakValidation)
	if err != nil {
		res.addReason(err.Error())
		return res
	}
	v.check(context.WithValue(ctx, ledgerAsKey{}, ledgerAs{narrowed: ts, plain: scope}), d, res, ts, false, p)
	return res
}

// scopeForTag is scope with the signed annotation "tag" required to be
// tag; ok=false when the scope already requires a tag glob that tag does
// not match. Tags ([A-Za-z0-9_.-]) hold no glob syntax.
func scopeForTag(scope *trustpolicy.Scope, tag string) (*trustpolicy.Scope, bool) {
	ts := *scope
	ts.Annotations = maps.Clone(scope.Annotations)
	if ts.Annotations == nil {
		ts.Annotations = map[string]string{}
	}
	if g, ok := ts.Annotations[signature.AnnotationTag]; ok {
		if m, _ := doublestar.Match(g, tag); !m {
			return nil, false
		}
	}
	ts.Annotations[signature.AnnotationTag] = tag
	return &ts, true
}

// judgeHead returns the tag's head record sh (as read, with the error of
// reading it) when it is accepted: signed by a non-revoked key of a
// builder of the scope, naming this repository and tag, not in the
// future, and with a sequence not lower than the highest this host has
// seen. Otherwise it returns nil and why.
func (v *Verifier) judgeHead(sh *signature.SignedHead, err error, tag name.Tag, canon string, scope *trustpolicy.Scope, rec *tagRecord) (*signature.Head, string) {
	switch {
	case err != nil:
		return nil, fmt.Sprintf("head record not read: %v", err)
	case sh == nil:
		return nil, "no head record for the tag"
	}
	b, key := v.keyFor(scope, sh.Payload, sh.Signature)
	switch {
	case b == nil:
		return nil, fmt.Sprintf("head record %s is not signed by a key of the policy: ignored", sh.Source)
	case v.policy.IsRevoked(key.ID):
		return nil, fmt.Sprintf("head record %s is signed with revoked key %s: ignored", sh.Source, key.ID)
	case !slices.Contains(scope.Builders, b.Name):
		return nil, fmt.Sprintf("head record %s is signed by builder %s, which is not allowed for %s: ignored", sh.Source, b.Name, canon)
	}
	h, err := signature.ParseHead(sh.Payload)
	if err != nil {
		return nil, fmt.Sprintf("head record %s: %v: ignored", sh.Source, err)
	}
	if r, ok := identityRepository(h.Repository); !ok || r != canon || h.Tag != tag.TagStr() {
		return nil, fmt.Sprintf("head record %s is for %s:%s, not %s:%s (copied): ignored", sh.Source, h.Repository, h.Tag, canon, tag.TagStr())
	}
	// A sequence is at most the signing time in milliseconds (plus the
	// heads written within one millisecond): one further ahead than the
	// clock skew allows would freeze every later head out of the hosts
	// that saw it.
	if limit := v.now().Add(ClockSkew); h.Created.After(limit) || h.Sequence > uint64(limit.UnixMilli()) {
		return nil, fmt.Sprintf("head record %s was signed in the future (%s, sequence %d): ignored", sh.Source, h.Created.UTC().Format(time.RFC3339), h.Sequence)
	}
	if rec != nil && h.Sequence < rec.HeadSequence {
		return nil, fmt.Sprintf("head record %s has sequence %d, lower than %d seen before on this host (rolled back): ignored", sh.Source, h.Sequence, rec.HeadSequence)
	}
	return h, ""
}

// newestSigned is the newest signing time of signers; zero for none.
func newestSigned(signers []Signer) time.Time {
	var newest time.Time
	for _, s := range signers {
		if t, err := time.Parse(time.RFC3339, s.SignedAt); err == nil && t.After(newest) {
			newest = t
		}
	}
	return newest
}

// countForTag counts the distinct builders among signers whose signature
// names tag.
func countForTag(signers []Signer, tag string) int {
	builders := map[string]bool{}
	for _, s := range signers {
		if s.Annotations[signature.AnnotationTag] == tag {
			builders[s.Builder] = true
		}
	}
	return len(builders)
}

func timeOrNone(t time.Time) string {
	if t.IsZero() {
		return "without a time"
	}
	return t.UTC().Format(time.RFC3339)
}

func describeTagStatus(fb *Fallback) string {
	switch fb.TagStatus {
	case TagMissing:
		return "is missing"
	case TagRolledBack:
		return "was rolled back to " + fb.TagDigest
	case TagInconclusive:
		return "could not be verified"
	}
	return "points at untrusted " + fb.TagDigest
}

func describeSource(fb *Fallback) string {
	switch fb.Source {
	case FromHead:
		return fmt.Sprintf("signed head record, sequence %d", fb.HeadSequence)
	case FromHeadPrevious:
		return fmt.Sprintf("the digest before the head record's (sequence %d)", fb.HeadSequence)
	case FromLedger:
		return "the newest this host has taken for the tag"
	}
	return "found among the repository's signatures"
}

func describeAge(fb *Fallback) string {
	if fb.Age == "" {
		return ""
	}
	return ", signed " + fb.Age + " ago"
}
