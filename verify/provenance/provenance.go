// Package provenance is the cache provenance record docker trustcache
// writes for every build and bake: an in-toto Statement v1 whose subjects
// are what the build exported (the registry cache manifest and the pushed
// images, by digest) and whose predicate says which caches the build
// imported, how each was verified and what was done with it, under which
// policy, by which trustcache, from which source. docs/provenance.md
// documents every field; this package builds and parses it, and neither
// signs nor fetches anything.
//
// It is public, as the record is: verify's results carry its types
// (RecordResult.Record, ImportResult), and a reader outside trustcache may
// parse a record with it.
package provenance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
)

// PredicateType is the predicate type of the record. It names the schema:
// a change that breaks a reader gets a new version.
const PredicateType = "https://docker-trustcache.dev/cache-provenance/v1"

// StatementType is the in-toto Statement version the record uses.
const StatementType = "https://in-toto.io/Statement/v1"

// PayloadType is the DSSE payload type of a signed record.
const PayloadType = "application/vnd.in-toto+json"

// MaxSize bounds a record Parse reads. A record lists one entry per cache
// import; 1 MiB holds thousands.
const MaxSize = 1 << 20

// Statement is the record: an in-toto Statement v1.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject is one artifact the build exported: Name is the repository,
// Digest {"sha256": HEX} the manifest (or index) digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is what the build imported and under which conditions.
type Predicate struct {
	// Trustcache is the version of docker trustcache that built the record.
	Trustcache string `json:"trustcacheVersion"`
	// Policy is the trust policy the imports were decided by; empty when
	// the build imported no cache and had no policy.
	Policy Policy `json:"policy"`
	// Source is the build's source context as the CI environment tells it;
	// a value no variable tells is absent.
	Source Source `json:"source"`
	// Caches are the build's cache imports (--cache-from; a bake's per
	// target), in the order given.
	Caches []Cache `json:"caches"`
	// BuiltAt is when the build finished (RFC 3339, UTC).
	BuiltAt string `json:"builtAt,omitempty"`
}

// Policy identifies the trust policy.
type Policy struct {
	File string `json:"file,omitempty"`
	// Digest is the policy's fingerprint, sha256:<hex> over the policy
	// file, every key and trusted root it names and its revocations
	// (verify's Policy.Fingerprint(nil)). Records made before it held the
	// SHA-256 of the policy file's bytes alone, which no fingerprint equals.
	Digest string `json:"digest,omitempty"`
}

// Source is the build's source context.
type Source struct {
	Repository string `json:"repository,omitempty"`
	Ref        string `json:"ref,omitempty"`
	Commit     string `json:"commit,omitempty"`
	Run        string `json:"run,omitempty"`
}

// Cache is one cache import and what the build did with it.
type Cache struct {
	Reference string   `json:"reference"`        // the --cache-from as given
	Target    string   `json:"target,omitempty"` // the bake target importing it
	Type      string   `json:"type"`             // registry, local, gha, …
	Digest    string   `json:"digest,omitempty"` // the pinned manifest digest, when one was resolved
	Verdict   string   `json:"verdict,omitempty"`
	Action    string   `json:"action"`
	Guarantee string   `json:"guarantee,omitempty"`
	Signers   []Signer `json:"signers,omitempty"`
}

// Signer is one allowed builder whose signature counted for a cache.
type Signer struct {
	Builder  string `json:"builder"`
	KeyID    string `json:"keyId"`
	SignedAt string `json:"signedAt,omitempty"`
}

// Actions and guarantees a Cache may carry.
const (
	ActionUsed    = "used"
	ActionDropped = "dropped"
	ActionPassed  = "passed"
	ActionBlocked = "blocked"

	GuaranteeVerifiedBytes = "verified-bytes"
	GuaranteeDigestPin     = "digest-pin"
)

// New returns the record for subjects and predicate. A nil Caches is
// written as an empty list.
func New(subjects []Subject, p Predicate) Statement {
	if p.Caches == nil {
		p.Caches = []Cache{}
	}
	if subjects == nil {
		subjects = []Subject{}
	}
	return Statement{Type: StatementType, Subject: subjects, PredicateType: PredicateType, Predicate: p}
}

