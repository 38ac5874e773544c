package verify

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// Keyless verification, offline: everything comes from the policy's trusted
// root file and the signature. The checks are sigstore's, in the order of
// sigstore-go's verifier (pkg/verify), and the cryptography is sigstore-go's
// own (pkg/root) and the project's signature check:
//
//  1. the signature verifies with the certificate's key (keys.VerifySignature,
//     as for a key-signed signature: over the payload, or the DSSE PAE);
//  2. a verified time: an RFC 3161 timestamp over the signature bytes that a
//     timestamp authority of the trusted root signed
//     (root.TimestampingAuthority.Verify, within the authority's validity);
//  3. at every verified time, the certificate chains to a certificate
//     authority of the trusted root that was valid then, every certificate
//     valid then, with the code-signing usage
//     (root.CertificateAuthority.Verify) — so a signature timestamped outside
//     the certificate's ten minutes, or by a retired authority, fails;
//  4. the identity (issuer, subject, claims) is read from the verified
//     certificate (certificate.SummarizeCertificate) and matched here against
//     the policy's identity builders (identity.go), once per signature
//     whatever the number of builders.
//
// The certificate chain a signature carries is ignored: only the trusted
// root's authorities count. Not done, on purpose: transparency log entries
// (Rekor) are not verified, so they give no verified time, and certificate
// transparency SCTs are not checked. sigstore-go's full verifier
// (verify.NewVerifier) does both, but linking it links Rekor's generated
// client and go-openapi, whose package initialisers cost every trustcache
// process about 17 ms of start-up (measured: docs/performance.md) — the
// metadata command and key-based verification included. pkg/root and
// pkg/fulcio/certificate add about 2 ms.

// oidSubjectAltName is the subject alternative name extension.
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// maxTimestamps bounds the RFC 3161 timestamps tried for one signature.
const maxTimestamps = 32

// verifiedTime is a time a trusted timestamp authority vouches for.
type verifiedTime struct {
	uri string // the authority's
	t   time.Time
}

// keylessResult is a verified keyless signature.
type keylessResult struct {
	summary certificate.Summary
	certID  string // "sha256:<hex>" of the leaf certificate's DER
	keyID   string // the key id of the certificate's (short-lived) key
	times   []verifiedTime
}

// hasTime reports whether a verified time of the kind required is there:
// every verified time is a timestamp authority's, which both "any" and
// "tsa" accept.
func (r *keylessResult) hasTime(require string) bool {
	return len(r.times) > 0 && (require == trustpolicy.TimestampAny || require == trustpolicy.TimestampTSA)
}

// earliest returns the earliest verified time: how old the signature is at
// least.
func (r *keylessResult) earliest() time.Time {
	var t time.Time
	for _, vt := range r.times {
		if t.IsZero() || vt.t.Before(t) {
			t = vt.t
		}
	}
	return t
}

