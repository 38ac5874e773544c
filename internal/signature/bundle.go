package signature

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"

	"github.com/docker-trustcache/docker-trustcache/keys"
)

// The sigstore bundle as cosign v3 (and cosign v2 with --new-bundle-format)
// writes it for a key-signed image: a bundle v0.3 holding a DSSE envelope
// over an in-toto Statement whose predicate type is
// https://sigstore.dev/cosign/sign/v1. The JSON is the protobuf JSON form
// of sigstore's protobuf-specs (camelCase names, bytes in base64); these
// structs hold only the fields a key-based, offline verification reads or
// writes, so that neither sigstore-go nor the protobuf runtime is needed.

// Media types and types of the bundle format.
const (
	// BundleMediaType is the media type of a sigstore bundle v0.3: the
	// bundle's own mediaType, its OCI layer's media type, and the
	// artifactType of the referrer manifest that carries it.
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// bundleMediaTypeAlt is the other spelling sigstore accepts for v0.3.
	bundleMediaTypeAlt = "application/vnd.dev.sigstore.bundle+json;version=0.3"

	// InTotoPayloadType is the DSSE payloadType of an in-toto Statement.
	InTotoPayloadType = ctypes.IntotoPayloadType
	// SignPredicateType is the predicate type of a cosign image signature
	// in statement form. Statements of any other predicate type (cosign
	// attest's provenance, SBOMs, …) are attestations, not signatures.
	SignPredicateType = ctypes.CosignSignPredicateType

	// StatementTypeV1 and StatementTypeV01 are the in-toto Statement
	// _type values accepted; trustcache writes v1, as cosign does.
	StatementTypeV1  = "https://in-toto.io/Statement/v1"
	StatementTypeV01 = "https://in-toto.io/Statement/v0.1"
)

// MaxBundleSize bounds one bundle blob. A key-signed bundle is about 1 KiB;
// a keyless one with a certificate and log entries about 10 KiB.
const MaxBundleSize = 4 * MaxPayloadSize

// Bundle is a sigstore bundle v0.3, the parts read here.
type Bundle struct {
	MediaType            string               `json:"mediaType"`
	VerificationMaterial VerificationMaterial `json:"verificationMaterial"`
	DSSEEnvelope         *Envelope            `json:"dsseEnvelope,omitempty"`
	// MessageSignature is set by bundles that sign a blob digest instead of
	// a statement; such a bundle is not an image signature.
	MessageSignature json.RawMessage `json:"messageSignature,omitempty"`
}

// VerificationMaterial says how to find the signing key. For a key-signed
// bundle it is a public key hint; certificates and transparency log
// entries are carried but not used by key-based verification.
type VerificationMaterial struct {
	PublicKey                 *PublicKeyIdentifier `json:"publicKey,omitempty"`
	Certificate               json.RawMessage      `json:"certificate,omitempty"`
	X509CertificateChain      json.RawMessage      `json:"x509CertificateChain,omitempty"`
	TlogEntries               []json.RawMessage    `json:"tlogEntries,omitempty"`
	TimestampVerificationData json.RawMessage      `json:"timestampVerificationData,omitempty"`
}

// PublicKeyIdentifier names the signing key. cosign's hint is the standard
// base64 of the SHA-256 of the key's PKIX DER (see KeyHint).
type PublicKeyIdentifier struct {
	Hint string `json:"hint,omitempty"`
}

// Envelope is a DSSE envelope. Payload and Sig are bytes, base64 in JSON.
type Envelope struct {
	Payload     Bytes          `json:"payload"`
	PayloadType string         `json:"payloadType"`
	Signatures  []EnvelopeSign `json:"signatures"`
}

// EnvelopeSign is one DSSE signature. cosign writes no keyid; a keyid that
// is set must match the verifier's for sigstore to accept it, so
// trustcache writes none either.
type EnvelopeSign struct {
	Sig   Bytes  `json:"sig"`
	KeyID string `json:"keyid,omitempty"`
}

// Bytes is a protobuf bytes field in JSON: written as standard padded
// base64, read in any base64 form protobuf's JSON accepts (standard or
// URL-safe, padded or not).
type Bytes []byte

