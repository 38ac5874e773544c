// Package verify is the trust decision: the Verifier resolves a cache
// reference to a digest, reads its signatures and decides against a policy
// (package verify/trustpolicy, the model) whether the cache is trusted,
// falling back to the tag's last trusted digest when it is not. What it
// stores (the ledger file, internal/ledger) and how it talks to registries
// (the pullers and remembered pings, internal/registry) are other
// packages'; it keeps only the hooks (ledger.go: Ledger, a store of its
// own type over internal/ledger). What becomes of a cache once decided is
// package verify/decision's.
//
// verify, verify/trustpolicy, verify/decision and provenance are public
// libraries, as go-containerregistry's packages are: their exported API
// names no type of the module's internal/ packages (internal/depcheck
// TestPublicAPINamesNoInternalTypes). The package imports neither cobra
// nor the docker CLI; it logs nowhere.
package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// ClockSkew is how far in the future a signature's creation time may lie
// (the signer's clock ahead of ours) before the signature stops counting.
const ClockSkew = 5 * time.Minute

// DefaultVerifyTimeout bounds one verification, every registry request and
// retry included. The request timeout alone bounds each of up to a few
// hundred requests; a registry that answers each one just before it could
// otherwise hold a build for hours. A verification that runs out of time
// is inconclusive.
const DefaultVerifyTimeout = 2 * time.Minute

// ReferenceError reports a reference that cannot be parsed: a usage error.
type ReferenceError struct {
	Ref string
	Err error
}

func (e *ReferenceError) Error() string { return fmt.Sprintf("invalid reference %q: %v", e.Ref, e.Err) }
func (e *ReferenceError) Unwrap() error { return e.Err }

// Verifier decides whether cache references are trusted under a policy.
type Verifier struct {
	policy    *trustpolicy.Policy
	remote    []remote.Option
	transport http.RoundTripper
	timeout   time.Duration
	total     time.Duration // WithVerifyTimeout
	now       func() time.Time
	ledger    *Ledger      // WithLedger (verify/ledger.go); nil: none
	keyless   keylessCache // verified keyless signatures (keyless.go)

	// One puller for the verifier's life (internal/registry/pullers.go),
	// replaced only when a remembered registry ping turned out stale (see
	// verify).
	pullers *registry.Pullers
}

// New returns a Verifier for policy p.
func New(p *trustpolicy.Policy, opts ...Option) *Verifier {
	v := &Verifier{policy: p, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	// Count a provenance walk's requests (verify/provenance.go) and a
	// fallback scan's (verify/fallback_scan.go).
	v.transport = scanBudgetTransport{next: budgetTransport{next: v.transport}}
	var pings *registry.PingCache
	if v.ledger != nil {
		// With a ledger, the puller's transport remembers registry pings in
		// it (internal/registry/pingcache.go, pingstore.go).
		pings = registry.NewPingCache(registry.NewLedgerPings(v.ledger.store, v.now), v.now)
	}
	v.pullers = registry.NewPullers(v.transport, v.timeout, pings, v.remote...)
	return v
}

// Policy returns the policy the verifier enforces.
func (v *Verifier) Policy() *trustpolicy.Policy { return v.policy }

// Verify resolves ref to a manifest digest, reads the signatures attached to
// that digest and decides whether enough allowed builders signed it. The
// Result is never nil; err is a *ReferenceError for a reference that does
// not parse. Registry and network failures are not errors: they give an
// Inconclusive result.
func (v *Verifier) Verify(ctx context.Context, ref string) (*Result, error) {
	return v.verify(ctx, ref, false)
}

// Explain verifies ref like Verify and also records, in Result.Checks, every
// rule applied to every signature, and in Result.OtherScopes the patterns
// that matched the repository but lost to a more specific one.
func (v *Verifier) Explain(ctx context.Context, ref string) (*Result, error) {
	return v.verify(ctx, ref, true)
}

// prepare parses ref and finds the scope of its repository: the Result so
// far, the reference, and the scope (nil: no scope matches, and res says
// so). A reference that does not parse is an error (*ReferenceError); a
// skip scope gives a Skipped result.
func (v *Verifier) prepare(ref string, explain bool) (*Result, name.Reference, *trustpolicy.Scope, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return &Result{Reference: ref, Verdict: VerdictUntrusted, Reasons: []string{err.Error()}}, nil, nil, &ReferenceError{Ref: ref, Err: err}
	}
	repo, err := trustpolicy.CanonicalRepository(r.Context().Name())
	if err != nil {
		return &Result{Reference: ref, Verdict: VerdictUntrusted, Reasons: []string{err.Error()}}, nil, nil, &ReferenceError{Ref: ref, Err: err}
	}
	res := &Result{Reference: ref, Repository: repo, Verdict: VerdictUntrusted, Level: trustpolicy.LevelStrict, OnUntrusted: trustpolicy.Drop, Signers: []Signer{}, Reasons: []string{}}
	if d, ok := r.(name.Digest); ok {
		res.Digest = d.DigestStr()
	}
	scope, pattern, others := v.policy.MatchExplain(repo)
	if explain {
		res.OtherScopes = others
	}
	if scope == nil {
		res.addReason(fmt.Sprintf("no policy scope matches repository %s", repo))
		return res, r, nil, nil
	}
	res.Level, res.OnUntrusted, res.Threshold = scope.Level, scope.OnUntrusted, scope.Threshold
	res.Scope = pattern
	if scope.Level == trustpolicy.LevelSkip {
		res.Verdict = VerdictSkipped
		res.addReason("scope level is skip: not verified")
	}
	return res, r, scope, nil
}

