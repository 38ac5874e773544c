package signature

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

func testCertPEM(t *testing.T) (string, []byte) {
	t.Helper()
	key := testreg.Key(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), der
}

// TestLegacyKeyless reads cosign v2's keyless layer annotations, and names
// the annotation of malformed material (which then keeps the signature from
// counting as a keyless one, not from verifying with a policy key).
func TestLegacyKeyless(t *testing.T) {
	certPEM, der := testCertPEM(t)
	ts := `{"SignedRFC3161Timestamp":"` + base64.StdEncoding.EncodeToString([]byte("tsr")) + `"}`
	rekor := `{"SignedEntryTimestamp":"` + base64.StdEncoding.EncodeToString([]byte("set")) + `","Payload":{"body":"` +
		base64.StdEncoding.EncodeToString([]byte(`{"kind":"hashedrekord"}`)) + `","integratedTime":1700000000,"logIndex":7,"logID":"abcd"}}`

	if k := legacyKeyless(map[string]string{SignatureAnnotation: "x"}); k != nil {
		t.Errorf("no certificate annotation: Keyless = %+v; want nil", k)
	}
	k := legacyKeyless(map[string]string{AnnotationCertificate: certPEM, AnnotationChain: certPEM + certPEM, AnnotationRFC3161Timestamp: ts, AnnotationRekorBundle: rekor})
	if k.Err != nil || string(k.Certificate) != string(der) || len(k.Chain) != 2 || len(k.Timestamps) != 1 || string(k.Timestamps[0]) != "tsr" {
		t.Fatalf("Keyless = %+v", k)
	}
	if r := k.Rekor; r == nil || r.IntegratedTime != 1700000000 || r.LogIndex != 7 || string(r.LogID) != "\xab\xcd" || string(r.SignedEntryTimestamp) != "set" || !strings.Contains(string(r.Body), "hashedrekord") {
		t.Errorf("Rekor = %+v", k.Rekor)
	}

	for _, tc := range []struct {
		name string
		ann  map[string]string
		want string
	}{
		{"certificate not PEM", map[string]string{AnnotationCertificate: "nope"}, AnnotationCertificate},
		{"two certificates", map[string]string{AnnotationCertificate: certPEM + certPEM}, "2 certificates, want 1"},
		{"a key, not a certificate", map[string]string{AnnotationCertificate: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, `PEM block of type "PUBLIC KEY"`},
		{"chain not PEM", map[string]string{AnnotationCertificate: certPEM, AnnotationChain: "x"}, AnnotationChain},
		{"timestamp not JSON", map[string]string{AnnotationCertificate: certPEM, AnnotationRFC3161Timestamp: "x"}, AnnotationRFC3161Timestamp},
		{"timestamp empty", map[string]string{AnnotationCertificate: certPEM, AnnotationRFC3161Timestamp: "{}"}, "no SignedRFC3161Timestamp"},
		{"rekor bundle body not base64", map[string]string{AnnotationCertificate: certPEM, AnnotationRekorBundle: `{"Payload":{"body":"%%"}}`}, "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := legacyKeyless(tc.ann)
			if k == nil || k.Err == nil || !strings.Contains(k.Err.Error(), tc.want) {
				t.Errorf("Keyless = %+v; want an error containing %q", k, tc.want)
			}
		})
	}
}

// TestBundleKeyless reads a bundle's certificate (v0.3) or chain (v0.1,
// v0.2) and its RFC 3161 timestamps; a public key hint is no keyless
// material.
func TestBundleKeyless(t *testing.T) {
	_, der := testCertPEM(t)
	b64 := base64.StdEncoding.EncodeToString(der)
	tsr := base64.StdEncoding.EncodeToString([]byte("tsr"))
	for _, tc := range []struct {
		name, vm string
		certs    int
		err      string
	}{
		{"public key", `{"publicKey":{"hint":"x"}}`, -1, ""},
		{"certificate", `{"certificate":{"rawBytes":"` + b64 + `"},"timestampVerificationData":{"rfc3161Timestamps":[{"signedTimestamp":"` + tsr + `"}]},"tlogEntries":[{}]}`, 1, ""},
		{"chain", `{"x509CertificateChain":{"certificates":[{"rawBytes":"` + b64 + `"},{"rawBytes":"` + b64 + `"}]}}`, 2, ""},
		{"empty chain", `{"x509CertificateChain":{"certificates":[]}}`, 0, "holds no certificate"},
		{"bad timestamps", `{"certificate":{"rawBytes":"` + b64 + `"},"timestampVerificationData":{"rfc3161Timestamps":"x"}}`, 0, "timestampVerificationData"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(`{"mediaType":"` + BundleMediaType + `","verificationMaterial":` + tc.vm + `,"dsseEnvelope":{"payload":"e30=","payloadType":"` + InTotoPayloadType + `","signatures":[{"sig":"AA=="}]}}`)
			b, err := ParseBundle(data)
			if err != nil {
				t.Fatal(err)
			}
			k := bundleKeyless(b, data)
			switch {
			case tc.certs < 0:
				if k != nil {
					t.Errorf("Keyless = %+v; want nil", k)
				}
			case tc.err != "":
				if k == nil || k.Err == nil || !strings.Contains(k.Err.Error(), tc.err) {
					t.Errorf("Keyless = %+v; want an error containing %q", k, tc.err)
				}
			default:
				if k.Err != nil || string(k.Certificate) != string(der) || len(k.Chain) != tc.certs-1 || string(k.Bundle) != string(data) {
					t.Errorf("Keyless = %+v", k)
				}
				if tc.name == "certificate" && (len(k.Timestamps) != 1 || string(k.Timestamps[0]) != "tsr" || k.TlogEntries != 1) {
					t.Errorf("timestamps %q, tlog entries %d", k.Timestamps, k.TlogEntries)
				}
			}
		})
	}
}