// MarshalJSON writes b as standard padded base64.
func (b Bytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON reads a base64 string in any of protobuf's forms.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	// As protobuf's JSON decoder picks the alphabet and padding.
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	d, err := enc.DecodeString(s)
	if err != nil {
		return fmt.Errorf("bytes field is not base64: %w", err)
	}
	*b = d
	return nil
}

// ParseBundle parses and checks a bundle as a candidate image signature: at
// most MaxBundleSize bytes, one JSON object, a v0.3 media type, a DSSE
// envelope with exactly one signature (as sigstore requires) over an in-toto
// payload. It does not parse the statement: see ParseStatement.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("bundle of %d bytes exceeds the %d-byte limit", len(data), MaxBundleSize)
	}
	var b Bundle
	if err := decodeOne(data, &b); err != nil {
		return nil, fmt.Errorf("decoding bundle: %w", err)
	}
	if b.MediaType != BundleMediaType && b.MediaType != bundleMediaTypeAlt {
		return nil, fmt.Errorf("bundle media type is %q, want %q", b.MediaType, BundleMediaType)
	}
	e := b.DSSEEnvelope
	if e == nil {
		if len(b.MessageSignature) > 0 {
			return nil, errors.New("bundle holds a message signature, not a DSSE envelope over a statement")
		}
		return nil, errors.New("bundle holds no DSSE envelope")
	}
	if e.PayloadType != InTotoPayloadType {
		return nil, fmt.Errorf("DSSE payload type is %q, want %q", e.PayloadType, InTotoPayloadType)
	}
	if len(e.Payload) == 0 {
		return nil, errors.New("DSSE envelope has an empty payload")
	}
	if len(e.Signatures) != 1 {
		return nil, fmt.Errorf("DSSE envelope has %d signatures, want exactly 1", len(e.Signatures))
	}
	if len(e.Signatures[0].Sig) == 0 {
		return nil, errors.New("DSSE signature is empty")
	}
	return &b, nil
}

// PAE returns the DSSE pre-authentication encoding of payload: the bytes a
// DSSE signature is over,
// "DSSEv1 <len(type)> <type> <len(payload)> <payload>" (dsse.PAE).
func PAE(payloadType string, payload []byte) []byte { return dsse.PAE(payloadType, payload) }

// SignedBytes returns the bytes s.Signature is a signature over: the DSSE
// pre-authentication encoding of the statement for a bundle (s.Signed), the
// payload itself for the tag scheme.
func (s Signature) SignedBytes() []byte {
	if s.Signed != nil {
		return s.Signed
	}
	return s.Payload
}

// bundleSignature turns a parsed bundle into a Signature: the statement as
// Payload, the DSSE signature, and the PAE it covers.
// The caller adds Keyless (bundleKeyless) where the bundle JSON is at hand.
func bundleSignature(b *Bundle, source string) Signature {
	e := b.DSSEEnvelope
	return Signature{
		Format:    FormatBundle,
		Source:    source,
		Payload:   e.Payload,
		Signature: e.Signatures[0].Sig,
		Signed:    PAE(e.PayloadType, e.Payload),
	}
}

// KeyHint returns cosign's public key hint for pub: the standard base64 of
// the SHA-256 of its PKIX DER (the same hash as the key id, other
// encoding).
func KeyHint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("key hint: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// NewBundle signs statement with signer and returns the bundle JSON: a
// DSSE envelope (payloadType in-toto, one signature over the PAE, made with
// keys.Sign, no keyid) with the signer's public key hint, and no
// transparency log entries, as `cosign sign --key` writes with a signing
// config without a log.
func NewBundle(statement []byte, signer crypto.Signer) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("bundle: no signer")
	}
	hint, err := KeyHint(signer.Public())
	if err != nil {
		return nil, err
	}
	sig, err := keys.Sign(signer, PAE(InTotoPayloadType, statement))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return json.Marshal(Bundle{
		MediaType:            BundleMediaType,
		VerificationMaterial: VerificationMaterial{PublicKey: &PublicKeyIdentifier{Hint: hint}},
		DSSEEnvelope: &Envelope{
			Payload:     statement,
			PayloadType: InTotoPayloadType,
			Signatures:  []EnvelopeSign{{Sig: sig}},
		},
	})
}

// Statement is an in-toto Statement as cosign writes it for an image
// signature: one subject, the signed manifest's digest, with the signed
// annotations (cosign's -a) as subject annotations.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate,omitempty"`
}

