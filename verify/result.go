package verify

import (
	"strings"

	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// Verdict is the outcome of verifying one reference.
type Verdict string

// Verdicts. Untrusted is a verdict about the signatures (missing, bad, not
// enough); Inconclusive means the registry or network failed before a
// verdict could be reached; Missing means the registry answered that the
// tag (or its repository) does not exist: no cache there yet, or deleted —
// nothing to import, which is not an attack on the build. A build may run
// without a cache on any of them; it never uses one on any of them.
const (
	VerdictTrusted      Verdict = "trusted"
	VerdictUntrusted    Verdict = "untrusted"
	VerdictInconclusive Verdict = "inconclusive"
	VerdictMissing      Verdict = "missing"
	VerdictSkipped      Verdict = "skipped" // the scope's level is skip: not verified
)

// Signer is one allowed builder whose signature counted.
type Signer struct {
	Builder     string            `json:"builder"`
	KeyID       string            `json:"keyId"`
	SignedAt    string            `json:"signedAt,omitempty"` // RFC 3339, when the signature says
	Format      string            `json:"format"`             // legacy (.sig tag) or bundle
	Annotations map[string]string `json:"annotations,omitempty"`
	// Keyless signatures: the certificate's SHA-256 ("sha256:<hex>" of its
	// DER), subject and OIDC issuer. KeyID is then the id of the
	// certificate's short-lived key, and SignedAt the verified time.
	Certificate string `json:"certificate,omitempty"`
	Subject     string `json:"subject,omitempty"`
	Issuer      string `json:"issuer,omitempty"`
}

// Result is the verification result of one reference. The text and JSON
// output of "docker trustcache verify" both render it.
type Result struct {
	Reference   string                  `json:"reference"`
	Repository  string                  `json:"repository"`
	Digest      string                  `json:"digest"`
	Trusted     bool                    `json:"trusted"`
	Verdict     Verdict                 `json:"verdict"`
	Level       trustpolicy.Level       `json:"level"`
	OnUntrusted trustpolicy.OnUntrusted `json:"onUntrusted"`
	Scope       string                  `json:"scope,omitempty"` // the repository pattern that matched
	Threshold   int                     `json:"threshold,omitempty"`
	Signers     []Signer                `json:"signers"`
	Reasons     []string                `json:"reasons"`
	// Missing is true when the verdict is VerdictMissing: the tag does not
	// exist in the registry.
	Missing bool `json:"missing,omitempty"`
	// FromLedger is true when the verdict came from the local ledger of
	// digests this host verified before, without fetching signatures.
	FromLedger bool `json:"fromLedger,omitempty"`
	// Provenance is what the scope's requireProvenance rule found: the
	// records of the digest and the re-verification of their imports
	// (verify/provenance.go); nil when the rule did not run.
	Provenance *ProvenanceNode `json:"provenance,omitempty"`
	// Fallback is set when the tag's own digest was not used and the last
	// trusted digest of the tag was (verify/fallback.go, docs/fallback.md):
	// Digest, Signers and the verdict are then the fallback digest's, and
	// Fallback says what the tag had and why it was not used.
	Fallback *Fallback `json:"fallback,omitempty"`

	// Explain only: every rule applied to every signature, and the scope
	// patterns that matched but lost to a more specific one.
	Checks      []SignatureCheck `json:"checks,omitempty"`
	OtherScopes []string         `json:"otherScopes,omitempty"`
}

// Fallback is what the tag of a Result's reference resolved to, why that
// was not used, and the last trusted digest of the tag used instead.
type Fallback struct {
	Tag       string `json:"tag"`
	TagDigest string `json:"tagDigest"` // "" when the tag is missing
	// TagStatus is why the tag's digest was not used: TagMissing,
	// TagUntrusted, TagInconclusive or TagRolledBack.
	TagStatus string `json:"tagStatus"`
	Why       string `json:"why"`    // the tag digest's reasons, in one line
	Digest    string `json:"digest"` // the digest used instead (Result.Digest)
	// Source is where Digest was found: FromHead, FromHeadPrevious,
	// FromLedger or FromScan.
	Source string `json:"source"`
	// HeadSequence is the sequence of the head record that named Digest
	// (or its successor, for FromHeadPrevious); 0 for none.
	HeadSequence uint64   `json:"headSequence,omitempty"`
	Signers      []Signer `json:"signers"`
	SignedAt     string   `json:"signedAt,omitempty"` // the newest counted signature's time
	Age          string   `json:"age,omitempty"`      // how long ago that was
}

// Pinned returns REPOSITORY@DIGEST, the reference to import, or "" when no
// digest was resolved.
func (r *Result) Pinned() string {
	if r.Digest == "" {
		return ""
	}
	return r.Repository + "@" + r.Digest
}

// Enforced reports whether the result blocks the reference: it is not
// trusted and the scope's level is strict. Audit results are reported but
// not enforced; skipped references are not verified at all.
func (r *Result) Enforced() bool {
	return !r.Trusted && r.Level != trustpolicy.LevelAudit && r.Level != trustpolicy.LevelSkip
}

// Reason returns the reasons as one line.
func (r *Result) Reason() string {
	return strings.Join(r.Reasons, "; ")
}

func (r *Result) addReason(s string) { r.Reasons = append(r.Reasons, s) }
