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
	Key     crypto.Signer
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
	ann := s.annotations(annotations)
	payload, err := NewPayload(repo.Name(), digest, ann)
	if err != nil {
		return false, err
	}
	sig, err := keys.Sign(s.Key, payload)
	if err != nil {
		return false, fmt.Errorf("signing %s@%s: %w", repo.Name(), digest, err)
	}
	same := func(existing Signature) bool {
		if keys.VerifySignature(s.Key.Public(), existing.Payload, existing.Signature) != nil {
			return false
		}
		p, err := ParsePayload(existing.Payload)
		if err != nil || p.Digest() != digest || p.Critical.Identity.DockerReference != repo.Name() {
			return false
		}
		got := p.Annotations()
		delete(got, AnnotationCreated)
		want := maps.Clone(ann)
		delete(want, AnnotationCreated)
		return maps.Equal(got, want)
	}
	return AppendLegacy(ctx, repo, digest, payload, sig, AppendOptions{Same: same}, opts...)
}

// SignFormat signs digest in repo in the given format: FormatLegacy (the
// .sig tag, cosign v2's default) or FormatBundle (a sigstore bundle
// referrer, cosign v3's default).
func (s Signer) SignFormat(ctx context.Context, format Format, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (added bool, err error) {
	switch format {
	case FormatLegacy, "":
		return s.Sign(ctx, repo, digest, annotations, opts...)
	case FormatBundle:
		return s.SignBundle(ctx, repo, digest, annotations, opts...)
	}
	return false, fmt.Errorf("unknown signature format %q (want legacy or bundle)", format)
}
