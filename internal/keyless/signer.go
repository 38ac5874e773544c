package keyless

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// The Fulcio and timestamp authority clients are written here, on the
// standard library and github.com/digitorus/timestamp (which sigstore-go's
// trusted-root checks link already), rather than taken from sigstore-go's
// sign package: that package imports sigstore-go's full verifier and
// Rekor's generated client, whose package initialisation every command
// would pay at start-up (docs/performance.md). The wire formats are those
// sigstore-go's sign package speaks (Fulcio API v2 signingCert, RFC 3161
// over HTTP), and the e2e tests run them against the real services and
// cosign.

// Options configure a Signer.
type Options struct {
	Services Services
	Token    TokenSource
	// Transport carries the Fulcio and timestamp authority requests
	// (default http.DefaultTransport).
	Transport http.RoundTripper
	// Timeout bounds each service request (default 30 s).
	Timeout time.Duration
}

// maxResponse bounds a Fulcio or timestamp authority response.
const maxResponse = 1 << 20

// Signer signs with an ephemeral ECDSA P-256 key certified by Fulcio for
// the identity of an OIDC token, and has every signature timestamped by
// the timestamp authorities (RFC 3161). One key and one certificate serve
// every signature of a Signer until the certificate has less than a
// minute left, then a new pair is made.
//
// It implements signature.KeylessSigner.
type Signer struct {
	opts   Options
	client *http.Client

	mu   sync.Mutex
	key  *ecdsa.PrivateKey
	cert *certified // nil until the first signature
}

// certified is a certificate Fulcio issued for key.
type certified struct {
	leafPEM  []byte
	chainPEM []byte // the rest of the chain Fulcio returned
	notAfter time.Time
}

// New returns a Signer. Nothing is requested until the first signature.
func New(opts Options) (*Signer, error) {
	if opts.Services.Fulcio == "" {
		return nil, errors.New("keyless: no Fulcio URL")
	}
	if len(opts.Services.TSAs) == 0 {
		return nil, errors.New("keyless: no timestamp authority URL")
	}
	if opts.Token.fetch == nil {
		return nil, ErrNoToken
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	return &Signer{opts: opts, client: &http.Client{Transport: opts.Transport, Timeout: opts.Timeout}}, nil
}

// SignMessage signs payload (a simple-signing payload for the .sig tag
// scheme) and returns the signature with its certificate, chain and
// timestamps.
func (s *Signer) SignMessage(ctx context.Context, payload []byte) (signature.KeylessSignature, error) {
	return s.sign(ctx, payload)
}

// SignDSSE signs a DSSE envelope over payload and returns it as a sigstore
// bundle v0.3 (the certificate as verification material, the RFC 3161
// timestamps as timestamp verification data), and the parts.
func (s *Signer) SignDSSE(ctx context.Context, payloadType string, payload []byte) (signature.KeylessSignature, error) {
	r, err := s.sign(ctx, signature.PAE(payloadType, payload))
	if err != nil {
		return r, err
	}
	r.Bundle, err = newBundle(r, payloadType, payload)
	return r, err
}

// sign signs data (the payload, or a DSSE PAE) with the certified key and
// has the signature timestamped by every timestamp authority.
func (s *Signer) sign(ctx context.Context, data []byte) (signature.KeylessSignature, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil || (s.cert != nil && time.Until(s.cert.notAfter) < time.Minute) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return signature.KeylessSignature{}, fmt.Errorf("keyless: making a key: %w", err)
		}
		s.key, s.cert = key, nil
	}
	if s.cert == nil {
		c, err := s.certify(ctx)
		if err != nil {
			return signature.KeylessSignature{}, err
		}
		s.cert = c
	}
	sig, err := keys.Sign(s.key, data)
	if err != nil {
		return signature.KeylessSignature{}, fmt.Errorf("keyless: signing: %w", err)
	}
	r := signature.KeylessSignature{Signature: sig, Certificate: s.cert.leafPEM, Chain: s.cert.chainPEM}
	for _, u := range s.opts.Services.TSAs {
		ts, err := s.timestamp(ctx, u, sig)
		if err != nil {
			return signature.KeylessSignature{}, err
		}
		r.Timestamps = append(r.Timestamps, ts)
	}
	return r, nil
}

// fulcioRequest is Fulcio's v2 signingCert request with the token as
// bearer: the public key and a proof of possession (a signature over the
// token's subject).
type fulcioRequest struct {
	PublicKeyRequest struct {
		PublicKey struct {
			Algorithm string `json:"algorithm"`
			Content   string `json:"content"`
		} `json:"publicKey"`
		ProofOfPossession string `json:"proofOfPossession"`
	} `json:"publicKeyRequest"`
}

// fulcioResponse is Fulcio's answer: the chain, leaf first, PEM.
type fulcioResponse struct {
	Embedded struct {
		Chain struct {
			Certificates []string `json:"certificates"`
		} `json:"chain"`
	} `json:"signedCertificateEmbeddedSct"`
	Detached struct {
		Chain struct {
			Certificates []string `json:"certificates"`
		} `json:"chain"`
	} `json:"signedCertificateDetachedSct"`
}

