package verify

import (
	"strings"
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
	Reference   string   `json:"reference"`
	Repository  string   `json:"repository"`
	Digest      string   `json:"digest"`
	Trusted     bool     `json:"trusted"`
	Verdict     Verdict  `json:"verdict"`
	Level       Level    `json:"level"`
	OnUntrusted Action   `json:"onUntrusted"`
	Scope       string   `json:"scope,omitempty"` // the repository pattern that matched
	Threshold   int      `json:"threshold,omitempty"`
	Signers     []Signer `json:"signers"`
	Reasons     []string `json:"reasons"`
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

	// Explain only: every rule applied to every signature, and the scope
	// patterns that matched but lost to a more specific one.
	Checks      []SignatureCheck `json:"checks,omitempty"`
	OtherScopes []string         `json:"otherScopes,omitempty"`
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
	return !r.Trusted && r.Level != LevelAudit && r.Level != LevelSkip
}

// Reason returns the reasons as one line.
func (r *Result) Reason() string {
	return strings.Join(r.Reasons, "; ")
}

func (r *Result) addReason(s string) { r.Reasons = append(r.Reasons, s) }
