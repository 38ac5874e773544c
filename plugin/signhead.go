package plugin

import (
	"context"
	"fmt"
	"io"
	"maps"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// What signing REPO:TAG leaves for the fallback (docs/fallback.md): the
// signed annotation naming the tag, and the tag's signed head record.

// tagOf returns the tag r names, "" for a digest reference.
func tagOf(r name.Reference) string {
	if t, ok := r.(name.Tag); ok {
		return t.TagStr()
	}
	return ""
}

// withTag returns ann with the tag annotation set to tag (a copy; ann
// itself when tag is ""). A tag annotation the user gave must name the
// same tag.
func withTag(ann map[string]string, tag, ref string) (map[string]string, error) {
	if tag == "" {
		return ann, nil
	}
	if v, ok := ann[signature.AnnotationTag]; ok && v != tag {
		return nil, usagef("annotation %s=%q contradicts the tag of %s", signature.AnnotationTag, v, ref)
	}
	out := maps.Clone(ann)
	if out == nil {
		out = map[string]string{}
	}
	out[signature.AnnotationTag] = tag
	return out, nil
}

// writeHead makes digest the signed head of repo:tag, after it was signed
// there. Keyless signers write no head (their digests are found by the
// slower listing). A head that cannot be written costs only the fast
// fallback lookup: a warning, not a failure.
func writeHead(ctx context.Context, errOut io.Writer, s signature.Signer, p *trustpolicy.Policy, repo name.Repository, tag string, digest v1.Hash, ropts []remote.Option) {
	if tag == "" || s.Key == nil {
		return
	}
	_, _, err := signature.WriteHead(ctx, s.Key, s.Builder, repo, tag, digest, signature.HeadOptions{Trusted: headTrust(p)}, ropts...)
	if err != nil {
		fmt.Fprintf(errOut, "WARNING: %s:%s signed, but its head record was not written (fallback lookups of the tag are slower): %s\n",
			printable(repo.Name()), printable(tag), printable(err.Error()))
	}
}

// headTrust is whom a head already in place must be signed by for its
// sequence to be continued: any key of the policy's builders that is not
// revoked; without a policy, the signer's own key (nil).
func headTrust(p *trustpolicy.Policy) func(payload, sig []byte) bool {
	if p == nil {
		return nil
	}
	return func(payload, sig []byte) bool {
		for _, b := range p.Builders {
			for _, k := range b.Keys {
				if !p.IsRevoked(k.ID) && keys.VerifySignature(k.Public, payload, sig) == nil {
					return true
				}
			}
		}
		return false
	}
}
