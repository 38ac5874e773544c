package keyless

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
)

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

// Signer signs with an ephemeral key certified by Fulcio for the identity
// of an OIDC token, and has every signature timestamped by the timestamp
// authorities (RFC 3161), through sigstore-go's sign package. One key and
// one certificate serve every signature of a Signer until the certificate
// has less than a minute left, then a new pair is made.
//
// It implements signature.Keyless.
type Signer struct {
	opts Options

	mu   sync.Mutex
	key  *sign.EphemeralKeypair
	cert *certified // nil until the first signature
}

// certified is a certificate Fulcio issued for key.
type certified struct {
	leaf     []byte // DER
	chainPEM []byte // the rest of the chain Fulcio returned, PEM
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
	return &Signer{opts: opts}, nil
}

// SignMessage signs payload (a simple-signing payload for the .sig tag
// scheme) and returns the signature with its certificate, chain and
// timestamps, and the message-signature bundle sigstore-go made.
func (s *Signer) SignMessage(ctx context.Context, payload []byte) (signature.KeylessSignature, error) {
	return s.sign(ctx, &sign.PlainData{Data: payload})
}

// SignDSSE signs a DSSE envelope over payload and returns its bundle (and
// the parts, as for SignMessage).
func (s *Signer) SignDSSE(ctx context.Context, payloadType string, payload []byte) (signature.KeylessSignature, error) {
	return s.sign(ctx, &sign.DSSEData{Data: payload, PayloadType: payloadType})
}

func (s *Signer) sign(ctx context.Context, content sign.Content) (signature.KeylessSignature, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil || (s.cert != nil && time.Until(s.cert.notAfter) < time.Minute) {
		key, err := sign.NewEphemeralKeypair(nil)
		if err != nil {
			return signature.KeylessSignature{}, fmt.Errorf("keyless: making a key: %w", err)
		}
		s.key, s.cert = key, nil
	}
	var tsas []*sign.TimestampAuthority
	for _, u := range s.opts.Services.TSAs {
		tsas = append(tsas, sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: u, Timeout: s.opts.Timeout, Transport: s.opts.Transport}))
	}
	b, err := sign.Bundle(content, s.key, sign.BundleOptions{
		Context:              ctx,
		CertificateProvider:  (*certProvider)(s),
		TimestampAuthorities: tsas,
	})
	if err != nil {
		return signature.KeylessSignature{}, fmt.Errorf("keyless signing (%s): %w", s.opts.Services.Source, err)
	}
	return s.result(b)
}

// result takes the parts out of the bundle sigstore-go made.
func (s *Signer) result(b *protobundle.Bundle) (signature.KeylessSignature, error) {
	var r signature.KeylessSignature
	switch {
	case b.GetMessageSignature() != nil:
		r.Signature = b.GetMessageSignature().GetSignature()
	case b.GetDsseEnvelope() != nil && len(b.GetDsseEnvelope().GetSignatures()) == 1:
		r.Signature = b.GetDsseEnvelope().GetSignatures()[0].GetSig()
	default:
		return r, errors.New("keyless: sigstore-go made a bundle with no signature")
	}
	r.Certificate = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.GetVerificationMaterial().GetCertificate().GetRawBytes()})
	r.Chain = s.cert.chainPEM
	for _, ts := range b.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps() {
		r.Timestamps = append(r.Timestamps, ts.GetSignedTimestamp())
	}
	if len(r.Timestamps) == 0 {
		return r, errors.New("keyless: no timestamp in the bundle")
	}
	var err error
	r.Bundle, err = protojson.Marshal(b)
	if err != nil {
		return r, fmt.Errorf("keyless: encoding the bundle: %w", err)
	}
	return r, nil
}

// certProvider is the Signer as sigstore-go's CertificateProvider: the
// certificate of the current key, asked of Fulcio (with a fresh token) the
// first time. sigstore-go's Fulcio client returns the leaf only; the chain
// is read from the same response, which the transport records.
type certProvider Signer

func (p *certProvider) GetCertificate(ctx context.Context, key sign.Keypair, _ *sign.CertificateProviderOptions) ([]byte, error) {
	s := (*Signer)(p)
	if s.cert != nil {
		return s.cert.leaf, nil
	}
	tok, err := s.opts.Token.Token(ctx)
	if err != nil {
		return nil, err
	}
	rec := &recorder{next: s.opts.Transport}
	f := sign.NewFulcio(&sign.FulcioOptions{BaseURL: strings.TrimRight(s.opts.Services.Fulcio, "/"), Timeout: s.opts.Timeout, Transport: rec})
	leaf, err := f.GetCertificate(ctx, key, &sign.CertificateProviderOptions{IDToken: tok})
	if err != nil {
		return nil, fmt.Errorf("certificate from Fulcio %s: %w", s.opts.Services.Fulcio, err)
	}
	c, err := x509.ParseCertificate(leaf)
	if err != nil {
		return nil, fmt.Errorf("certificate from Fulcio %s: %w", s.opts.Services.Fulcio, err)
	}
	chain, err := chainFromResponse(rec.body)
	if err != nil {
		return nil, fmt.Errorf("certificate chain from Fulcio %s: %w", s.opts.Services.Fulcio, err)
	}
	s.cert = &certified{leaf: leaf, chainPEM: chain, notAfter: c.NotAfter}
	return leaf, nil
}

// chainFromResponse returns the certificates after the leaf in a Fulcio
// v2 signingCert response, PEM, as cosign writes its chain annotation.
func chainFromResponse(body []byte) ([]byte, error) {
	var resp struct {
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
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, err
	}
	certs := resp.Embedded.Chain.Certificates
	if len(certs) == 0 {
		certs = resp.Detached.Chain.Certificates
	}
	if len(certs) < 2 {
		return nil, nil // the leaf alone: no chain annotation
	}
	var out bytes.Buffer
	for _, c := range certs[1:] {
		blk, _ := pem.Decode([]byte(c))
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, errors.New("a chain entry is not a PEM certificate")
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, err
		}
		pem.Encode(&out, blk)
	}
	return out.Bytes(), nil
}

// recorder keeps the body of the last successful response.
type recorder struct {
	next http.RoundTripper
	body []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	r.body = b
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}