func (v *Verifier) verify(ctx context.Context, ref string, explain bool) (*Result, error) {
	res, r, scope, err := v.prepare(ref, explain)
	if err != nil || scope == nil || scope.Level == trustpolicy.LevelSkip {
		return res, err
	}

	total := v.total
	if total <= 0 {
		total = DefaultVerifyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	defer func() {
		if !res.Trusted && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.Verdict = VerdictInconclusive
			res.addReason(fmt.Sprintf("verification did not finish within %s", total))
		}
	}()

	start := *res
	p := v.pullers.Current()
	// The fallback's reads that do not wait for the tag's digest start
	// now, alongside it (verify/fallback.go).
	tag, isTag := r.(name.Tag)
	var fs *fallbackStart
	if isTag && !explain && scope.Fallback != trustpolicy.FallbackNone {
		fs = v.startFallback(ctx, tag, res.Repository, scope, p)
	}
	v.check(ctx, r, res, scope, explain, p)
	// Remembered registry ping (internal/registry/pingcache.go): a result
	// that is not trusted is not given on the strength of a remembered
	// ping. The registry is pinged for real (once per process); if it now
	// answers otherwise (say it started requiring a token), the
	// verification runs again once, with a new puller that talks to it the
	// new way. A trusted result needs no such check: the remembered ping
	// only chose the scheme and the auth handshake, and signatures are
	// verified against the policy's keys whatever the transport.
	if !res.Trusted && ctx.Err() == nil && p.Recheck(ctx, r.Context().Registry) {
		*res = start
		res.Signers, res.Reasons = []Signer{}, []string{}
		v.check(ctx, r, res, scope, explain, v.pullers.Renew(p))
	}
	// The fallback (verify/fallback.go): a tag whose digest is not trusted,
	// missing or rolled back yields its last trusted digest.
	if fs != nil && ctx.Err() == nil {
		v.fallback(ctx, tag, res, scope, v.pullers.Current(), fs)
	}
	return res, nil
}

// check does verify's registry part: resolve r, then the ledger or the
// signatures, and the verdict, into res.
func (v *Verifier) check(ctx context.Context, r name.Reference, res *Result, scope *trustpolicy.Scope, explain bool, p *registry.Puller) {
	ref := res.Reference
	ropts, err := p.Options(ctx)
	if err != nil {
		res.Verdict = VerdictInconclusive
		res.addReason(err.Error())
		return
	}
	digest, err := registry.Digest(r, ropts...)
	if err != nil {
		if registry.IsNotFound(err) {
			res.Verdict, res.Missing = VerdictMissing, true
			res.addReason(fmt.Sprintf("missing: %s does not exist in the registry (no cache pushed to it yet, or deleted)", ref))
			return
		}
		res.Verdict = VerdictInconclusive
		res.addReason(fmt.Sprintf("resolving %s: %v", ref, err))
		return
	}
	res.Digest = digest.String()
	// Ledger (verify/ledger.go): a digest verified before under the same
	// policy needs no signature fetch. Explain reports every rule: no ledger.
	if v.ledger != nil && !explain && v.fromLedger(ctx, res, scope) {
		return
	}

	sigs, listErrs := v.signatures(ctx, r.Context(), scope, res.Repository, digest, ropts, explain)
	if len(sigs) == 0 && len(listErrs) == 0 {
		res.addReason("no signatures found")
	}
	v.decide(res, scope, digest, sigs, explain)
	if res.Trusted && scope.Provenance.Required {
		v.requireProvenance(ctx, r.Context(), res, scope, digest, ropts) // verify/provenance.go
	}
	if !res.Trusted {
		// A signature list that could not be read may have held what was
		// missing: no verdict, unless the list was refused as too long.
		for _, err := range listErrs {
			res.addReason(err.Error())
			if !errors.Is(err, signature.ErrTooManySignatures) {
				res.Verdict = VerdictInconclusive
			}
		}
	}
	if v.ledger != nil {
		v.remember(ctx, res, scope) // trusted results only; a failure is ignored
	}
}

