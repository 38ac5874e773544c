package verify

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// Keyless verification with sigstore-go. Everything comes from the policy's
// trusted root file and the signature: no network. sigstore-go verifies the
// signature with the certificate's key, the RFC 3161 timestamps against
// the trusted root's timestamp authorities and the transparency log entries
// against its logs, then the certificate chain up to one of the trusted
// root's certificate authorities at each verified time (so the certificate
// and the authority must both be valid when the signature was made), and
// the certificate transparency SCT when the trusted root lists CT logs.
// The certificate chain a signature carries is ignored: only the trusted
// root's authorities count. The identity (issuer, subject, claims) is then
// matched here against the verified certificate (identity.go), once per
// signature whatever the number of identity builders.

// maxTrustedRootSize bounds the trusted root file; the public-good one is
// about 20 KiB.
const maxTrustedRootSize = 4 << 20

// KeylessRoot is the policy's trusted root, loaded, and its verifiers.
type KeylessRoot struct {
	digest string // "sha256:<hex>" of the file
	tr     *root.TrustedRoot
	// plain verifies with RFC 3161 timestamps (and transparency log entries
	// where the signature carries none: they are then ignored); withTlog
	// also verifies transparency log entries, for signatures that carry
	// them, when the trusted root lists logs (else nil).
	plain, withTlog *sgverify.Verifier
}

// TrustedRootDigest returns "sha256:<hex>" of the policy's trusted root
// file, or "" when the policy has none.
func (p *Policy) TrustedRootDigest() string {
	if p.Keyless == nil {
		return ""
	}
	return p.Keyless.digest
}

// TrustedRootSummary describes the policy's trusted root for explain and
// lint: how many certificate authorities, timestamp authorities,
// transparency logs and CT logs it lists. Empty without a trusted root.
func (p *Policy) TrustedRootSummary() string {
	if p.Keyless == nil {
		return ""
	}
	tr := p.Keyless.tr
	return fmt.Sprintf("%d certificate authorities, %d timestamp authorities, %d transparency logs, %d CT logs",
		len(tr.FulcioCertificateAuthorities()), len(tr.TimestampingAuthorities()), len(tr.RekorLogs()), len(tr.CTLogs()))
}

// trustedRoot reads the policy's trustedRoot field and loads the file.
func (ps *parser) trustedRoot(f field, p *Policy) {
	ref, ok := ps.str(f.value, "trustedRoot")
	if !ok {
		return
	}
	p.TrustedRoot = ref
	k, err := loadTrustedRoot(ref, ps.baseDir)
	if err != nil {
		ps.errorf(f.value, "trustedRoot", "%v", err)
		return
	}
	p.Keyless = k
}

