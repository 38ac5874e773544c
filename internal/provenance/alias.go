// Package provenance is the old import path of the provenance record
// format, now the public package provenance (github.com/docker-trustcache/
// docker-trustcache/provenance): verify's public results carry its types.
//
// Deprecated: import provenance. This path only keeps the branches that
// were written against it building while they are merged; it goes once
// none imports it (git grep internal/provenance).
package provenance

import "github.com/docker-trustcache/docker-trustcache/provenance"

// The record's types, constants and functions, as package provenance
// defines them.
type (
	Cache     = provenance.Cache
	Policy    = provenance.Policy
	Predicate = provenance.Predicate
	Signer    = provenance.Signer
	Source    = provenance.Source
	Statement = provenance.Statement
	Subject   = provenance.Subject
)

const (
	ActionUsed             = provenance.ActionUsed
	ActionDropped          = provenance.ActionDropped
	ActionPassed           = provenance.ActionPassed
	ActionBlocked          = provenance.ActionBlocked
	GuaranteeVerifiedBytes = provenance.GuaranteeVerifiedBytes
	GuaranteeDigestPin     = provenance.GuaranteeDigestPin
	MaxSize                = provenance.MaxSize
	PayloadType            = provenance.PayloadType
	PredicateType          = provenance.PredicateType
	StatementType          = provenance.StatementType
)

// New is provenance.New.
func New(subjects []Subject, p Predicate) Statement { return provenance.New(subjects, p) }

// Parse is provenance.Parse.
func Parse(data []byte) (*Statement, error) { return provenance.Parse(data) }

// NewSubject is provenance.NewSubject.
func NewSubject(repo, digest string) (Subject, error) { return provenance.NewSubject(repo, digest) }
