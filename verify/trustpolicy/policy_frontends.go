package trustpolicy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
)

// sha256DigestRE is a sha256 digest as a frontend image is pinned by.
var sha256DigestRE = lazyregexp.New(`^sha256:[0-9a-f]{64}$`)

// canonicalFrontend returns ref, an image pinned by digest, as
// "CANONICAL-REPOSITORY@sha256:HEX" (a tag next to the digest dropped: the
// digest decides). why is empty when ref is pinned, else says what is
// wrong.
func canonicalFrontend(ref string) (canon, why string) {
	repo, dig, ok := strings.Cut(ref, "@")
	if !ok || !sha256DigestRE.MatchString(dig) {
		return "", "is not pinned by digest: write REPOSITORY@sha256:<64 hex digits> (a tag can be moved to another image)"
	}
	r, err := name.ParseReference(repo)
	if err != nil {
		return "", "is not an image reference: " + err.Error()
	}
	c, err := canonicalRepository(r.Context().String())
	if err != nil {
		return "", "is not an image reference: " + err.Error()
	}
	return c + "@" + dig, ""
}

// AllowsFrontend reports whether the policy lets builds run the frontend
// image ref (a "# syntax=" line, BUILDKIT_SYNTAX, or a gateway.v0
// frontend's source) inside BuildKit: only an image the policy's
// frontends list names, pinned by the same digest.
func (p *Policy) AllowsFrontend(ref string) bool {
	c, why := canonicalFrontend(ref)
	return why == "" && slices.Contains(p.Frontends, c)
}

// frontends reads the frontends list.
func (ps *parser) frontends(f field, p *Policy) {
	for i, n := range ps.sequence(f, "frontends") {
		fp := fmt.Sprintf("frontends[%d]", i)
		s, ok := ps.str(n, fp)
		if !ok {
			continue
		}
		c, why := canonicalFrontend(s)
		if why != "" {
			ps.errorf(n, fp, "%q %s", s, why)
			continue
		}
		if !slices.Contains(p.Frontends, c) {
			p.Frontends = append(p.Frontends, c)
		}
	}
}
