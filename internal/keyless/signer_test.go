package keyless

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// These tests run the clients against services written here to misbehave
// on purpose; the e2e tests (e2e/keyless_test.go) run them against the
// real Fulcio and timestamp authority, and cosign verifies the result.

// authority is a CA and an RFC 3161 signer for the test services.
type authority struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newAuthority(t *testing.T, eku ...x509.ExtKeyUsage) authority {
	t.Helper()
	key := testreg.Key(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: eku}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return authority{key, cert}
}

// issue returns a PEM leaf for pub, signed by a.
func (a authority) issue(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now(), NotAfter: time.Now().Add(10 * time.Minute)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// services are the Fulcio and timestamp authority of a test: small
// servers of their own over httptest (not testreg, which is a registry:
// keyless signing talks to no registry), each able to lie.
type services struct {
	fulcio, tsa   *httptest.Server
	fulcioCalls   atomic.Int32
	certForOther  atomic.Bool // Fulcio certifies another key
	tsaOtherHash  atomic.Bool // the TSA timestamps another message
	fulcioRefuses atomic.Bool
}

func newServices(t *testing.T) *services {
	t.Helper()
	ca := newAuthority(t)
	tsa := newAuthority(t, x509.ExtKeyUsageTimeStamping)
	s := &services{}
	s.fulcio = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fulcioCalls.Add(1)
		if s.fulcioRefuses.Load() {
			http.Error(w, `{"code":401,"message":"error processing the identity token"}`, http.StatusUnauthorized)
			return
		}
		var req fulcioRequest
		if r.URL.Path != "/api/v2/signingCert" || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		blk, _ := pem.Decode([]byte(req.PublicKeyRequest.PublicKey.Content))
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if s.certForOther.Load() {
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			pub = &other.PublicKey
		}
		root := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
		json.NewEncoder(w).Encode(map[string]any{"signedCertificateDetachedSct": map[string]any{"chain": map[string]any{"certificates": []string{ca.issue(t, pub), root}}}})
	}))
	t.Cleanup(s.fulcio.Close)
	s.tsa = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := timestamp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ts := timestamp.Timestamp{HashAlgorithm: req.HashAlgorithm, HashedMessage: req.HashedMessage, Time: time.Now(), Policy: []int{1, 2, 3}}
		if s.tsaOtherHash.Load() {
			ts.HashedMessage = make([]byte, len(req.HashedMessage))
		}
		resp, err := ts.CreateResponse(tsa.cert, tsa.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/timestamp-reply")
		w.Write(resp)
	}))
	t.Cleanup(s.tsa.Close)
	return s
}

func (s *services) signer(t *testing.T) *Signer {
	t.Helper()
	ts, err := FindTokenSource(good(t), func(string) string { return "" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := New(Options{Services: Services{Source: "test", Fulcio: s.fulcio.URL, TSAs: []string{s.tsa.URL}}, Token: ts})
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

// TestSigner: the signature verifies with the certified key, the chain
// and one timestamp over the signature come with it, the DSSE bundle
// parses as an image signature, and one certificate serves both.
func TestSigner(t *testing.T) {
	s := newServices(t)
	sg := s.signer(t)
	ctx := context.Background()
	msg, err := sg.SignMessage(ctx, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(msg.Certificate)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.VerifySignature(cert.PublicKey, []byte("payload"), msg.Signature); err != nil {
		t.Errorf("message signature: %v", err)
	}
	if !strings.Contains(string(msg.Chain), "BEGIN CERTIFICATE") || len(msg.Timestamps) != 1 {
		t.Errorf("chain %q, %d timestamps; want the root and 1", msg.Chain, len(msg.Timestamps))
	}
	statement := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	d, err := sg.SignDSSE(ctx, signature.InTotoPayloadType, statement)
	if err != nil {
		t.Fatal(err)
	}
	b, err := signature.ParseBundle(d.Bundle)
	if err != nil {
		t.Fatalf("ParseBundle: %v\n%s", err, d.Bundle)
	}
	if string(b.DSSEEnvelope.Payload) != string(statement) || !strings.Contains(string(b.VerificationMaterial.TimestampVerificationData), "rfc3161Timestamps") {
		t.Errorf("bundle %s", d.Bundle)
	}
	if err := keys.VerifySignature(cert.PublicKey, signature.PAE(signature.InTotoPayloadType, statement), d.Signature); err != nil {
		t.Errorf("DSSE signature: %v", err)
	}
	if n := s.fulcioCalls.Load(); n != 1 {
		t.Errorf("Fulcio asked %d times for two signatures; want 1", n)
	}
}

// TestSignerRefuses: what a service answers is checked, and a refusal is
// passed on with its reason.
func TestSignerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*services)
		want string
	}{
		{"certificate for another key", func(s *services) { s.certForOther.Store(true) }, "not for the key sent"},
		{"timestamp over another message", func(s *services) { s.tsaOtherHash.Store(true) }, "over another message"},
		{"Fulcio refuses the token", func(s *services) { s.fulcioRefuses.Store(true) }, "401 Unauthorized: {\"code\":401,\"message\":\"error processing the identity token\"}"},
	} {
		s := newServices(t)
		tc.set(s)
		_, err := s.signer(t).SignMessage(context.Background(), []byte("payload"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: SignMessage = %v; want %q", tc.name, err, tc.want)
		}
	}
}
