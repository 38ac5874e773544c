package gateway

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// Frontends buildkitd v0.34.2 has built in, and the frontend attributes
// that choose a frontend image (BuildKit's frontend/dockerfile/builder and
// frontend/gateway).
const (
	frontendDockerfile = "dockerfile.v0"
	frontendGateway    = "gateway.v0"
	// attrSource is gateway.v0's frontend image (frontend.KeySource).
	attrSource = "source"
	// attrCmdline, when present at all, makes the Dockerfile frontend
	// build with itself: it no longer follows BUILDKIT_SYNTAX or a
	// "# syntax=" line to a frontend image (builder.Build).
	attrCmdline = "cmdline"
	// attrSyntax is BUILDKIT_SYNTAX, which the Dockerfile frontend follows
	// before a "# syntax=" line.
	attrSyntax = "build-arg:BUILDKIT_SYNTAX"
	// attrContext prefixes a named context, which replaces an image of
	// that name: gateway.v0 looks its source up among them first
	// (dockerui.NamedContext).
	attrContext = "context:"
)

// frontendRequest is the frontend part of a Solve request.
type frontendRequest struct {
	name  string            // the Frontend field; "" for a plain LLB definition
	attrs map[string]string // frontend attributes, the last of a key winning
}

// frontend decodes the frontend and its attributes from req.
func (s shape) frontend(req []byte) (frontendRequest, error) {
	fr := frontendRequest{attrs: map[string]string{}}
	if len(req) > MaxRequestSize {
		return fr, malformed("request of %d bytes exceeds %d", len(req), MaxRequestSize)
	}
	fs, err := fields(req)
	if err != nil {
		return fr, err
	}
	for _, f := range fs {
		switch f.num {
		case s.frontendField:
			if err := bytesField(f, "Frontend"); err != nil {
				return fr, err
			}
			if fr.name, err = str(f.val, "Frontend"); err != nil {
				return fr, err
			}
		case s.attrs:
			if err := bytesField(f, s.attrsName); err != nil {
				return fr, err
			}
			k, v, err := mapEntry(f.val, s.attrsName)
			if err != nil {
				return fr, err
			}
			ks, err := str(k, s.attrsName+" key")
			if err != nil {
				return fr, err
			}
			if fr.attrs[ks], err = str(v, s.attrsName+"["+ks+"]"); err != nil {
				return fr, err
			}
		}
	}
	return fr, nil
}

// frontendDecision is what the gateway does about a request's frontend.
type frontendDecision struct {
	frontend   string
	image      string // the frontend image that runs inside buildkitd, if any
	where      string // where image was named
	addCmdline bool   // set the cmdline attribute: "# syntax=" is not followed
	refusal    string // why the request is refused; "" when it goes on
}

// decideFrontend decides which frontend a request may run inside
// buildkitd. A frontend image runs there, and the calls it makes to
// BuildKit (cache imports among them) never cross the gateway, so only an
// image the policy allows, pinned by digest, may run. The built-in
// Dockerfile frontend runs, with the cmdline attribute set so that it
// does not follow a "# syntax=" line (which the gateway cannot read: the
// Dockerfile comes over the session) to an image; BUILDKIT_SYNTAX, which
// the gateway reads, is decided as an image.
func decideFrontend(method string, fr frontendRequest, p *trustpolicy.Policy) frontendDecision {
	d := frontendDecision{frontend: fr.name}
	_, hasCmdline := fr.attrs[attrCmdline]
	switch fr.name {
	case "":
		return d
	case frontendDockerfile:
	case frontendGateway:
		src := fr.attrs[attrSource]
		// Control.Solve turns gateway.v0 with source dockerfile.v0 into
		// the built-in frontend unless a named context replaces it
		// (llbsolver.Solver.Solve); a frontend's own LLBBridge.Solve does
		// not, and would pull an image of that name.
		if src == frontendDockerfile && method == "/moby.buildkit.v1.Control/Solve" && !hasContextFor(fr.attrs, frontendDockerfile) {
			break
		}
		d.image, d.where = src, "gateway.v0 source"
		d.refusal = imageRefusal(fr.attrs, src, p)
		d.addCmdline = !hasCmdline
		return d
	default:
		d.refusal = fmt.Sprintf("frontend %q is not one the gateway can vouch for: it lets through dockerfile.v0, plain LLB, and gateway.v0 with a frontend image the policy's frontends list allows", fr.name)
		return d
	}
	// The Dockerfile frontend.
	if hasCmdline {
		return d // it builds with itself: BUILDKIT_SYNTAX and "# syntax=" are not followed
	}
	if syn, ok := fr.attrs[attrSyntax]; ok {
		img, _, _ := strings.Cut(strings.TrimSpace(syn), " ")
		d.image, d.where = img, "BUILDKIT_SYNTAX"
		d.refusal = imageRefusal(fr.attrs, img, p)
		return d
	}
	d.addCmdline = true
	return d
}

// imageRefusal says why frontend image img may not run, "" if it may.
func imageRefusal(attrs map[string]string, img string, p *trustpolicy.Policy) string {
	if !p.AllowsFrontend(img) {
		why := "the policy's frontends list does not name it"
		if !strings.Contains(img, "@sha256:") {
			why = "it is not pinned by digest"
		}
		return fmt.Sprintf("frontend image %q is not allowed: %s. A frontend image runs inside buildkitd, where the gateway cannot see the cache imports it asks for: list it pinned by digest in the policy (frontends: [REPOSITORY@sha256:…]) and name it so, or build with the built-in Dockerfile frontend (no BUILDKIT_SYNTAX; a \"# syntax=\" line is not followed through the gateway)", img, why)
	}
	for k := range attrs {
		if n, ok := contextName(k); ok && sameRepository(n, img) {
			return fmt.Sprintf("frontend image %q would be replaced by the named context %q: a named context can swap an allowed frontend image for any other; drop it", img, k)
		}
	}
	return ""
}

// contextName is the name of named-context attribute k ("context:NAME" or
// "context:NAME::PLATFORM").
func contextName(k string) (string, bool) {
	n, ok := strings.CutPrefix(k, attrContext)
	if !ok {
		return "", false
	}
	n, _, _ = strings.Cut(n, "::")
	return n, true
}

// hasContextFor reports whether a named context is given for n exactly.
func hasContextFor(attrs map[string]string, n string) bool {
	for k := range attrs {
		if c, ok := contextName(k); ok && c == n {
			return true
		}
	}
	return false
}

// sameRepository reports whether context name n may stand for image img:
// both name the same repository, or n is not a reference the gateway can
// read (then it may).
func sameRepository(n, img string) bool {
	a, err := name.ParseReference(strings.ToLower(n))
	if err != nil {
		return true
	}
	b, err := name.ParseReference(strings.ToLower(img))
	if err != nil {
		return true
	}
	return a.Context().Name() == b.Context().Name()
}

// withCmdline returns req with the frontend attribute cmdline added
// (empty: its presence is what the Dockerfile frontend checks).
func (s shape) withCmdline(req []byte) []byte {
	out := make([]byte, 0, len(req)+16)
	out = append(out, req...)
	return appendBytesField(out, s.attrs, mapEntryBytes(attrCmdline, ""))
}
