package trustpolicy

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/docker-trustcache/docker-trustcache/keys"
)

// Level says how strictly a scope's caches are verified.
type Level string

const (
	// LevelStrict passes a cache on to the build only when it is verified.
	// It is the default.
	LevelStrict Level = "strict"
	// LevelAudit verifies and reports, but passes the cache on either way.
	LevelAudit Level = "audit"
	// LevelSkip does not verify the scope's caches at all.
	LevelSkip Level = "skip"
)

// OnUntrusted says what happens to a build whose cache is not trusted.
type OnUntrusted string

const (
	// Drop removes the cache from the build, which runs without it.
	// It is the default.
	Drop OnUntrusted = "drop"
	// Fail fails the build.
	Fail OnUntrusted = "fail"
)

// Signature formats a policy may ask `sign` to write.
const (
	// SignatureFormatLegacy is cosign v2's simple-signing payload in a
	// sha256-<hex>.sig tag. It is the default.
	SignatureFormatLegacy = "legacy"
	// SignatureFormatBundle is cosign v3's sigstore bundle as an OCI 1.1
	// referrer.
	SignatureFormatBundle = "bundle"
)

// Version is the only policy file version this package reads.
const Version = 1

// maxPolicySize bounds the policy file Load reads.
const maxPolicySize = 1 << 20

// Key is one public key of a builder.
type Key struct {
	// ID is the key id, "sha256:" + hex SHA-256 of the PKIX DER.
	ID string
	// Public is the key itself.
	Public crypto.PublicKey
	// Ref is the key reference as written in the policy file: a path, inline
	// PEM text or env://VAR. Use Display to name the key in a message.
	Ref string
}

// Display names the key reference in a message without echoing inline key
// material.
func (k Key) Display() string { return keys.DescribeRef(k.Ref) }

// Builder is a named builder and the keys it signs with. A builder has more
// than one key while a key is being rotated.
type Builder struct {
	Name string
	Keys []Key
	// Identity is the CI identity of a keyless builder (identity.go); nil
	// for a builder of keys only.
	Identity *Identity
	// Line is the line of the builder in the policy file.
	Line int
}

// Scope is the rule for a set of cache repositories.
type Scope struct {
	// Repositories are the repository patterns as written in the file:
	// names or globs, where "*" matches within one path segment and "**"
	// across segments. They are compared after canonicalization (see
	// CanonicalRepository).
	Repositories []string
	// Builders names the builders allowed to sign caches of this scope.
	Builders []string
	// Threshold is how many distinct allowed builders must have signed.
	// It defaults to 1.
	Threshold int
	// Level defaults to LevelStrict.
	Level Level
	// OnUntrusted defaults to Drop.
	OnUntrusted OnUntrusted
	// MaxAge is how old a signature may be to count; 0 means no limit.
	MaxAge time.Duration
	// Annotations maps a signed annotation key to a glob its value must
	// match (doublestar syntax, "/" separates segments).
	Annotations map[string]string
	// AcceptUnboundBundles lets a sigstore bundle whose signed annotations do
	// not name the repository count. Default false: such a bundle could have
	// been copied from another repository.
	AcceptUnboundBundles bool
	// Provenance is the scope's requireProvenance rule (verify/provenance.go);
	// the zero value requires none.
	Provenance ProvenanceRule
	// Fallback says what a tag whose digest is not trusted yields
	// (verify/fallback.go): FallbackLastTrusted or FallbackNone; "" is
	// the default, FallbackLastTrusted.
	Fallback FallbackMode
	// Line is the line of the scope in the policy file.
	Line int
}

