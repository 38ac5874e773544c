package signature

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// KeylessSigner signs with a short-lived certificate instead of a
// long-lived key: internal/keyless implements it with Fulcio and RFC 3161
// timestamp authorities.
type KeylessSigner interface {
	// SignMessage signs payload itself (a simple-signing payload).
	SignMessage(ctx context.Context, payload []byte) (KeylessSignature, error)
	// SignDSSE signs a DSSE envelope over payload of payloadType.
	SignDSSE(ctx context.Context, payloadType string, payload []byte) (KeylessSignature, error)
}

// KeylessSignature is a keyless signature and what verifies it.
type KeylessSignature struct {
	Signature   []byte   // the raw signature (over the payload, or the DSSE PAE)
	Certificate []byte   // the signing certificate, PEM
	Chain       []byte   // the certificates above it, PEM; may be empty
	Timestamps  [][]byte // RFC 3161 TimeStampResp DER, each over Signature
	Bundle      []byte   // the sigstore bundle v0.3 JSON holding all of it
}

// rfc3161Annotation is the JSON of AnnotationRFC3161Timestamp (cosign's
// bundle.RFC3161Timestamp: a []byte field, base64 in JSON).
type rfc3161Annotation struct {
	SignedRFC3161Timestamp []byte
}

// LegacyKeylessAnnotations returns the .sig layer annotations, besides the
// signature, that carry ks: the certificate, the chain (when there is
// one), and the first timestamp (the format holds one).
func LegacyKeylessAnnotations(ks KeylessSignature) (map[string]string, error) {
	if len(ks.Certificate) == 0 {
		return nil, errors.New("keyless signature without a certificate")
	}
	if len(ks.Timestamps) == 0 {
		return nil, errors.New("keyless signature without a timestamp")
	}
	ts, err := json.Marshal(rfc3161Annotation{SignedRFC3161Timestamp: ks.Timestamps[0]})
	if err != nil {
		return nil, err
	}
	ann := map[string]string{
		AnnotationCertificate:      string(ks.Certificate),
		AnnotationRFC3161Timestamp: string(ts),
	}
	if len(ks.Chain) > 0 {
		ann[AnnotationChain] = string(ks.Chain)
	}
	return ann, nil
}

// signLegacyKeyless signs the simple-signing payload with s.Keyless and
// appends it to the .sig tag with its certificate, chain and timestamp.
// Every keyless signature has a new certificate, so none already there is
// the same: it is always added.
func (s Signer) signLegacyKeyless(ctx context.Context, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (Signature, bool, error) {
	payload, err := NewPayload(repo.Name(), digest, s.annotations(annotations))
	if err != nil {
		return Signature{}, false, err
	}
	ks, err := s.Keyless.SignMessage(ctx, payload)
	if err != nil {
		return Signature{}, false, fmt.Errorf("signing %s@%s: %w", repo.Name(), digest, err)
	}
	layerAnn, err := LegacyKeylessAnnotations(ks)
	if err != nil {
		return Signature{}, false, fmt.Errorf("signing %s@%s: %w", repo.Name(), digest, err)
	}
	added, err := AppendLegacy(ctx, repo, digest, payload, ks.Signature, AppendOptions{Annotations: layerAnn}, opts...)
	sig := Signature{Format: FormatLegacy, Source: SigTag(repo, digest).TagStr() + " (signed here)", Payload: payload, Signature: ks.Signature, Keyless: ks.material(nil)}
	return sig, added, err
}

// signBundleKeyless signs the statement with s.Keyless and attaches the
// bundle sigstore-go made (certificate and RFC 3161 timestamps as its
// verification material) as a referrer.
func (s Signer) signBundleKeyless(ctx context.Context, repo name.Repository, digest v1.Hash, annotations map[string]string, opts ...remote.Option) (Signature, bool, error) {
	ann := s.annotations(annotations)
	ann[AnnotationIdentity] = repo.Name()
	statement, err := NewStatement(digest, ann)
	if err != nil {
		return Signature{}, false, err
	}
	ks, err := s.Keyless.SignDSSE(ctx, InTotoPayloadType, statement)
	if err != nil {
		return Signature{}, false, fmt.Errorf("signing %s@%s: %w", repo.Name(), digest, err)
	}
	b, err := ParseBundle(ks.Bundle)
	if err != nil {
		return Signature{}, false, fmt.Errorf("signing %s@%s: the bundle made does not parse: %w", repo.Name(), digest, err)
	}
	added, err := AppendBundle(ctx, repo, digest, ks.Bundle, AppendOptions{}, opts...)
	sig := bundleSignature(b, "bundle (signed here)")
	sig.Keyless = ks.material(ks.Bundle)
	return sig, added, err
}

// material returns ks as a reader of the registry gets it (legacyKeyless,
// bundleKeyless): DER certificates, the timestamps, and the bundle for
// FormatBundle.
func (ks KeylessSignature) material(bundle []byte) *Keyless {
	k := &Keyless{Timestamps: ks.Timestamps, Bundle: bundle}
	certs, err := pemCertificates(ks.Certificate)
	if err != nil || len(certs) != 1 {
		k.Err = fmt.Errorf("signing certificate: %d certificates, %v", len(certs), err)
		return k
	}
	k.Certificate = certs[0]
	if len(ks.Chain) > 0 {
		if k.Chain, err = pemCertificates(ks.Chain); err != nil {
			k.Err = fmt.Errorf("certificate chain: %w", err)
		}
	}
	return k
}

// keylessTimestampJSON is for tests: the annotation value cosign
// reads for a timestamp.
func keylessTimestampJSON(ts []byte) string {
	return `{"SignedRFC3161Timestamp":"` + base64.StdEncoding.EncodeToString(ts) + `"}`
}
