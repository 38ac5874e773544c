package signature

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// Keyless signatures (sigstore): the signer's key is a short-lived one that
// a certificate authority (Fulcio) certified for a CI identity, and a
// timestamp authority or a transparency log proves when it signed. The
// signed content is the same as a key-signed signature's (simple-signing
// payload or in-toto statement); what differs is the material that comes
// with it. This file reads that material as it is carried; verify/keyless.go
// verifies it with sigstore-go. Nothing here is trusted: certificate chains
// carried in a signature are ignored by the verifier, which uses the
// trusted root file's.

// Layer annotations cosign v2 writes on a keyless signature in the .sig tag
// scheme (pkg/oci/static, pkg/cosign/bundle).
const (
	// AnnotationCertificate holds the signing certificate, PEM.
	AnnotationCertificate = "dev.sigstore.cosign/certificate"
	// AnnotationChain holds the certificate chain up to the root, PEM.
	AnnotationChain = "dev.sigstore.cosign/chain"
	// AnnotationRekorBundle holds the transparency log entry and its signed
	// entry timestamp, JSON: {"SignedEntryTimestamp": base64, "Payload":
	// {"body": base64, "integratedTime": n, "logIndex": n, "logID": hex}}.
	AnnotationRekorBundle = "dev.sigstore.cosign/bundle"
	// AnnotationRFC3161Timestamp holds an RFC 3161 timestamp over the raw
	// signature bytes, JSON: {"SignedRFC3161Timestamp": base64 DER}.
	AnnotationRFC3161Timestamp = "dev.sigstore.cosign/rfc3161timestamp"
)

// Keyless is the certificate material that came with a signature. It is
// set on a Signature when the signature carries a certificate; Err is set
// when that material is there but malformed (the signature can then not
// count as a keyless one, but may still verify with a policy key).
type Keyless struct {
	// Certificate is the DER of the signing (leaf) certificate.
	Certificate []byte
	// Chain is the DER of the other certificates as carried (not used for
	// trust: the trusted root's certificate authorities are).
	Chain [][]byte
	// Timestamps are RFC 3161 timestamp responses (DER) over the raw
	// signature bytes.
	Timestamps [][]byte
	// Rekor is the transparency log entry of a cosign v2 signature, if any.
	Rekor *RekorEntry
	// TlogEntries is how many transparency log entries a bundle carries.
	TlogEntries int
	// Bundle is the sigstore bundle JSON as read, for FormatBundle. The
	// verifier reads the parts above; the whole is kept for other readers.
	Bundle []byte
	// Err is why the material could not be read.
	Err error
}

// RekorEntry is cosign v2's transparency log bundle annotation, decoded.
type RekorEntry struct {
	Body                 []byte // the canonicalized entry JSON
	IntegratedTime       int64
	LogIndex             int64
	LogID                []byte
	SignedEntryTimestamp []byte
}

