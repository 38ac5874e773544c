package signature

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"maps"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/keys"
)

// Signer signs manifest digests as one builder.
type Signer struct {
	Key     crypto.Signer    // the builder's key; nil when Keyless is set
	Keyless KeylessSigner    // keyless signing (certificate + timestamp) instead of Key
	Builder string           // written as the "builder" annotation; empty: none
	Now     func() time.Time // the "created" annotation; nil: time.Now
	// MaxAge is how old an equivalent signature already attached (this
	// key, this digest, repository and annotations) may be and still make
	// signing a no-op. An older one — or one dated beyond ClockSkew in the
	// future, or with no readable creation time while MaxAge is set — would
	// not count for a verifier with that maxAge: a fresh signature is made,
	// and in the .sig tag it replaces the aged one (a future-dated one is
	// left in place: see agedSet). 0: any age is kept.
	MaxAge time.Duration
}

// ClockSkew is how far in the future a signature's creation time may lie
// and still count: verify.ClockSkew, which the verifier applies.
const ClockSkew = 5 * time.Minute

// Attachment is what AttachFresh did.
type Attachment struct {
	// Signature stands for this signer on the digest: the new one, or the
	// equivalent fresh one already attached (Added false).
	Signature Signature
	Added     bool
	// Aged is the signed creation time of the newest equivalent signature
	// by this key that was attached already but too old (or too new) to
	// count under MaxAge; zero when none was. Replaced says how many such
	// layers were removed from the .sig tag (a bundle referrer is left in
	// place: an aged one no longer counts, and the fresh one makes the
	// next signing a no-op).
	Aged     time.Time
	Replaced int
	// Refreshed is true when such an aged signature was there and a fresh
	// one was added (Aged is zero when the aged one had no readable time).
	Refreshed bool
}

// Fresh reports whether sig, a signature this signer made, counts under
// s.MaxAge now (and not dated beyond ClockSkew in the future), and its
// signed creation time when it has a readable one.
func (s Signer) Fresh(sig Signature) (bool, time.Time) {
	var ann map[string]string
	switch sig.Format {
	case FormatBundle:
		st, err := ParseStatement(sig.Payload)
		if err != nil {
			return false, time.Time{}
		}
		ann = st.Annotations()
	default:
		p, err := ParsePayload(sig.Payload)
		if err != nil {
			return false, time.Time{}
		}
		ann = p.Annotations()
	}
	return s.fresh(ann)
}