// verifyKeyless verifies a keyless signature (steps 1 to 3 above) and summarizes
// its certificate. It does not match identities.
func verifyKeyless(tr *root.TrustedRoot, s signature.Signature) (*keylessResult, error) {
	m := s.Keyless
	if m == nil {
		return nil, errors.New("the signature carries no certificate")
	}
	if m.Err != nil {
		return nil, m.Err
	}
	cert, err := x509.ParseCertificate(m.Certificate)
	if err != nil {
		return nil, fmt.Errorf("certificate: %v", err)
	}
	// 1. The signature, with the certificate's key.
	if err := keys.VerifySignature(cert.PublicKey, s.SignedBytes(), s.Signature); err != nil {
		return nil, fmt.Errorf("the signature does not verify with the certificate's key: %v", err)
	}
	// 2. Verified times.
	if len(m.Timestamps) > maxTimestamps {
		return nil, fmt.Errorf("%d RFC 3161 timestamps, more than the %d read", len(m.Timestamps), maxTimestamps)
	}
	var times []verifiedTime
	var why []string
	for i, ts := range m.Timestamps {
		var errs []string
		for _, tsa := range tr.TimestampingAuthorities() {
			vt, err := tsa.Verify(ts, s.Signature)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			times = append(times, verifiedTime{uri: vt.URI, t: vt.Time})
			errs = nil
			break
		}
		if errs != nil {
			why = append(why, fmt.Sprintf("timestamp %d: %s", i, strings.Join(errs, "; ")))
		}
	}
	if len(times) == 0 {
		msg := "no verified time: the signature carries no RFC 3161 timestamp"
		if len(m.Timestamps) > 0 {
			msg = "no verified time: no timestamp authority of the trusted root signed its timestamps (" + strings.Join(why, "; ") + ")"
		}
		if m.Rekor != nil || m.TlogEntries > 0 {
			msg += "; transparency log entries are not verified"
		}
		return nil, errors.New(msg)
	}
	// 3. The certificate chain, at every verified time. Go's x509 does not
	// know the OtherName SAN that Fulcio writes critical for some
	// identities; SummarizeCertificate reads it.
	if len(cert.UnhandledCriticalExtensions) > 0 {
		cert.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(cert.UnhandledCriticalExtensions), func(oid asn1.ObjectIdentifier) bool {
			return oid.Equal(oidSubjectAltName)
		})
	}
	for _, vt := range times {
		var errs []string
		ok := false
		for _, ca := range tr.FulcioCertificateAuthorities() {
			if _, err := ca.Verify(cert, vt.t); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			ok = true
			break
		}
		if !ok {
			return nil, fmt.Errorf("the certificate does not chain to a certificate authority of the trusted root at the verified time %s: %s",
				vt.t.UTC().Format(time.RFC3339), strings.Join(errs, "; "))
		}
	}
	summary, err := certificate.SummarizeCertificate(cert)
	if err != nil {
		return nil, fmt.Errorf("certificate: %v", err)
	}
	certSum := sha256.Sum256(cert.Raw)
	keyID, err := keys.ID(cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("certificate key: %v", err)
	}
	return &keylessResult{summary: summary, certID: "sha256:" + hex.EncodeToString(certSum[:]), keyID: keyID, times: times}, nil
}

// keylessFor verifies a keyless signature and finds the identity builder
// its certificate matches: the scope's allowed builders first. It returns
// the builder (nil: none), the verified result (nil: verification failed)
// and, when no builder is returned, why.
func (v *Verifier) keylessFor(scope *trustpolicy.Scope, s signature.Signature) (*trustpolicy.Builder, *keylessResult, string) {
	if v.policy.Keyless == nil {
		return nil, nil, "the signature is keyless (it carries a certificate) and the policy has no trustedRoot"
	}
	kr, err := v.keyless.verify(v.policy.Keyless, s)
	if err != nil {
		return nil, nil, fmt.Sprintf("keyless signature does not verify against the trusted root: %v", err)
	}
	var first string
	try := func(b *trustpolicy.Builder) bool {
		if b.Identity == nil {
			return false
		}
		why := b.Identity.Match(&kr.summary)
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
func (v *Verifier) checkVerifiedTime(scope *trustpolicy.Scope, t time.Time, signer *Signer) (bool, string) {
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

// keylessCache remembers keyless verifications for the Verifier's life: a
// signature is evaluated more than once in one verification (to decide
// whether the bundle referrers need reading, then for the verdict). The
// result depends only on the signature's bytes and the trusted root, not
// on the clock: the key covers everything verified.
type keylessCache struct {
	mu sync.Mutex
	m  map[[32]byte]keylessEntry
}

type keylessEntry struct {
	r   *keylessResult
	err error
}

// maxKeylessCache bounds the cache; it is emptied when full.
const maxKeylessCache = 1024

func (c *keylessCache) verify(k *trustpolicy.KeylessRoot, s signature.Signature) (*keylessResult, error) {
	if s.Keyless == nil {
		return verifyKeyless(k.TrustedRoot(), s)
	}
	h := sha256.New()
	for _, b := range [][]byte{s.SignedBytes(), s.Signature, s.Keyless.Certificate} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	for _, b := range s.Keyless.Timestamps {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%v", s.Keyless.Err)
	var key [32]byte
	h.Sum(key[:0])
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return e.r, e.err
	}
	r, err := verifyKeyless(k.TrustedRoot(), s)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxKeylessCache {
		c.m = make(map[[32]byte]keylessEntry)
	}
	c.m[key] = keylessEntry{r: r, err: err}
	c.mu.Unlock()
	return r, err
}