// Policy is a parsed and validated trust policy.
type Policy struct {
	// File is the policy's path as given to Parse or Load.
	File string
	// Digest is "sha256:<hex>" of the file's bytes.
	Digest  string
	Version int
	// Builders in file order; names and key ids are unique.
	Builders []Builder
	// Scopes in file order; a repository pattern appears in one scope only.
	Scopes []Scope
	// Revoked key ids are never accepted, whichever builder lists them.
	Revoked []string
	// AllowUnsignedTypes are cache types that registry signatures cannot
	// cover (local, gha, s3, azblob) and that builds may keep unverified.
	AllowUnsignedTypes []string
	// SignatureFormat is what `sign` writes by default: SignatureFormatLegacy
	// or SignatureFormatBundle.
	SignatureFormat string
	// RequireVerifiedBytes refuses to build when a verified cache cannot
	// reach BuildKit through the verified content endpoint (a builder whose
	// BuildKit cannot reach this host's loopback), instead of passing it on
	// pinned by digest only.
	RequireVerifiedBytes bool
	// Frontends are the frontend images builds may run inside BuildKit
	// ("# syntax=", BUILDKIT_SYNTAX, gateway.v0), each
	// "CANONICAL-REPOSITORY@sha256:HEX": see AllowsFrontend.
	Frontends []string
	// TrustedRoot is the sigstore trusted root file keyless builders are
	// verified against, as written (relative to the policy file); "" for
	// none (keyless.go).
	TrustedRoot string
	// Keyless is the trusted root, loaded; nil without one.
	Keyless *KeylessRoot
}

// unsignedTypes are the cache types AllowUnsignedTypes may name.
var unsignedTypes = []string{"local", "gha", "s3", "azblob"}

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy %q: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("reading policy %q: %w", path, err)
	}
	if len(data) > maxPolicySize {
		return nil, fmt.Errorf("reading policy %q: larger than %d bytes", path, maxPolicySize)
	}
	return Parse(path, data)
}

// Parse parses and validates a policy file. name is the file's path:
// it names the file in errors, and relative key files are read from its
// directory. On failure the error lists every problem found, each a
// *Error (see Errors), joined with errors.Join.
func Parse(name string, data []byte) (*Policy, error) {
	p, err := parsePolicy(name, data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if p.Keyless != nil {
		// The trusted root decides as much as the policy: a verdict
		// remembered under the policy's digest (the ledger) must not
		// outlive a change to it.
		sum = sha256.Sum256(append(sum[:], p.Keyless.digest...))
	}
	p.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return p, nil
}

// Builder returns the builder with the given name.
func (p *Policy) Builder(name string) (*Builder, bool) {
	for i := range p.Builders {
		if p.Builders[i].Name == name {
			return &p.Builders[i], true
		}
	}
	return nil, false
}

// KeyOwner returns the builder that holds the key with the given id, and
// the key. Revoked keys are returned too; check IsRevoked.
func (p *Policy) KeyOwner(keyID string) (*Builder, *Key, bool) {
	for i := range p.Builders {
		b := &p.Builders[i]
		for j := range b.Keys {
			if b.Keys[j].ID == keyID {
				return b, &b.Keys[j], true
			}
		}
	}
	return nil, nil, false
}

// IsRevoked reports whether the policy revokes the key id (or, for a
// keyless signature, the certificate's SHA-256 or its key's id).
func (p *Policy) IsRevoked(keyID string) bool {
	return slices.Contains(p.Revoked, keyID)
}

// AllowsUnsigned reports whether builds may keep caches of the given type
// (local, gha, s3, azblob), which registry signatures cannot cover.
func (p *Policy) AllowsUnsigned(cacheType string) bool {
	return slices.Contains(p.AllowUnsignedTypes, cacheType)
}

// Error is one problem in a policy file. Line and Column are 1-based;
// 0 means unknown. Field is the path of the field, such as
// "scopes[1].threshold" (indexes count from 0); empty when the problem is
// not in one field (a YAML syntax error).
type Error struct {
	File         string
	Line, Column int
	Field, Msg   string
}

// Error formats the problem as "file:line:column: field: message", leaving
// out the parts that are unknown.
func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
		if e.Column > 0 {
			s += ":" + strconv.Itoa(e.Column)
		}
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Msg
}

// Errors returns every *Error in err, which may be joined
// (errors.Join), in order.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if pe, ok := err.(*Error); ok {
			out = append(out, pe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

var _ error = (*Error)(nil)

// errorsJoin is errors.Join of the problems, or nil.
func errorsJoin(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}

// FallbackMode is a scope's fallback setting.
type FallbackMode string

const (
	// FallbackLastTrusted uses the last trusted digest of a tag whose
	// digest is not. It is the default.
	FallbackLastTrusted FallbackMode = "lastTrusted"
	// FallbackNone turns the fallback off: the tag's digest is the verdict.
	FallbackNone FallbackMode = "none"
)
