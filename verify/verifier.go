// Package verify is the trust decision: the policy (which builders may sign
// caches of which repositories), and the Verifier that resolves a cache
// reference to a digest, reads its signatures and decides.
//
// The package imports neither cobra nor the docker CLI; it logs nowhere.
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
)

// ClockSkew is how far in the future a signature's creation time may lie
// (the signer's clock ahead of ours) before the signature stops counting.
const ClockSkew = 5 * time.Minute

// ReferenceError reports a reference that cannot be parsed: a usage error.
type ReferenceError struct {
	Ref string
	Err error
}

func (e *ReferenceError) Error() string { return fmt.Sprintf("invalid reference %q: %v", e.Ref, e.Err) }
func (e *ReferenceError) Unwrap() error { return e.Err }

// Verifier decides whether cache references are trusted under a policy.
type Verifier struct {
	policy    *Policy
	remote    []remote.Option
	transport http.RoundTripper
	now       func() time.Time
}

// Option configures a Verifier.
type Option func(*Verifier)

// WithRemoteOptions adds go-containerregistry remote options (auth,
// user agent …) to every registry request. Default: the user's docker
// credentials (registry.Options).
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(v *Verifier) { v.remote = append(v.remote, opts...) }
}

// WithTransport sets the HTTP transport registry requests go through,
// wrapped in the body-size limit. Default: remote.DefaultTransport.
func WithTransport(t http.RoundTripper) Option {
	return func(v *Verifier) { v.transport = t }
}

// WithClock sets the clock maxAge is measured against. Default: time.Now.
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) { v.now = now }
}

