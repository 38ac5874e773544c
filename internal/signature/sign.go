package signature

import (
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
}

// annotations returns the signed annotations: a copy of extra plus builder
// and created.
func (s Signer) annotations(extra map[string]string) map[string]string {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
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
// annotations (whatever its time) already there makes it a no-op:
// added=false.
func (s Signer) Sign(ctx context.Context, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (added bool, err error) {
	_, added, err = s.signLegacy(ctx, repo, digest, annotations, opts...)
	return added, err
}

func (s Signer) signLegacy(ctx context.Context, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (Signature, bool, error) {
	if s.Keyless != nil {
		return s.signLegacyKeyless(ctx, repo, digest, annotations, opts...)
	}
	ann := s.annotations(annotations)
	payload, err := NewPayload(repo.Name(), digest, ann)
	if err != nil {
		return Signature{}, false, err
	}
	sig, err := keys.Sign(s.Key, payload)
	if err != nil {
		return Signature{}, false, fmt.Errorf("signing %s@%s: %w", repo.Name(), digest, err)
	}
	kept := Signature{Format: FormatLegacy, Source: SigTag(repo, digest).TagStr() + " (signed here)", Payload: payload, Signature: sig}
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
		kept = existing
		return true
	}
	added, err := AppendLegacy(ctx, repo, digest, payload, sig, AppendOptions{Same: same}, opts...)
	return kept, added, err
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
// registry gets (verify.Verifier.RecordSigned checks it against a policy).
func (s Signer) Attach(ctx context.Context, format Format, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (sig Signature, added bool, err error) {
	switch format {
	case FormatLegacy, "":
		return s.signLegacy(ctx, repo, digest, annotations, opts...)
	case FormatBundle:
		return s.signBundle(ctx, repo, digest, annotations, opts...)
	}
	return Signature{}, false, fmt.Errorf("unknown signature format %q (want legacy or bundle)", format)
}

// sameButCreated reports whether two signed annotation sets are the same
// but for the signing time: a signature made again of the same content.
func sameButCreated(got, want map[string]string) bool {
	got, want = maps.Clone(got), maps.Clone(want)
	delete(got, AnnotationCreated)
	delete(want, AnnotationCreated)
	return maps.Equal(got, want)
}