// legacyKeyless reads the keyless material of a .sig layer's annotations:
// nil when there is no certificate.
func legacyKeyless(ann map[string]string) *Keyless {
	certPEM, ok := ann[AnnotationCertificate]
	if !ok {
		return nil
	}
	k := &Keyless{}
	fail := func(format string, args ...any) *Keyless {
		k.Err = fmt.Errorf(format, args...)
		return k
	}
	certs, err := pemCertificates([]byte(certPEM))
	if err != nil || len(certs) != 1 {
		if err == nil {
			err = fmt.Errorf("%d certificates, want 1", len(certs))
		}
		return fail("annotation %s: %v", AnnotationCertificate, err)
	}
	k.Certificate = certs[0]
	if chain, ok := ann[AnnotationChain]; ok {
		if k.Chain, err = pemCertificates([]byte(chain)); err != nil {
			return fail("annotation %s: %v", AnnotationChain, err)
		}
	}
	if ts, ok := ann[AnnotationRFC3161Timestamp]; ok {
		var v struct {
			SignedRFC3161Timestamp []byte `json:"SignedRFC3161Timestamp"`
		}
		if err := decodeOne([]byte(ts), &v); err != nil || len(v.SignedRFC3161Timestamp) == 0 {
			if err == nil {
				err = errors.New("no SignedRFC3161Timestamp")
			}
			return fail("annotation %s: %v", AnnotationRFC3161Timestamp, err)
		}
		k.Timestamps = [][]byte{v.SignedRFC3161Timestamp}
	}
	if rb, ok := ann[AnnotationRekorBundle]; ok {
		var v struct {
			SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
			Payload              struct {
				Body           string `json:"body"`
				IntegratedTime int64  `json:"integratedTime"`
				LogIndex       int64  `json:"logIndex"`
				LogID          string `json:"logID"`
			} `json:"Payload"`
		}
		if err := json.Unmarshal([]byte(rb), &v); err != nil {
			return fail("annotation %s: %v", AnnotationRekorBundle, err)
		}
		body, err := base64.StdEncoding.DecodeString(v.Payload.Body)
		if err != nil {
			return fail("annotation %s: body: %v", AnnotationRekorBundle, err)
		}
		logID, err := hex.DecodeString(v.Payload.LogID)
		if err != nil {
			return fail("annotation %s: logID: %v", AnnotationRekorBundle, err)
		}
		k.Rekor = &RekorEntry{Body: body, IntegratedTime: v.Payload.IntegratedTime, LogIndex: v.Payload.LogIndex, LogID: logID, SignedEntryTimestamp: v.SignedEntryTimestamp}
	}
	return k
}

// bundleKeyless returns the keyless material of a parsed bundle: nil when
// it names a public key instead of carrying a certificate.
func bundleKeyless(b *Bundle, data []byte) *Keyless {
	vm := b.VerificationMaterial
	if len(vm.Certificate) == 0 && len(vm.X509CertificateChain) == 0 {
		return nil
	}
	k := &Keyless{TlogEntries: len(vm.TlogEntries), Bundle: data}
	if len(vm.TimestampVerificationData) > 0 {
		var tvd struct {
			RFC3161Timestamps []struct {
				SignedTimestamp Bytes `json:"signedTimestamp"`
			} `json:"rfc3161Timestamps"`
		}
		if err := json.Unmarshal(vm.TimestampVerificationData, &tvd); err != nil {
			k.Err = fmt.Errorf("bundle verificationMaterial.timestampVerificationData: %v", err)
			return k
		}
		for _, ts := range tvd.RFC3161Timestamps {
			k.Timestamps = append(k.Timestamps, ts.SignedTimestamp)
		}
	}
	var raw struct {
		RawBytes Bytes `json:"rawBytes"`
	}
	var chain struct {
		Certificates []struct {
			RawBytes Bytes `json:"rawBytes"`
		} `json:"certificates"`
	}
	switch {
	case len(vm.Certificate) > 0:
		if err := json.Unmarshal(vm.Certificate, &raw); err != nil || len(raw.RawBytes) == 0 {
			k.Err = fmt.Errorf("bundle verificationMaterial.certificate is not a certificate: %v", err)
			return k
		}
		k.Certificate = raw.RawBytes
	default:
		if err := json.Unmarshal(vm.X509CertificateChain, &chain); err != nil || len(chain.Certificates) == 0 || len(chain.Certificates[0].RawBytes) == 0 {
			k.Err = fmt.Errorf("bundle verificationMaterial.x509CertificateChain holds no certificate: %v", err)
			return k
		}
		k.Certificate = chain.Certificates[0].RawBytes
		for _, c := range chain.Certificates[1:] {
			k.Chain = append(k.Chain, c.RawBytes)
		}
	}
	return k
}

// pemCertificates returns the DER of every CERTIFICATE block in data.
func pemCertificates(data []byte) ([][]byte, error) {
	var out [][]byte
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block of type %q, want CERTIFICATE", blk.Type)
		}
		out = append(out, blk.Bytes)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}