// New returns a Verifier for policy p.
func New(p *Policy, opts ...Option) *Verifier {
	v := &Verifier{policy: p, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Policy returns the policy the verifier enforces.
func (v *Verifier) Policy() *Policy { return v.policy }

// Verify resolves ref to a manifest digest, reads the signatures attached to
// that digest and decides whether enough allowed builders signed it. The
// Result is never nil; err is a *ReferenceError for a reference that does
// not parse. Registry and network failures are not errors: they give an
// Inconclusive result.
func (v *Verifier) Verify(ctx context.Context, ref string) (*Result, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return &Result{Reference: ref, Verdict: VerdictUntrusted, Reasons: []string{err.Error()}}, &ReferenceError{Ref: ref, Err: err}
	}
	repo, err := CanonicalRepository(r.Context().Name())
	if err != nil {
		return &Result{Reference: ref, Verdict: VerdictUntrusted, Reasons: []string{err.Error()}}, &ReferenceError{Ref: ref, Err: err}
	}
	res := &Result{Reference: ref, Repository: repo, Verdict: VerdictUntrusted, Level: LevelStrict, OnUntrusted: ActionDrop, Signers: []Signer{}, Reasons: []string{}}
	if d, ok := r.(name.Digest); ok {
		res.Digest = d.DigestStr()
	}
	scope, pattern, _ := v.policy.MatchExplain(repo)
	if scope == nil {
		res.addReason(fmt.Sprintf("no policy scope matches repository %s", repo))
		return res, nil
	}
	res.Level, res.OnUntrusted, res.Threshold = scope.Level, scope.OnUntrusted, scope.Threshold
	res.Scope = pattern
	if scope.Level == LevelSkip {
		res.Verdict = VerdictSkipped
		res.addReason("scope level is skip: not verified")
		return res, nil
	}

	ropts := registry.Options(ctx, v.transport, v.remote...)
	digest, err := v.resolve(ctx, r, ropts)
	if err != nil {
		if registry.IsNotFound(err) {
			res.addReason(fmt.Sprintf("%s not found in the registry", ref))
			return res, nil
		}
		res.Verdict = VerdictInconclusive
		res.addReason(fmt.Sprintf("resolving %s: %v", ref, err))
		return res, nil
	}
	res.Digest = digest.String()

	sigs, err := signature.ReadLegacy(ctx, r.Context(), digest, ropts...)
	if err != nil {
		if errors.Is(err, signature.ErrTooManySignatures) {
			res.addReason(err.Error())
			return res, nil
		}
		res.Verdict = VerdictInconclusive
		res.addReason(err.Error())
		return res, nil
	}
	v.decide(res, scope, digest, sigs)
	return res, nil
}

// resolve returns the manifest digest ref names: the digest itself for a
// digest reference (no request), else one HEAD request.
func (v *Verifier) resolve(ctx context.Context, r name.Reference, ropts []remote.Option) (v1.Hash, error) {
	if d, ok := r.(name.Digest); ok {
		return v1.NewHash(d.DigestStr())
	}
	desc, err := remote.Head(r, ropts...)
	if err != nil {
		return v1.Hash{}, err
	}
	return desc.Digest, nil
}

// decide checks each signature against the scope and fills in the verdict.
func (v *Verifier) decide(res *Result, scope *Scope, digest v1.Hash, sigs []signature.Signature) {
	if len(sigs) == 0 {
		res.addReason("no signatures found")
	}
	signed := map[string]bool{} // allowed builders with a counting signature
	inconclusive := false
	for _, s := range sigs {
		signer, why := v.check(scope, res.Repository, digest, s)
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

// check decides whether one signature counts for digest in repository repo
// under scope. It returns the signer when it does, else the reason.
func (v *Verifier) check(scope *Scope, repo string, digest v1.Hash, s signature.Signature) (*Signer, string) {
	if s.Err != nil {
		return nil, s.Err.Error()
	}
	b, key := v.keyFor(scope, s.Payload, s.Signature)
	if b == nil {
		return nil, "not signed by any key in the policy"
	}
	if v.policy.IsRevoked(key.ID) {
		return nil, fmt.Sprintf("signed by builder %s with revoked key %s", b.Name, key.ID)
	}
	if !slices.Contains(scope.Builders, b.Name) {
		return nil, fmt.Sprintf("signed by builder %s, which is not allowed for %s", b.Name, repo)
	}
	p, err := signature.ParsePayload(s.Payload)
	if err != nil {
		return nil, fmt.Sprintf("signed payload is invalid: %v", err)
	}
	if got := p.Digest(); got != digest {
		return nil, fmt.Sprintf("signature is for digest %s, not %s (copied from another manifest)", got, digest)
	}
	if signedRepo, ok := identityRepository(p.Critical.Identity.DockerReference); !ok || signedRepo != repo {
		return nil, fmt.Sprintf("signature is for repository %q, not %s (copied from another repository)", p.Critical.Identity.DockerReference, repo)
	}
	ann := p.Annotations()
	signer := &Signer{Builder: b.Name, KeyID: key.ID, Format: string(s.Format), Annotations: ann}
	if created, ok := ann[signature.AnnotationCreated]; ok {
		t, err := time.Parse(time.RFC3339, created)
		if err != nil {
			return nil, fmt.Sprintf("signed creation time %q is not RFC 3339", created)
		}
		signer.SignedAt = t.UTC().Format(time.RFC3339)
		now := v.now()
		if t.After(now.Add(ClockSkew)) {
			return nil, fmt.Sprintf("signed creation time %s is in the future", signer.SignedAt)
		}
		if scope.MaxAge > 0 && now.Sub(t) > scope.MaxAge {
			return nil, fmt.Sprintf("signed %s ago, older than maxAge %s", now.Sub(t).Round(time.Second), scope.MaxAge)
		}
	} else if scope.MaxAge > 0 {
		return nil, "signature has no signed creation time, and the scope sets maxAge"
	}
	if why := matchAnnotations(scope.Annotations, ann); why != "" {
		return nil, why
	}
	return signer, ""
}

// keyFor finds the builder and key whose public key verifies sig over
// payload. The scope's allowed builders are tried first.
func (v *Verifier) keyFor(scope *Scope, payload, sig []byte) (*Builder, *Key) {
	try := func(b *Builder) *Key {
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
	if r, err := CanonicalRepository(ref); err == nil {
		return r, true
	}
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return "", false
	}
	r, err := CanonicalRepository(parsed.Context().Name())
	return r, err == nil
}