// signatures reads the signatures attached to digest: the .sig tag scheme
// first, then the sigstore bundle referrers — only when the .sig tag does
// not already make the digest trusted, which spares the common case the
// referrers requests (explain reads both). It returns the errors of
// reading each list.
func (v *Verifier) signatures(ctx context.Context, repo name.Repository, scope *trustpolicy.Scope, canon string, digest v1.Hash, ropts []remote.Option, all bool) ([]signature.Signature, []error) {
	legacy, lerr := signature.ReadLegacy(ctx, repo, digest, ropts...)
	if lerr == nil && !all && v.counted(scope, canon, digest, legacy) >= scope.Threshold {
		return legacy, nil
	}
	bundles, berr := signature.ReadBundles(ctx, repo, digest, ropts...)
	var errs []error
	for _, err := range []error{lerr, berr} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return append(legacy, bundles...), errs
}

// counted returns how many distinct allowed builders sigs count for.
func (v *Verifier) counted(scope *trustpolicy.Scope, repo string, digest v1.Hash, sigs []signature.Signature) int {
	builders := map[string]bool{}
	for _, s := range sigs {
		if sc := v.evaluate(scope, repo, digest, s); sc.Signer != nil {
			builders[sc.Signer.Builder] = true
		}
	}
	return len(builders)
}

// resolve returns the manifest digest ref names: the digest itself for a
// digest reference (no request), else one HEAD request.
// decide checks each signature against the scope and fills in the verdict.
func (v *Verifier) decide(res *Result, scope *trustpolicy.Scope, digest v1.Hash, sigs []signature.Signature, explain bool) {
	signed := map[string]bool{} // allowed builders with a counting signature
	inconclusive := false
	for _, s := range sigs {
		sc := v.evaluate(scope, res.Repository, digest, s)
		if explain {
			res.Checks = append(res.Checks, *sc)
		}
		signer, why := sc.Signer, sc.failed()
		switch {
		case signer != nil:
			if !signed[signer.Builder] {
				signed[signer.Builder] = true
				res.Signers = append(res.Signers, *signer)
			}
		case s.Err != nil && !signature.IsMalformed(s.Err):
			inconclusive = true
			res.addReason(fmt.Sprintf("%s: %v", s.Source, s.Err))
		default:
			res.addReason(fmt.Sprintf("%s: %s", s.Source, why))
		}
	}
	sort.Slice(res.Signers, func(i, j int) bool { return res.Signers[i].Builder < res.Signers[j].Builder })
	if len(signed) >= scope.Threshold {
		res.Trusted = true
		res.Verdict = VerdictTrusted
		return
	}
	if len(sigs) > 0 || scope.Threshold > 1 {
		res.addReason(fmt.Sprintf("%d of the %d required allowed builders signed", len(signed), scope.Threshold))
	}
	if inconclusive {
		res.Verdict = VerdictInconclusive
	}
}