// NewSubject returns the subject for a manifest digest "sha256:<hex>" in
// repository repo.
func NewSubject(repo, digest string) (Subject, error) {
	hex, ok := bytes.CutPrefix([]byte(digest), []byte("sha256:"))
	if !ok || !sha256Hex.Match(hex) {
		return Subject{}, fmt.Errorf("subject %s: digest %q is not sha256:<64 hex>", repo, digest)
	}
	return Subject{Name: repo, Digest: map[string]string{"sha256": string(hex)}}, nil
}

// Marshal returns the record as JSON, the bytes a DSSE envelope signs.
func (s Statement) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

var sha256Hex = lazyregexp.New(`^[0-9a-f]{64}$`)

// Parse reads a record and checks it: at most MaxSize bytes, one JSON
// object, no unknown fields, an in-toto Statement v1 of PredicateType,
// every subject named with a sha256 digest, every cache with a reference,
// a known action and guarantee, and a digest (when set) of sha256. It
// checks no signature.
func Parse(data []byte) (*Statement, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("provenance record of %d bytes exceeds the %d-byte limit", len(data), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Statement
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding provenance record: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decoding provenance record: trailing data after the JSON value")
	}
	if s.Type != StatementType {
		return nil, fmt.Errorf("statement type is %q, want %q", s.Type, StatementType)
	}
	if s.PredicateType != PredicateType {
		return nil, fmt.Errorf("predicate type is %q, want %q", s.PredicateType, PredicateType)
	}
	for i, sub := range s.Subject {
		if sub.Name == "" {
			return nil, fmt.Errorf("subject %d has no name", i)
		}
		if len(sub.Digest) != 1 || !sha256Hex.MatchString(sub.Digest["sha256"]) {
			return nil, fmt.Errorf("subject %d (%s): digest must be exactly {\"sha256\": <64 hex>}", i, sub.Name)
		}
	}
	if d := s.Predicate.Policy.Digest; d != "" && !isSHA256(d) {
		return nil, fmt.Errorf("policy digest %q is not sha256:<64 hex>", d)
	}
	if t := s.Predicate.BuiltAt; t != "" {
		if _, err := time.Parse(time.RFC3339, t); err != nil {
			return nil, fmt.Errorf("builtAt %q is not RFC 3339", t)
		}
	}
	for i, c := range s.Predicate.Caches {
		if c.Reference == "" {
			return nil, fmt.Errorf("cache %d has no reference", i)
		}
		switch c.Action {
		case ActionUsed, ActionDropped, ActionPassed, ActionBlocked:
		default:
			return nil, fmt.Errorf("cache %d (%s): unknown action %q", i, c.Reference, c.Action)
		}
		switch c.Guarantee {
		case "", GuaranteeVerifiedBytes, GuaranteeDigestPin:
		default:
			return nil, fmt.Errorf("cache %d (%s): unknown guarantee %q", i, c.Reference, c.Guarantee)
		}
		if c.Digest != "" && !isSHA256(c.Digest) {
			return nil, fmt.Errorf("cache %d (%s): digest %q is not sha256:<64 hex>", i, c.Reference, c.Digest)
		}
		for j, sg := range c.Signers {
			if sg.Builder == "" || sg.KeyID == "" {
				return nil, fmt.Errorf("cache %d (%s): signer %d needs builder and keyId", i, c.Reference, j)
			}
		}
	}
	return &s, nil
}

func isSHA256(d string) bool {
	hex, ok := bytes.CutPrefix([]byte(d), []byte("sha256:"))
	return ok && sha256Hex.Match(hex)
}

// SameRecord returns a test of whether a record already attached (its
// statement as data) says exactly what s says but for builtAt: a build
// that records what an earlier one did (the same exports, imports, policy
// and source — a rebuild of the same commit) adds no record. Data that is
// no valid record is not the same.
func (s Statement) SameRecord() func(data []byte) bool {
	want := s
	want.Predicate.BuiltAt = ""
	wantJSON, err := want.Marshal()
	return func(data []byte) bool {
		if err != nil {
			return false
		}
		got, perr := Parse(data)
		if perr != nil {
			return false
		}
		got.Predicate.BuiltAt = ""
		gotJSON, merr := got.Marshal()
		return merr == nil && bytes.Equal(gotJSON, wantJSON)
	}
}