// loadTrustedRoot reads and parses a sigstore trusted_root.json, relative
// to baseDir.
func loadTrustedRoot(ref, baseDir string) (*KeylessRoot, error) {
	if ref == "" {
		return nil, errors.New("empty: want the path of a sigstore trusted_root.json")
	}
	path := ref
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("trusted root %q: %w", ref, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("trusted root %q: %s is not a regular file", ref, path)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trusted root %q: %w", ref, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxTrustedRootSize+1))
	if err != nil {
		return nil, fmt.Errorf("trusted root %q: %w", ref, err)
	}
	if len(data) > maxTrustedRootSize {
		return nil, fmt.Errorf("trusted root %q: larger than %d bytes", ref, maxTrustedRootSize)
	}
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("trusted root %q: not a sigstore trusted root: %v", ref, err)
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 {
		return nil, fmt.Errorf("trusted root %q lists no certificate authority (certificateAuthorities): no keyless signature could verify", ref)
	}
	if len(tr.TimestampingAuthorities()) == 0 && len(tr.RekorLogs()) == 0 {
		return nil, fmt.Errorf("trusted root %q lists neither a timestamp authority (timestampAuthorities) nor a transparency log (tlogs): no keyless signature could have a verified time", ref)
	}
	sum := sha256.Sum256(data)
	k := &KeylessRoot{digest: "sha256:" + hex.EncodeToString(sum[:]), tr: tr}
	opts := []sgverify.VerifierOption{sgverify.WithObserverTimestamps(1)}
	if len(tr.CTLogs()) > 0 {
		opts = append(opts, sgverify.WithSignedCertificateTimestamps(1))
	}
	if k.plain, err = sgverify.NewVerifier(tr, opts...); err != nil {
		return nil, fmt.Errorf("trusted root %q: %v", ref, err)
	}
	if len(tr.RekorLogs()) > 0 {
		if k.withTlog, err = sgverify.NewVerifier(tr, append(opts, sgverify.WithTransparencyLog(1))...); err != nil {
			return nil, fmt.Errorf("trusted root %q: %v", ref, err)
		}
	}
	return k, nil
}

// keylessResult is a verified keyless signature.
type keylessResult struct {
	summary certificate.Summary
	certID  string // "sha256:<hex>" of the leaf certificate's DER
	keyID   string // the key id of the certificate's (short-lived) key
	times   []sgverify.TimestampVerificationResult
}

// hasTime reports whether a verified time of the kind required is there.
func (r *keylessResult) hasTime(require string) bool {
	want := map[string]string{TimestampTSA: "TimestampAuthority", TimestampTlog: "Tlog"}[require]
	return slices.ContainsFunc(r.times, func(t sgverify.TimestampVerificationResult) bool {
		return want == "" || t.Type == want
	})
}

// earliest returns the earliest verified time (of the kind required): how
// old the signature is at least.
func (r *keylessResult) earliest(require string) time.Time {
	want := map[string]string{TimestampTSA: "TimestampAuthority", TimestampTlog: "Tlog"}[require]
	var t time.Time
	for _, ts := range r.times {
		if (want == "" || ts.Type == want) && (t.IsZero() || ts.Timestamp.Before(t)) {
			t = ts.Timestamp
		}
	}
	return t
}

// verify verifies a keyless signature over the manifest digest: the
// signature with the certificate's key, a verified time, the certificate
// chain at that time. It does not match identities.
func (k *KeylessRoot) verify(s signature.Signature, digest v1.Hash) (*keylessResult, error) {
	m := s.Keyless
	if m == nil {
		return nil, errors.New("the signature carries no certificate")
	}
	if m.Err != nil {
		return nil, m.Err
	}
	var (
		entity   sgverify.SignedEntity
		artifact sgverify.ArtifactPolicyOption
		cert     *x509.Certificate
		hasTlog  bool
	)
	switch s.Format {
	case signature.FormatBundle:
		var b bundle.Bundle
		if err := b.UnmarshalJSON(m.Bundle); err != nil {
			return nil, fmt.Errorf("sigstore bundle: %v", err)
		}
		// The statement the verifier reads (parseSigned, from
		// internal/signature's decoding) must be the one sigstore-go
		// verifies, whatever two JSON decoders make of a crafted bundle.
		env, err := b.Envelope()
		if err != nil {
			return nil, fmt.Errorf("sigstore bundle: %v", err)
		}
		payload, err := base64.StdEncoding.DecodeString(env.RawEnvelope().Payload)
		if err != nil || !bytes.Equal(payload, s.Payload) {
			return nil, errors.New("sigstore bundle: the DSSE payload sigstore-go reads is not the one read here")
		}
		vc, err := b.VerificationContent()
		if err != nil || vc.Certificate() == nil {
			return nil, errors.New("sigstore bundle: no certificate")
		}
		cert = vc.Certificate()
		entries, err := b.TlogEntries()
		if err != nil {
			return nil, fmt.Errorf("sigstore bundle: %v", err)
		}
		hasTlog = len(entries) > 0
		entity = &b
		artifact = sgverify.WithArtifactDigest("sha256", mustHex(digest.Hex))
	default:
		c, err := x509.ParseCertificate(m.Certificate)
		if err != nil {
			return nil, fmt.Errorf("certificate: %v", err)
		}
		cert = c
		e := &legacyEntity{cert: c, sig: s.Signature, payload: s.Payload, timestamps: m.Timestamps}
		if r := m.Rekor; r != nil {
			te, err := tlog.NewEntry(r.Body, r.IntegratedTime, r.LogIndex, r.LogID, r.SignedEntryTimestamp, nil) //nolint:staticcheck // cosign v2's bundle is a Rekor v1 entry
			if err != nil {
				return nil, fmt.Errorf("transparency log entry: %v", err)
			}
			e.tlog = []*tlog.Entry{te}
			hasTlog = true
		}
		entity = e
		artifact = sgverify.WithArtifact(bytes.NewReader(s.Payload))
	}
	certSum := sha256.Sum256(cert.Raw)
	keyID, err := keys.ID(cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("certificate key: %v", err)
	}
	v := k.plain
	if hasTlog && k.withTlog != nil {
		v = k.withTlog
	}
	res, err := v.Verify(entity, sgverify.NewPolicy(artifact, sgverify.WithoutIdentitiesUnsafe()))
	if err != nil {
		return nil, err
	}
	if res.Signature == nil || res.Signature.Certificate == nil {
		return nil, errors.New("verified without a certificate")
	}
	return &keylessResult{
		summary: *res.Signature.Certificate,
		certID:  "sha256:" + hex.EncodeToString(certSum[:]),
		keyID:   keyID,
		times:   res.VerifiedTimestamps,
	}, nil
}

func mustHex(s string) []byte {
	b, _ := hex.DecodeString(s) // a v1.Hash's hex
	return b
}

// legacyEntity is a cosign v2 keyless .sig layer as a sigstore-go signed
// entity: a message signature over the simple-signing payload, the
// certificate, the RFC 3161 timestamps and the transparency log entry.
type legacyEntity struct {
	cert       *x509.Certificate
	sig        []byte
	payload    []byte
	timestamps [][]byte
	tlog       []*tlog.Entry
}

func (e *legacyEntity) HasInclusionPromise() bool {
	return slices.ContainsFunc(e.tlog, (*tlog.Entry).HasInclusionPromise)
}
func (e *legacyEntity) HasInclusionProof() bool { return false }
func (e *legacyEntity) VerificationContent() (sgverify.VerificationContent, error) {
	return bundle.NewCertificate(e.cert), nil
}
func (e *legacyEntity) SignatureContent() (sgverify.SignatureContent, error) {
	sum := sha256.Sum256(e.payload)
	return bundle.NewMessageSignature(sum[:], "SHA2_256", e.sig), nil
}
func (e *legacyEntity) Timestamps() ([][]byte, error)       { return e.timestamps, nil }
func (e *legacyEntity) TlogEntries() ([]*tlog.Entry, error) { return e.tlog, nil }

// Version is a v0.1 bundle's: cosign v2 signs with SHA-256 whatever the
// key's curve, which sigstore-go accepts in this compatibility mode.
func (e *legacyEntity) Version() (string, error) { return "v0.1", nil }

// keylessFor verifies a keyless signature and finds the identity builder
// its certificate matches: the scope's allowed builders first. It returns
// the builder (nil: none), the verified result (nil: verification failed)
// and, when no builder is returned, why.
func (v *Verifier) keylessFor(scope *Scope, s signature.Signature, digest v1.Hash) (*Builder, *keylessResult, string) {
	if v.policy.Keyless == nil {
		return nil, nil, "the signature is keyless (it carries a certificate) and the policy has no trustedRoot"
	}
	kr, err := v.policy.Keyless.verify(s, digest)
	if err != nil {
		return nil, nil, fmt.Sprintf("keyless signature does not verify against the trusted root: %v", err)
	}
	var first string
	try := func(b *Builder) bool {
		if b.Identity == nil {
			return false
		}
		why := b.Identity.match(&kr.summary)
		if why == "" && !kr.hasTime(b.Identity.RequireTimestamp) {
			why = fmt.Sprintf("builder %s requires a verified %s time; the signature has none", b.Name, b.Identity.RequireTimestamp)
		}
		if why != "" && first == "" {
			first = fmt.Sprintf("builder %s: %s", b.Name, why)
		}
		return why == ""
	}
	for _, n := range scope.Builders {
		if b, ok := v.policy.Builder(n); ok && try(b) {
			return b, kr, ""
		}
	}
	for i := range v.policy.Builders {
		b := &v.policy.Builders[i]
		if !slices.Contains(scope.Builders, b.Name) && try(b) {
			return b, kr, ""
		}
	}
	if first == "" {
		first = "the policy has no identity builder"
	}
	return nil, kr, fmt.Sprintf("certificate identity (issuer %q, subject %q) matches no identity builder: %s", kr.summary.Issuer, kr.summary.SubjectAlternativeName, first)
}

// checkVerifiedTime applies the time rules to a keyless signature's
// verified time (timestamp authority or transparency log): not in the
// future beyond ClockSkew, and within the scope's maxAge. A signed
// "created" annotation is the signer's claim and is not used. It sets
// signer.SignedAt.
func (v *Verifier) checkVerifiedTime(scope *Scope, t time.Time, signer *Signer) (bool, string) {
	if t.IsZero() {
		return false, "keyless signature has no verified time"
	}
	signer.SignedAt = t.UTC().Format(time.RFC3339)
	now := v.now()
	if t.After(now.Add(ClockSkew)) {
		return false, fmt.Sprintf("verified signing time %s is in the future", signer.SignedAt)
	}
	age := now.Sub(t).Round(time.Second)
	switch {
	case scope.MaxAge > 0 && now.Sub(t) > scope.MaxAge:
		return false, fmt.Sprintf("signed %s ago (verified time), older than maxAge %s", age, scope.MaxAge)
	case scope.MaxAge > 0:
		return true, fmt.Sprintf("signed %s ago (verified time), within maxAge %s", age, scope.MaxAge)
	}
	return true, fmt.Sprintf("signed %s ago (verified time); the scope sets no maxAge", age)
}