func (s Signer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// fresh reports whether an equivalent signature with signed annotations
// ann still counts under s.MaxAge, and its creation time when readable.
func (s Signer) fresh(ann map[string]string) (bool, time.Time) {
	created, ok := ann[AnnotationCreated]
	t, err := time.Parse(time.RFC3339, created)
	if !ok || err != nil {
		return s.MaxAge == 0, time.Time{}
	}
	now := s.now()
	if t.After(now.Add(ClockSkew)) {
		return false, t
	}
	return s.MaxAge == 0 || now.Sub(t) <= s.MaxAge, t
}

// agedSet collects the equivalent signatures that do not count under
// MaxAge: seen says there was one; sigs are those to replace — the aged
// ones only. One dated in the future (a host whose clock is ahead, or this
// signer's behind) is not removed: it may count for verifiers whose clock
// agrees with its signer's, and a signer with a wrong clock must not
// delete good signatures. A fresh one is added beside it.
type agedSet struct {
	seen   bool
	newest time.Time
	sigs   []Signature
}

func (a *agedSet) add(s Signer, sig Signature, t time.Time) {
	a.seen = true
	if t.After(a.newest) {
		a.newest = t
	}
	if !t.After(s.now().Add(ClockSkew)) {
		a.sigs = append(a.sigs, sig)
	}
}

// annotations returns the signed annotations: a copy of extra plus builder
// and created.
func (s Signer) annotations(extra map[string]string) map[string]string {
	now := s.now
	ann := maps.Clone(extra)
	if ann == nil {
		ann = map[string]string{}
	}
	if s.Builder != "" {
		ann[AnnotationBuilder] = s.Builder
	}
	ann[AnnotationCreated] = now().UTC().Format(time.RFC3339)
	return ann
}

// Sign signs digest in repo with the signer's key and attaches the signature
// in the .sig tag scheme, with annotations (builder and created are added).
// A signature by the same key over the same digest, repository and
// annotations already there, fresh under s.MaxAge, makes it a no-op:
// added=false.
func (s Signer) Sign(ctx context.Context, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (added bool, err error) {
	a, err := s.signLegacy(ctx, repo, digest, annotations, opts...)
	return a.Added, err
}

func (s Signer) signLegacy(ctx context.Context, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (Attachment, error) {
	if s.Keyless != nil {
		sig, added, err := s.signLegacyKeyless(ctx, repo, digest, annotations, opts...)
		return Attachment{Signature: sig, Added: added}, err
	}
	ann := s.annotations(annotations)
	payload, err := NewPayload(repo.Name(), digest, ann)
	if err != nil {
		return Attachment{}, err
	}
	sig, err := keys.Sign(s.Key, payload)
	if err != nil {
		return Attachment{}, fmt.Errorf("signing %s@%s: %w", repo.Name(), digest, err)
	}
	kept := Signature{Format: FormatLegacy, Source: SigTag(repo, digest).TagStr() + " (signed here)", Payload: payload, Signature: sig}
	var aged agedSet
	same := func(existing Signature) bool {
		if keys.VerifySignature(s.Key.Public(), existing.Payload, existing.Signature) != nil {
			return false
		}
		p, err := ParsePayload(existing.Payload)
		if err != nil || p.Digest() != digest || p.Critical.Identity.DockerReference != repo.Name() {
			return false
		}
		if !sameButCreated(p.Annotations(), ann) {
			return false
		}
		if ok, t := s.fresh(p.Annotations()); !ok {
			aged.add(s, existing, t)
			return false
		}
		kept = existing
		return true
	}
	replaced := 0
	replace := func(existing Signature) bool {
		for _, a := range aged.sigs {
			if bytes.Equal(a.Payload, existing.Payload) && bytes.Equal(a.Signature, existing.Signature) {
				replaced++
				return true
			}
		}
		return false
	}
	added, err := AppendLegacy(ctx, repo, digest, payload, sig, AppendOptions{Same: same, Replace: replace}, opts...)
	a := Attachment{Signature: kept, Added: added}
	if added {
		a.Aged, a.Replaced, a.Refreshed = aged.newest, replaced, aged.seen
	}
	return a, err
}

// SignFormat signs digest in repo in the given format: FormatLegacy (the
// .sig tag, cosign v2's default) or FormatBundle (a sigstore bundle
// referrer, cosign v3's default).
func (s Signer) SignFormat(ctx context.Context, format Format, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (added bool, err error) {
	_, added, err = s.Attach(ctx, format, repo, digest, annotations, opts...)
	return added, err
}

// Attach signs digest in repo in the given format, as SignFormat does, and
// returns the signature that stands for this signer there: the new one, or
// the equivalent one already attached (added=false) — what a reader of the
// registry gets (internal/recordsigned checks it against a policy).
func (s Signer) Attach(ctx context.Context, format Format, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (sig Signature, added bool, err error) {
	a, err := s.AttachFresh(ctx, format, repo, digest, annotations, opts...)
	return a.Signature, a.Added, err
}

// AttachFresh is Attach, and also says whether an equivalent signature by
// this key was there but too old to count under s.MaxAge (Attachment.Aged),
// so that the caller can say why it signed again.
func (s Signer) AttachFresh(ctx context.Context, format Format, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (Attachment, error) {
	switch format {
	case FormatLegacy, "":
		return s.signLegacy(ctx, repo, digest, annotations, opts...)
	case FormatBundle:
		return s.signBundle(ctx, repo, digest, annotations, opts...)
	}
	return Attachment{}, fmt.Errorf("unknown signature format %q (want legacy or bundle)", format)
}

// sameButCreated reports whether two signed annotation sets are the same
// but for the signing time: a signature made again of the same content.
func sameButCreated(got, want map[string]string) bool {
	got, want = maps.Clone(got), maps.Clone(want)
	delete(got, AnnotationCreated)
	delete(want, AnnotationCreated)
	return maps.Equal(got, want)
}