// certify asks Fulcio for a certificate of the current key, with a fresh
// token.
func (s *Signer) certify(ctx context.Context) (*certified, error) {
	fulcio := strings.TrimRight(s.opts.Services.Fulcio, "/")
	fail := func(err error) (*certified, error) {
		return nil, fmt.Errorf("certificate from Fulcio %s: %w", fulcio, err)
	}
	tok, err := s.opts.Token.Token(ctx)
	if err != nil {
		return nil, err
	}
	claims, err := ParseClaims(tok, time.Time{})
	if err != nil {
		return fail(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		return fail(err)
	}
	pop, err := keys.Sign(s.key, []byte(claims.proofSubject()))
	if err != nil {
		return fail(err)
	}
	var req fulcioRequest
	req.PublicKeyRequest.PublicKey.Algorithm = "ECDSA"
	req.PublicKeyRequest.PublicKey.Content = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	req.PublicKeyRequest.ProofOfPossession = base64.StdEncoding.EncodeToString(pop)
	body, err := json.Marshal(req)
	if err != nil {
		return fail(err)
	}
	resp, err := s.post(ctx, fulcio+"/api/v2/signingCert", "application/json", body, "Bearer "+tok)
	if err != nil {
		return fail(err)
	}
	var fr fulcioResponse
	if err := json.Unmarshal(resp, &fr); err != nil {
		return fail(fmt.Errorf("response is not a signingCert answer: %w", err))
	}
	chain := fr.Embedded.Chain.Certificates
	if len(chain) == 0 {
		chain = fr.Detached.Chain.Certificates
	}
	if len(chain) == 0 {
		return fail(errors.New("no certificate in the response"))
	}
	blk, _ := pem.Decode([]byte(chain[0]))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return fail(errors.New("the certificate is not PEM"))
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fail(err)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&s.key.PublicKey) {
		return fail(errors.New("the certificate is not for the key sent"))
	}
	c := &certified{leafPEM: pem.EncodeToMemory(blk), notAfter: leaf.NotAfter}
	var rest bytes.Buffer
	for _, p := range chain[1:] {
		b, _ := pem.Decode([]byte(p))
		if b == nil || b.Type != "CERTIFICATE" {
			return fail(errors.New("a chain certificate is not PEM"))
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fail(fmt.Errorf("chain: %w", err))
		}
		pem.Encode(&rest, b)
	}
	c.chainPEM = rest.Bytes()
	return c, nil
}

// timestamp asks the timestamp authority at url for an RFC 3161 timestamp
// over sig (its SHA-256, as cosign and sigstore-go request it) and returns
// the DER TimeStampResp, checked to answer this request.
func (s *Signer) timestamp(ctx context.Context, url string, sig []byte) ([]byte, error) {
	sum := sha256.Sum256(sig)
	req, err := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:]}).Marshal()
	if err != nil {
		return nil, fmt.Errorf("timestamp request: %w", err)
	}
	resp, err := s.post(ctx, url, "application/timestamp-query", req, "")
	if err != nil {
		return nil, fmt.Errorf("timestamp from %s: %w", url, err)
	}
	ts, err := timestamp.ParseResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("timestamp from %s: %w", url, err)
	}
	if !bytes.Equal(ts.HashedMessage, sum[:]) {
		return nil, fmt.Errorf("timestamp from %s is over another message", url)
	}
	return resp, nil
}

// post sends body and returns the response body of a 200 or 201 answer.
func (s *Signer) post(ctx context.Context, url, contentType string, body []byte, auth string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if len(b) > maxResponse {
		return nil, fmt.Errorf("response larger than %d bytes", maxResponse)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b[:min(len(b), 300)])))
	}
	return b, nil
}

// newBundle writes the sigstore bundle v0.3 of a DSSE signature: the
// envelope, the leaf certificate, the RFC 3161 timestamps; no
// transparency log entry.
func newBundle(r signature.KeylessSignature, payloadType string, payload []byte) ([]byte, error) {
	blk, _ := pem.Decode(r.Certificate)
	if blk == nil {
		return nil, errors.New("keyless: no certificate")
	}
	cert, err := json.Marshal(struct {
		RawBytes signature.Bytes `json:"rawBytes"`
	}{blk.Bytes})
	if err != nil {
		return nil, err
	}
	type signedTimestamp struct {
		SignedTimestamp signature.Bytes `json:"signedTimestamp"`
	}
	var tv struct {
		RFC3161Timestamps []signedTimestamp `json:"rfc3161Timestamps"`
	}
	for _, ts := range r.Timestamps {
		tv.RFC3161Timestamps = append(tv.RFC3161Timestamps, signedTimestamp{ts})
	}
	tsJSON, err := json.Marshal(tv)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signature.Bundle{
		MediaType: signature.BundleMediaType,
		VerificationMaterial: signature.VerificationMaterial{
			Certificate:               cert,
			TimestampVerificationData: tsJSON,
		},
		DSSEEnvelope: &signature.Envelope{
			Payload:     payload,
			PayloadType: payloadType,
			Signatures:  []signature.EnvelopeSign{{Sig: r.Signature}},
		},
	})
}
