package signature

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// localKeyless is a Keyless that signs with a local key and a certificate
// it made itself: what internal/keyless returns, without Fulcio (the e2e
// tests use the real one).
type localKeyless struct {
	key  *ecdsa.PrivateKey
	cert []byte // PEM
	ts   []byte
}

func newLocalKeyless(t *testing.T) *localKeyless {
	t.Helper()
	key := testreg.Key(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"}, NotBefore: time.Now(), NotAfter: time.Now().Add(10 * time.Minute)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &localKeyless{key: key, cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ts: []byte("timestamp-response")}
}

func (l *localKeyless) SignMessage(_ context.Context, payload []byte) (KeylessSignature, error) {
	sig, err := keys.Sign(l.key, payload)
	return KeylessSignature{Signature: sig, Certificate: l.cert, Chain: l.cert, Timestamps: [][]byte{l.ts}}, err
}

func (l *localKeyless) SignDSSE(_ context.Context, payloadType string, payload []byte) (KeylessSignature, error) {
	sig, err := keys.Sign(l.key, PAE(payloadType, payload))
	if err != nil {
		return KeylessSignature{}, err
	}
	blk, _ := pem.Decode(l.cert)
	certJSON, _ := json.Marshal(map[string][]byte{"rawBytes": blk.Bytes})
	b, err := json.Marshal(Bundle{
		MediaType:            BundleMediaType,
		VerificationMaterial: VerificationMaterial{Certificate: certJSON},
		DSSEEnvelope:         &Envelope{Payload: payload, PayloadType: payloadType, Signatures: []EnvelopeSign{{Sig: sig}}},
	})
	return KeylessSignature{Signature: sig, Certificate: l.cert, Timestamps: [][]byte{l.ts}, Bundle: b}, err
}

// TestKeylessLegacy: a keyless signature in the .sig tag scheme is a
// simple-signing layer whose annotations hold the signature, the
// certificate, the chain and the timestamp as cosign v2 writes them; each
// signing adds a layer (a new certificate each time: never "the same").
func TestKeylessLegacy(t *testing.T) {
	repo := newRepo(t)
	d := pushRandom(t, repo)
	kl := newLocalKeyless(t)
	s := Signer{Keyless: kl, Builder: "ci"}
	for i := 1; i <= 2; i++ {
		sig, added, err := s.Attach(context.Background(), FormatLegacy, repo, d, map[string]string{"ref": "refs/heads/main"})
		if err != nil || !added {
			t.Fatalf("Attach #%d = %v, %v; want added", i, added, err)
		}
		if sig.Keyless == nil || sig.Keyless.Err != nil || len(sig.Keyless.Certificate) == 0 || len(sig.Keyless.Timestamps) != 1 {
			t.Errorf("Attach #%d returned no keyless material", i)
		}
	}
	sigs, err := ReadLegacy(context.Background(), repo, d)
	if err != nil || len(sigs) != 2 {
		t.Fatalf("ReadLegacy = %d signatures, %v; want 2", len(sigs), err)
	}
	for _, s := range sigs {
		if err := keys.VerifySignature(&kl.key.PublicKey, s.Payload, s.Signature); err != nil {
			t.Errorf("%s: %v", s.Source, err)
		}
	}
	img, err := remote.Image(SigTag(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	a := m.Layers[0].Annotations
	want := map[string]string{
		AnnotationCertificate:      string(kl.cert),
		AnnotationChain:            string(kl.cert),
		AnnotationRFC3161Timestamp: keylessTimestampJSON(kl.ts),
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("layer annotation %s = %q; want %q", k, a[k], v)
		}
	}
	if a[SignatureAnnotation] == "" {
		t.Errorf("no %s annotation", SignatureAnnotation)
	}
}

// TestKeylessBundle: a keyless bundle is attached as a referrer that
// ReadBundles reads back, over a statement binding the repository.
func TestKeylessBundle(t *testing.T) {
	repo := newRepo(t)
	d := pushRandom(t, repo)
	kl := newLocalKeyless(t)
	sig, added, err := Signer{Keyless: kl, Builder: "ci"}.Attach(context.Background(), FormatBundle, repo, d, nil)
	if err != nil || !added || sig.Keyless == nil {
		t.Fatalf("Attach = %v, %v, keyless %v", added, err, sig.Keyless != nil)
	}
	sigs, err := ReadBundles(context.Background(), repo, d)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("ReadBundles = %d, %v; want 1", len(sigs), err)
	}
	if err := keys.VerifySignature(&kl.key.PublicKey, sigs[0].SignedBytes(), sigs[0].Signature); err != nil {
		t.Error(err)
	}
	st, err := ParseStatement(sigs[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := st.Identity(); id != repo.Name() || st.Digest() != d {
		t.Errorf("statement identity %q digest %s; want %q %s", id, st.Digest(), repo.Name(), d)
	}
}

func TestLegacyKeylessAnnotationsErrors(t *testing.T) {
	if _, err := LegacyKeylessAnnotations(KeylessSignature{Timestamps: [][]byte{{1}}}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("no certificate: %v", err)
	}
	if _, err := LegacyKeylessAnnotations(KeylessSignature{Certificate: []byte("c")}); err == nil || !strings.Contains(err.Error(), "timestamp") {
		t.Errorf("no timestamp: %v", err)
	}
	a, err := LegacyKeylessAnnotations(KeylessSignature{Certificate: []byte("c"), Timestamps: [][]byte{{1, 2}}})
	if err != nil || a[AnnotationChain] != "" || a[AnnotationRFC3161Timestamp] != `{"SignedRFC3161Timestamp":"AQI="}` {
		t.Errorf("LegacyKeylessAnnotations = %v, %v", a, err)
	}
}

// TestAppendLegacyPrePlacedPayload: the payload a signer is about to sign
// is predictable (repository, digest, annotations, the current second), so
// someone with write access can place a layer with that payload and a
// bogus signature first. Before the fix, AppendLegacy saw the layer digest
// already there, wrote nothing and reported success: the builder's
// signature was never attached and builds dropped the cache. The layer
// must carry this signer's signature to count as written.
func TestAppendLegacyPrePlacedPayload(t *testing.T) {
	repo := newRepo(t)
	d := pushRandom(t, repo)
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	s := newSigner(t, "ci")
	s.Now = func() time.Time { return now }
	payload, err := NewPayload(repo.Name(), d, s.annotations(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AppendLegacy(context.Background(), repo, d, payload, []byte("bogus"), AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if added, err := s.Sign(context.Background(), repo, d, nil); err != nil || !added {
		t.Fatalf("Sign = %v, %v; want added", added, err)
	}
	sigs, err := ReadLegacy(context.Background(), repo, d)
	if err != nil {
		t.Fatal(err)
	}
	valid := 0
	for _, sig := range sigs {
		if keys.VerifySignature(s.Key.Public(), sig.Payload, sig.Signature) == nil {
			valid++
		}
	}
	if valid != 1 {
		t.Errorf("%d of %d signatures verify with the signer's key; want 1", valid, len(sigs))
	}
}