// Check is one rule applied to one signature.
type Check struct {
	Rule   string `json:"rule"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// SignatureCheck is every rule applied to one signature, in order; the
// rules after the first failure that later rules depend on are not
// evaluated.
type SignatureCheck struct {
	Source string  `json:"source"`
	Format string  `json:"format"`
	Checks []Check `json:"checks"`
	Signer *Signer `json:"signer,omitempty"` // set when the signature counts
}

// failed returns the first failed check's detail, or "".
func (sc *SignatureCheck) failed() string {
	for _, c := range sc.Checks {
		if !c.OK {
			return c.Detail
		}
	}
	return ""
}

// evaluate applies the rules to one signature. The signature is verified
// against the policy's keys before anything in its payload is read.
func (v *Verifier) evaluate(scope *trustpolicy.Scope, repo string, digest v1.Hash, s signature.Signature) *SignatureCheck {
	sc := &SignatureCheck{Source: s.Source, Format: string(s.Format)}
	// rule records a check: passed when ok, with the detail that applies.
	rule := func(name string, ok bool, pass, fail string) bool {
		d := fail
		if ok {
			d = pass
		}
		sc.Checks = append(sc.Checks, Check{Rule: name, OK: ok, Detail: d})
		return ok
	}
	if s.Err != nil {
		rule("readable", false, "", s.Err.Error())
		return sc
	}
	b, key := v.keyFor(scope, s.SignedBytes(), s.Signature)
	var kl *keylessResult // a keyless signature, verified (keyless.go)
	switch {
	case b == nil && s.Keyless != nil:
		var why string
		if b, kl, why = v.keylessFor(scope, s); b == nil {
			rule("identity", false, "", why)
			return sc
		}
		rule("identity", true, fmt.Sprintf("keyless: certificate %s for %s (issuer %s) verified with the trusted root; identity of builder %s",
			kl.certID, kl.summary.SubjectAlternativeName, kl.summary.Issuer, b.Name), "")
		key = &trustpolicy.Key{ID: kl.keyID}
	case b == nil:
		rule("key", false, "", "not signed by any key in the policy")
		return sc
	default:
		rule("key", true, fmt.Sprintf("signed with key %s of builder %s", key.ID, b.Name), "")
	}
	if kl != nil && !rule("revoked", !v.policy.IsRevoked(kl.certID) && !v.policy.IsRevoked(kl.keyID),
		fmt.Sprintf("certificate %s is not revoked", kl.certID),
		fmt.Sprintf("signed by builder %s with revoked certificate %s (key %s)", b.Name, kl.certID, kl.keyID)) {
		return sc
	}
	if kl == nil && !rule("revoked", !v.policy.IsRevoked(key.ID),
		fmt.Sprintf("key %s is not revoked", key.ID),
		fmt.Sprintf("signed by builder %s with revoked key %s", b.Name, key.ID)) {
		return sc
	}
	if !rule("builder", slices.Contains(scope.Builders, b.Name),
		fmt.Sprintf("builder %s is allowed for %s", b.Name, repo),
		fmt.Sprintf("signed by builder %s, which is not allowed for %s", b.Name, repo)) {
		return sc
	}
	signed, err := parseSigned(s)
	if err != nil {
		rule("payload", false, "", fmt.Sprintf("signed payload is invalid: %v", err))
		return sc
	}
	rule("payload", true, "signed payload is a "+signed.kind, "")
	if !rule("digest", signed.digest == digest,
		"signature names digest "+digest.String(),
		fmt.Sprintf("signature is for digest %s, not %s (copied from another manifest)", signed.digest, digest)) {
		return sc
	}
	if !v.checkRepository(scope, repo, signed, rule) {
		return sc
	}
	ann := signed.annotations
	signer := &Signer{Builder: b.Name, KeyID: key.ID, Format: string(s.Format), Annotations: ann}
	var ageOK bool
	var ageDetail string
	if kl != nil {
		signer.Certificate, signer.Subject, signer.Issuer = kl.certID, kl.summary.SubjectAlternativeName, kl.summary.Issuer
		ageOK, ageDetail = v.checkVerifiedTime(scope, kl.earliest(), signer)
	} else {
		ageOK, ageDetail = v.checkTime(scope, ann, signer)
	}
	if !rule("age", ageOK, ageDetail, ageDetail) {
		return sc
	}
	why := matchAnnotations(scope.Annotations, ann)
	pass := "the scope requires no annotations"
	if len(scope.Annotations) > 0 {
		pass = "signed annotations match the scope's"
	}
	if !rule("annotations", why == "", pass, why) {
		return sc
	}
	sc.Signer = signer
	return sc
}

// signedContent is what a verified signature says, whatever its format.
type signedContent struct {
	kind        string // for messages
	digest      v1.Hash
	identity    string // the repository it names, as written; "" for none
	annotations map[string]string
}

// parseSigned reads the signed content of a signature whose signature has
// already been verified.
func parseSigned(s signature.Signature) (*signedContent, error) {
	if s.Format == signature.FormatBundle {
		st, err := signature.ParseStatement(s.Payload)
		if err != nil {
			return nil, err
		}
		id, _ := st.Identity()
		return &signedContent{kind: "sigstore bundle (in-toto statement)", digest: st.Digest(), identity: id, annotations: st.Annotations()}, nil
	}
	p, err := signature.ParsePayload(s.Payload)
	if err != nil {
		return nil, err
	}
	return &signedContent{kind: "cosign simple-signing payload", digest: p.Digest(), identity: p.Critical.Identity.DockerReference, annotations: p.Annotations()}, nil
}

// checkRepository applies the repository rule: the signed content names the
// repository being verified. cosign's bundles name none (a bundle copied
// into another repository stays valid for cosign); such a bundle counts
// only where the scope sets acceptUnboundBundles.
func (v *Verifier) checkRepository(scope *trustpolicy.Scope, repo string, signed *signedContent, rule func(string, bool, string, string) bool) bool {
	if signed.identity == "" {
		return rule("repository", scope.AcceptUnboundBundles,
			"the bundle names no repository; the scope sets acceptUnboundBundles",
			"the bundle names no repository (a bundle copied from another repository would look the same); the scope does not set acceptUnboundBundles")
	}
	signedRepo, ok := identityRepository(signed.identity)
	return rule("repository", ok && signedRepo == repo,
		"signature names repository "+repo,
		fmt.Sprintf("signature is for repository %q, not %s (copied from another repository)", signed.identity, repo))
}

// checkTime applies the creation-time rules: a parsable time, not in the
// future beyond ClockSkew, and within the scope's maxAge. It sets
// signer.SignedAt.
func (v *Verifier) checkTime(scope *trustpolicy.Scope, ann map[string]string, signer *Signer) (bool, string) {
	created, ok := ann[signature.AnnotationCreated]
	if !ok {
		if scope.MaxAge > 0 {
			return false, "signature has no signed creation time, and the scope sets maxAge"
		}
		return true, "no signed creation time; the scope sets no maxAge"
	}
	t, err := time.Parse(time.RFC3339, created)
	if err != nil {
		return false, fmt.Sprintf("signed creation time %q is not RFC 3339", created)
	}
	signer.SignedAt = t.UTC().Format(time.RFC3339)
	now := v.now()
	if t.After(now.Add(ClockSkew)) {
		return false, fmt.Sprintf("signed creation time %s is in the future", signer.SignedAt)
	}
	age := now.Sub(t).Round(time.Second)
	switch {
	case scope.MaxAge > 0 && now.Sub(t) > scope.MaxAge:
		return false, fmt.Sprintf("signed %s ago, older than maxAge %s", age, scope.MaxAge)
	case scope.MaxAge > 0:
		return true, fmt.Sprintf("signed %s ago, within maxAge %s", age, scope.MaxAge)
	}
	return true, fmt.Sprintf("signed %s ago; the scope sets no maxAge", age)
}

// keyFor finds the builder and key whose public key verifies sig over
// payload. The scope's allowed builders are tried first.
func (v *Verifier) keyFor(scope *trustpolicy.Scope, payload, sig []byte) (*trustpolicy.Builder, *trustpolicy.Key) {
	try := func(b *trustpolicy.Builder) *trustpolicy.Key {
		for i := range b.Keys {
			if keys.VerifySignature(b.Keys[i].Public, payload, sig) == nil {
				return &b.Keys[i]
			}
		}
		return nil
	}
	for _, n := range scope.Builders {
		if b, ok := v.policy.Builder(n); ok {
			if k := try(b); k != nil {
				return b, k
			}
		}
	}
	for i := range v.policy.Builders {
		b := &v.policy.Builders[i]
		if slices.Contains(scope.Builders, b.Name) {
			continue
		}
		if k := try(b); k != nil {
			return b, k
		}
	}
	return nil, nil
}

// matchAnnotations checks the scope's required annotations against the
// signed ones; it returns "" when all match, else the reason.
func matchAnnotations(want, got map[string]string) string {
	names := make([]string, 0, len(want))
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v, ok := got[k]
		if !ok {
			return fmt.Sprintf("signed annotation %q is missing (the scope requires %q)", k, want[k])
		}
		if ok, _ := doublestar.Match(want[k], v); !ok {
			return fmt.Sprintf("signed annotation %s=%q does not match %q", k, v, want[k])
		}
	}
	return ""
}

// identityRepository returns the canonical repository a payload's
// docker-reference names. cosign writes the bare repository; older
// signers may add a tag or digest, which does not change the repository.
func identityRepository(ref string) (string, bool) {
	if r, err := trustpolicy.CanonicalRepository(ref); err == nil {
		return r, true
	}
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return "", false
	}
	r, err := trustpolicy.CanonicalRepository(parsed.Context().Name())
	return r, err == nil
}
