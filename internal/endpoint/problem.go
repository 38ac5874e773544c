package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
)

// Kind is what kind of Problem kept content from BuildKit.
type Kind int

const (
	// Mismatch: the registry served other content than the digest names
	// (other bytes, or more or fewer bytes than the verified descriptor
	// says). Verification failed: an attack or corruption.
	Mismatch Kind = iota + 1
	// NotFound: the registry says it does not have the content.
	NotFound
	// Unavailable: the registry could not be asked or did not answer
	// (network, timeout, 5xx, refused credentials, a body over the size
	// limit). Inconclusive.
	Unavailable
)

func (k Kind) String() string {
	switch k {
	case Mismatch:
		return "mismatch"
	case NotFound:
		return "not found"
	case Unavailable:
		return "unavailable"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Problem is content the Server refused to pass on, and why.
type Problem struct {
	// Cache is the verified cache the request was for, REPO@sha256:… as
	// it was given to Add.
	Cache string
	// Digest is the manifest or blob that was asked for.
	Digest v1.Hash
	Kind   Kind
	// Reason says what happened, for people, e.g. "the registry served
	// bytes for sha256:… that hash to sha256:…". It never holds
	// credentials or tokens.
	Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s %s: %s", p.Cache, p.Kind, p.Digest, p.Reason)
}

// refusal is why content was not served: the Problem it is recorded as.
type refusal struct {
	kind   Kind
	reason string
}

func (r *refusal) Error() string { return r.kind.String() + ": " + r.reason }

func mismatch(format string, args ...any) *refusal {
	return &refusal{kind: Mismatch, reason: fmt.Sprintf(format, args...)}
}

// errStalled is why a streamed blob request was canceled: no byte within
// the request timeout.
var errStalled = errors.New("the registry sent nothing within the request timeout")

// classify turns an upstream request's error into a refusal. Its reason
// names what went wrong without the request's URL, whose query may hold a
// signed redirect's credentials.
func classify(err error) *refusal {
	var r *refusal
	if errors.As(err, &r) {
		return r
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		reason := fmt.Sprintf("the registry answered %d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
		var codes []string
		for _, d := range terr.Errors {
			codes = append(codes, string(d.Code))
		}
		if len(codes) > 0 {
			reason += " (" + strings.Join(codes, ", ") + ")"
		}
		if registry.IsNotFound(err) {
			return &refusal{kind: NotFound, reason: reason}
		}
		return &refusal{kind: Unavailable, reason: reason}
	}
	switch {
	case errors.Is(err, errStalled):
		return &refusal{kind: Unavailable, reason: errStalled.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &refusal{kind: Unavailable, reason: "the registry did not answer within the request timeout"}
	case errors.Is(err, registry.ErrBodyTooLarge):
		return &refusal{kind: Unavailable, reason: fmt.Sprintf("the registry sent more than %d bytes", registry.MaxResponseBody)}
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return &refusal{kind: Unavailable, reason: fmt.Sprintf("%s: %v", uerr.Op, uerr.Err)}
	}
	return &refusal{kind: Unavailable, reason: err.Error()}
}