// Subject is an in-toto ResourceDescriptor, the parts used here. cosign
// sets no name; the repository is not signed unless the signer put it in
// the AnnotationIdentity annotation, as trustcache does.
type Subject struct {
	Name        string            `json:"name,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// NewStatement returns the statement trustcache signs in a bundle: the
// cosign v3 shape (one subject with digest and annotations, predicate type
// SignPredicateType, empty predicate). The caller puts the repository in
// annotations under AnnotationIdentity.
func NewStatement(digest v1.Hash, annotations map[string]string) ([]byte, error) {
	if digest.Algorithm != "sha256" || len(digest.Hex) != 64 {
		return nil, fmt.Errorf("statement: digest %q is not sha256", digest)
	}
	s := Subject{Digest: map[string]string{"sha256": digest.Hex}}
	if len(annotations) > 0 {
		s.Annotations = make(map[string]any, len(annotations))
		for k, v := range annotations {
			s.Annotations[k] = v
		}
	}
	return json.Marshal(Statement{
		Type:          StatementTypeV1,
		Subject:       []Subject{s},
		PredicateType: SignPredicateType,
		Predicate:     json.RawMessage("{}"),
	})
}

// ParseStatement parses and checks the statement of a bundle as an image
// signature: one JSON object of at most MaxPayloadSize bytes, an in-toto
// Statement (v1 or v0.1) of predicate type SignPredicateType (an
// attestation of another type is not a signature), a predicate that is an
// object or absent (cosign v2 writes none), and exactly one subject with a
// sha256 digest — a cache signature signs one manifest, as cosign's do.
func ParseStatement(data []byte) (*Statement, error) {
	if len(data) > MaxPayloadSize {
		return nil, fmt.Errorf("statement of %d bytes exceeds the %d-byte limit", len(data), MaxPayloadSize)
	}
	var st Statement
	if err := decodeOne(data, &st); err != nil {
		return nil, fmt.Errorf("decoding statement: %w", err)
	}
	if st.Type != StatementTypeV1 && st.Type != StatementTypeV01 {
		return nil, fmt.Errorf("statement type is %q, want %q", st.Type, StatementTypeV1)
	}
	if st.PredicateType != SignPredicateType {
		return nil, fmt.Errorf("statement predicate type is %q, want %q (an attestation is not a signature)", st.PredicateType, SignPredicateType)
	}
	if p := bytes.TrimSpace(st.Predicate); len(p) > 0 && p[0] != '{' && !bytes.Equal(p, []byte("null")) {
		return nil, errors.New("statement predicate is not a JSON object")
	}
	if len(st.Subject) != 1 {
		return nil, fmt.Errorf("statement has %d subjects, want exactly 1", len(st.Subject))
	}
	hex, ok := st.Subject[0].Digest["sha256"]
	if !ok {
		return nil, errors.New("statement subject has no sha256 digest")
	}
	if h, err := v1.NewHash("sha256:" + hex); err != nil || h.Hex != hex {
		return nil, fmt.Errorf("statement subject digest %q is not a sha256 digest", hex)
	}
	return &st, nil
}

// Digest returns the manifest digest the statement signs.
func (st *Statement) Digest() v1.Hash {
	h, _ := v1.NewHash("sha256:" + st.Subject[0].Digest["sha256"]) // checked by ParseStatement
	return h
}

// Annotations returns the signed annotations (the subject's), string
// values as they are and other JSON values rendered with fmt, as
// Payload.Annotations renders the tag scheme's "optional".
func (st *Statement) Annotations() map[string]string {
	out := make(map[string]string, len(st.Subject[0].Annotations))
	for k, v := range st.Subject[0].Annotations {
		switch v := v.(type) {
		case string:
			out[k] = v
		case nil:
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// Identity returns the repository the statement's signer named in the
// AnnotationIdentity annotation, and whether there is one. cosign writes
// none unless given -a identity=…; a bundle without it signs a digest in
// any repository.
func (st *Statement) Identity() (string, bool) {
	v, ok := st.Subject[0].Annotations[AnnotationIdentity].(string)
	return v, ok && v != ""
}

// decodeOne decodes data as exactly one JSON value into v, numbers kept as
// json.Number.
func decodeOne(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
