package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ssdsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	rekorpb "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// The keyless tests run sigstore-go's own test authorities: a
// VirtualSigstore's timestamp authority and transparency log, and a
// Fulcio-like certificate authority made with its ca helpers, whose leaf
// certificates carry the Fulcio extensions a GitHub or GitLab token gives.
// The trusted root file is what the policy names. Nothing of the verifier is
// replaced.

const (
	githubIssuer = "https://token.actions.githubusercontent.com"
	gitlabIssuer = "https://gitlab.com"
	mainSubject  = "https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main"
)

// fulcioCA is a certificate authority that issues Fulcio-shaped leaves.
type fulcioCA struct {
	root, inter *x509.Certificate
	interKey    *ecdsa.PrivateKey
	start, end  time.Time // validity in the trusted root
}

func newFulcioCA(t testing.TB) *fulcioCA {
	t.Helper()
	rc, rk, err := ca.GenerateRootCa()
	if err != nil {
		t.Fatal(err)
	}
	ic, ik, err := ca.GenerateFulcioIntermediate(rc, rk)
	if err != nil {
		t.Fatal(err)
	}
	return &fulcioCA{root: rc, inter: ic, interKey: ik, start: time.Now().Add(-5 * time.Hour), end: time.Now().Add(time.Hour)}
}

// claims are a certificate's identity: issuer, subject (SAN URI) and
// Fulcio extensions by OID suffix (1.3.6.1.4.1.57264.1.N).
type claims struct {
	issuer, subject string
	ext             map[int]string
}

func githubClaims(owner, ref, event string) claims {
	repo := "https://github.com/" + owner + "/app"
	wf := repo + "/.github/workflows/build.yml@" + ref
	return claims{issuer: githubIssuer, subject: wf, ext: map[int]string{
		9: wf, 10: "c0ffee", 11: "github-hosted", 12: repo, 13: "c0ffee", 14: ref,
		15: "1001", 16: "https://github.com/" + owner, 17: "2002", 18: wf, 19: "c0ffee",
		20: event, 21: repo + "/actions/runs/7/attempts/1", 22: "private",
	}}
}

func gitlabClaims(ref string) claims {
	cfg := "https://gitlab.com/acme/app//.gitlab-ci.yml@" + ref
	return claims{issuer: gitlabIssuer, subject: cfg, ext: map[int]string{
		9: cfg, 10: "beef", 11: "gitlab-hosted", 12: "https://gitlab.com/acme/app", 13: "beef", 14: ref,
		15: "42", 16: "https://gitlab.com/acme", 17: "7", 18: cfg, 19: "beef", 20: "push",
		21: "https://gitlab.com/acme/app/-/jobs/99", 22: "private",
	}}
}

// issue makes a leaf certificate for c over key, valid from notBefore for
// 10 minutes (as Fulcio's).
func (f *fulcioCA) issue(t testing.TB, c claims, key crypto.PublicKey, notBefore time.Time) *x509.Certificate {
	t.Helper()
	u, err := url.Parse(c.subject)
	if err != nil {
		t.Fatal(err)
	}
	utf8 := func(s string) []byte {
		b, err := asn1.MarshalWithParams(s, "utf8")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	exts := []pkix.Extension{
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}, Value: []byte(c.issuer)},
		{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}, Value: utf8(c.issuer)},
	}
	for n, v := range c.ext {
		exts = append(exts, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, n}, Value: utf8(v)})
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		URIs:            []*url.URL{u},
		NotBefore:       notBefore,
		NotAfter:        notBefore.Add(10 * time.Minute),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.inter, key, f.interKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (f *fulcioCA) authority() root.CertificateAuthority {
	return &root.FulcioCertificateAuthority{Root: f.root, Intermediates: []*x509.Certificate{f.inter}, ValidityPeriodStart: f.start, ValidityPeriodEnd: f.end, URI: "https://fulcio.test"}
}

// keylessFixture is a registry, the test authorities and a policy
// directory with a trusted root file over them.
type keylessFixture struct {
	*fixture
	vs   *ca.VirtualSigstore
	ca   *fulcioCA
	root string // trusted root path
}

func newKeylessFixture(t testing.TB) *keylessFixture {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	k := &keylessFixture{fixture: newFixture(t), vs: vs, ca: newFulcioCA(t)}
	k.root = k.writeRoot(t, "trusted_root.json", k.ca)
	return k
}

// writeRoot writes a trusted root with the given certificate authorities
// and the VirtualSigstore's timestamp authority and log.
func (k *keylessFixture) writeRoot(t testing.TB, file string, cas ...*fulcioCA) string {
	t.Helper()
	var auths []root.CertificateAuthority
	var err error
	for _, c := range cas {
		auths = append(auths, c.authority())
	}
	// The VirtualSigstore's log carries its id as hex text; a trusted root
	// file carries the raw key id.
	logs := map[string]*root.TransparencyLog{}
	for id, l := range k.vs.RekorLogs() {
		c := *l
		if c.ID, err = hex.DecodeString(id); err != nil {
			t.Fatal(err)
		}
		logs[id] = &c
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, auths, nil, k.vs.TimestampingAuthorities(), logs)
	if err != nil {
		t.Fatal(err)
	}
	data, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(k.dir, file)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// keylessPolicy: builders gha (identity, as given), gitlab (identity) and
// ci (key), one scope for team/* allowing all three, scopeExtra after it.
func (k *keylessFixture) keylessPolicy(t *testing.T, identity, scopeExtra string) *trustpolicy.Policy {
	t.Helper()
	return writePolicy(t, k.dir, k.policyText(identity, scopeExtra))
}

const mainIdentity = `      issuer: ` + githubIssuer + `
      subject: ` + mainSubject + `
      repository: https://github.com/acme/app
      ref: refs/heads/main
      eventName: "{push,workflow_dispatch}"`

// signOpts say how a keyless signature is made.
type signOpts struct {
	claims    claims
	ca        *fulcioCA // default: the fixture's
	notBefore time.Time // certificate validity start; default now - 1m
	noTSA     bool
	tlog      bool      // add a transparency log entry (bundle: DSSE entry)
	wrongKey  bool      // sign with a key other than the certificate's
	created   time.Time // the signed (claimed) creation annotation; default now
	bundle    bool      // sigstore bundle (cosign v3) instead of a .sig layer (cosign v2)
}

// signKeyless signs digest in repo as a keyless signer would and attaches
// the signature; it returns the leaf certificate.
func (k *keylessFixture) signKeyless(t testing.TB, repo name.Repository, d v1.Hash, o signOpts) *x509.Certificate {
	t.Helper()
	if o.ca == nil {
		o.ca = k.ca
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Minute)
	}
	if o.created.IsZero() {
		o.created = time.Now()
	}
	key := testreg.Key(t)
	cert := o.ca.issue(t, o.claims, key.Public(), o.notBefore)
	signer := key
	if o.wrongKey {
		signer = testreg.Key(t)
	}
	ann := map[string]string{signature.AnnotationCreated: o.created.UTC().Format(time.RFC3339)}
	if o.bundle {
		ann[signature.AnnotationIdentity] = repo.Name()
		st, err := signature.NewStatement(d, ann)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := keys.Sign(signer, signature.PAE(signature.InTotoPayloadType, st))
		if err != nil {
			t.Fatal(err)
		}
		vm := map[string]any{"certificate": map[string]any{"rawBytes": cert.Raw}}
		if !o.noTSA {
			vm["timestampVerificationData"] = map[string]any{"rfc3161Timestamps": []any{map[string]any{"signedTimestamp": k.tsa(t, sig)}}}
		}
		if o.tlog {
			env := &ssdsse.Envelope{PayloadType: signature.InTotoPayloadType, Payload: base64.StdEncoding.EncodeToString(st),
				Signatures: []ssdsse.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}}}
			e, err := k.vs.GenerateTlogEntry(cert, env, sig, time.Now().Unix(), true)
			if err != nil {
				t.Fatal(err)
			}
			tle := e.TransparencyLogEntry()
			tle.KindVersion = &rekorpb.KindVersion{Kind: "intoto", Version: "0.0.2"}
			set, err := k.vs.RekorSignPayload(tlog.RekorPayload{Body: base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
				IntegratedTime: tle.IntegratedTime, LogIndex: tle.LogIndex, LogID: hex.EncodeToString(tle.LogId.KeyId)})
			if err != nil {
				t.Fatal(err)
			}
			tle.InclusionPromise = &rekorpb.InclusionPromise{SignedEntryTimestamp: set}
			raw, err := protojson.Marshal(tle)
			if err != nil {
				t.Fatal(err)
			}
			vm["tlogEntries"] = []json.RawMessage{raw}
		}
		b, err := json.Marshal(map[string]any{
			"mediaType":            signature.BundleMediaType,
			"verificationMaterial": vm,
			"dsseEnvelope": map[string]any{"payload": st, "payloadType": signature.InTotoPayloadType,
				"signatures": []any{map[string]any{"sig": sig}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := signature.AppendBundle(context.Background(), repo, d, b, signature.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		return cert
	}
	payload, err := signature.NewPayload(repo.Name(), d, ann)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := keys.Sign(signer, payload)
	if err != nil {
		t.Fatal(err)
	}
	la := map[string]string{
		signature.SignatureAnnotation:   base64.StdEncoding.EncodeToString(sig),
		signature.AnnotationCertificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		signature.AnnotationChain: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.ca.inter.Raw})) +
			string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.ca.root.Raw})),
	}
	if !o.noTSA {
		ts, _ := json.Marshal(map[string][]byte{"SignedRFC3161Timestamp": k.tsa(t, sig)})
		la[signature.AnnotationRFC3161Timestamp] = string(ts)
	}
	appendSigLayer(t, repo, d, payload, la)
	return cert
}

func (k *keylessFixture) tsa(t testing.TB, sig []byte) []byte {
	t.Helper()
	ts, err := k.vs.TimestampResponse(sig)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// appendSigLayer adds a layer with the given annotations to digest's .sig
// tag, as cosign v2 writes a keyless signature.
func appendSigLayer(t testing.TB, repo name.Repository, d v1.Hash, payload []byte, ann map[string]string) {
	t.Helper()
	tag := signature.SigTag(repo, d)
	base, err := remote.Image(tag)
	if err != nil {
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(payload, "application/vnd.dev.cosign.simplesigning.v1+json"),
		MediaType:   "application/vnd.dev.cosign.simplesigning.v1+json",
		Annotations: ann,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
}

func (k *keylessFixture) verifyAt(t testing.TB, p *trustpolicy.Policy, ref string, at time.Time) *Result {
	t.Helper()
	res, err := New(p, WithClock(func() time.Time { return at })).Explain(context.Background(), ref)
	if err != nil {
		t.Fatalf("Verify(%q) error: %v", ref, err)
	}
	return res
}

func certID(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestKeyless covers the keyless rules: each attack case fails without the
// rule it names, each positive case shows what a real CI certificate
// passes with. Every case runs in both formats (cosign v2 .sig layer with
// certificate annotations, and sigstore bundle).
func TestKeyless(t *testing.T) {
	type tc struct {
		name     string
		identity string // default mainIdentity
		scope    string
		opts     func(k *keylessFixture) signOpts
		at       time.Duration // verifier clock offset from now
		extra    func(t *testing.T, k *keylessFixture) string
		want     Verdict
		reason   string
		check    func(t *testing.T, res *Result)
		// bundleOnly: the test log makes DSSE entries, which only a
		// bundle carries (a .sig layer's would be a hashedrekord).
		bundleOnly bool
	}
	main := func(*keylessFixture) signOpts {
		return signOpts{claims: githubClaims("acme", "refs/heads/main", "push")}
	}
	tests := []tc{{
		name: "github main-branch workflow",
		opts: main, want: VerdictTrusted,
		check: func(t *testing.T, res *Result) {
			s := res.Signers[0]
			if s.Builder != "gha" || s.Subject != mainSubject || s.Issuer != githubIssuer || !strings.HasPrefix(s.Certificate, "sha256:") || s.SignedAt == "" {
				t.Errorf("signer = %+v", s)
			}
		},
	}, {
		name: "gitlab main-branch pipeline",
		opts: func(*keylessFixture) signOpts { return signOpts{claims: gitlabClaims("refs/heads/main")} },
		want: VerdictTrusted,
		check: func(t *testing.T, res *Result) {
			if res.Signers[0].Builder != "gitlab" {
				t.Errorf("signer = %+v", res.Signers[0])
			}
		},
	}, {
		name: "every claim matched (github)",
		identity: mainIdentity + `
      repositoryID: "1001"
      repositoryOwner: https://github.com/acme
      repositoryOwnerID: "2002"
      repositoryVisibility: private
      sha: c0ffee
      workflowRef: https://github.com/acme/app/.github/workflows/*@refs/heads/main
      workflowSha: c0ffee
      jobWorkflowRef: https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main
      jobWorkflowSha: c0ffee
      runnerEnvironment: github-hosted
      runInvocation: https://github.com/acme/app/actions/runs/**
      requireTimestamp: tsa`,
		opts: main, want: VerdictTrusted,
	}, {
		name: "attack: another repository with the same workflow path",
		opts: func(*keylessFixture) signOpts {
			return signOpts{claims: githubClaims("evil", "refs/heads/main", "push")}
		},
		want: VerdictUntrusted, reason: `subject "https://github.com/evil/app/.github/workflows/build.yml@refs/heads/main" does not match`,
	}, {
		name: "attack: another repository, subject glob too wide, repository claim holds",
		identity: `      issuer: ` + githubIssuer + `
      subject: "https://github.com/*/app/.github/workflows/build.yml@refs/heads/main"
      repository: https://github.com/acme/app`,
		opts: func(*keylessFixture) signOpts {
			return signOpts{claims: githubClaims("evil", "refs/heads/main", "push")}
		},
		want: VerdictUntrusted, reason: `certificate repository "https://github.com/evil/app" does not match`,
	}, {
		name: "attack: pull-request run of the same workflow",
		opts: func(*keylessFixture) signOpts {
			return signOpts{claims: githubClaims("acme", "refs/pull/7/merge", "pull_request")}
		},
		want: VerdictUntrusted, reason: "refs/pull/7/merge",
	}, {
		name: "attack: pull-request event on a main-branch subject",
		opts: func(*keylessFixture) signOpts {
			c := githubClaims("acme", "refs/heads/main", "pull_request_target")
			return signOpts{claims: c}
		},
		want: VerdictUntrusted, reason: `certificate eventName "pull_request_target" does not match`,
	}, {
		name: "attack: token from another issuer",
		opts: func(*keylessFixture) signOpts {
			c := githubClaims("acme", "refs/heads/main", "push")
			c.issuer = "https://token.evil.example"
			return signOpts{claims: c}
		},
		want: VerdictUntrusted, reason: `certificate issuer "https://token.evil.example" is not`,
	}, {
		name: "attack: certificate from a CA not in the trusted root",
		opts: func(*keylessFixture) signOpts {
			return signOpts{claims: githubClaims("acme", "refs/heads/main", "push"), ca: newFulcioCA(t)}
		},
		want: VerdictUntrusted, reason: "does not chain to a certificate authority of the trusted root",
	}, {
		name: "attack: timestamp outside the certificate's validity",
		opts: func(*keylessFixture) signOpts {
			return signOpts{claims: githubClaims("acme", "refs/heads/main", "push"), notBefore: time.Now().Add(-2 * time.Hour)}
		},
		want: VerdictUntrusted, reason: "does not chain to a certificate authority of the trusted root",
	}, {
		name: "attack: no timestamp at all",
		opts: func(*keylessFixture) signOpts {
			return signOpts{claims: githubClaims("acme", "refs/heads/main", "push"), noTSA: true}
		},
		want: VerdictUntrusted, reason: "no verified time: the signature carries no RFC 3161 timestamp",
	}, {
		name: "attack: certificate and signature do not match",
		opts: func(*keylessFixture) signOpts {
			return signOpts{claims: githubClaims("acme", "refs/heads/main", "push"), wrongKey: true}
		},
		want: VerdictUntrusted, reason: "the signature does not verify with the certificate's key",
	}, {
		name: "attack: expired trusted-root entry",
		extra: func(t *testing.T, k *keylessFixture) string {
			k.ca.start, k.ca.end = time.Now().Add(-10*time.Hour), time.Now().Add(-time.Hour)
			k.writeRoot(t, filepath.Base(k.root), k.ca)
			return ""
		},
		opts: main, want: VerdictUntrusted, reason: "does not chain to a certificate authority of the trusted root",
	}, {
		name:  "maxAge counts from the verified time, not the claimed one",
		scope: "    maxAge: 1h",
		opts: func(*keylessFixture) signOpts {
			return signOpts{claims: githubClaims("acme", "refs/heads/main", "push"), created: time.Now().Add(2 * time.Hour)}
		},
		at:   2 * time.Hour,
		want: VerdictUntrusted, reason: "(verified time), older than maxAge 1h0m0s",
	}, {
		name:  "maxAge within",
		scope: "    maxAge: 1h",
		opts:  main, at: 30 * time.Minute, want: VerdictTrusted,
	}, {
		name: "revoked certificate",
		opts: main,
		extra: func(t *testing.T, k *keylessFixture) string {
			return "revoked: [REVOKED]"
		},
		want: VerdictUntrusted, reason: "revoked certificate",
	}, {
		name: "a transparency log entry gives no verified time",
		opts: func(*keylessFixture) signOpts {
			return signOpts{claims: githubClaims("acme", "refs/heads/main", "push"), noTSA: true, tlog: true}
		},
		bundleOnly: true, want: VerdictUntrusted, reason: "no verified time: the signature carries no RFC 3161 timestamp; transparency log entries are not verified",
	}, {
		name: "a timestamp by an authority not in the trusted root",
		extra: func(t *testing.T, k *keylessFixture) string {
			other, err := ca.NewVirtualSigstore()
			if err != nil {
				t.Fatal(err)
			}
			k.vs = other // signs the timestamps; the trusted root keeps the first one
			return ""
		},
		opts: main, want: VerdictUntrusted, reason: "no verified time: no timestamp authority of the trusted root signed its timestamps",
	}}
	for _, tt := range tests {
		for _, bundle := range []bool{false, true} {
			format := "legacy"
			if bundle {
				format = "bundle"
			}
			if tt.bundleOnly && !bundle {
				continue
			}
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				k := newKeylessFixture(t)
				extra := ""
				if tt.extra != nil {
					extra = tt.extra(t, k)
				}
				identity := tt.identity
				if identity == "" {
					identity = mainIdentity
				}
				repo := k.reg.Repo(t, "team/app-cache")
				d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
				o := tt.opts(k)
				o.bundle = bundle
				cert := k.signKeyless(t, repo, d, o)
				scope := strings.ReplaceAll(tt.scope, "HOST", k.reg.Host)
				if strings.Contains(extra, "REVOKED") {
					scope = strings.ReplaceAll(extra, "REVOKED", certID(cert)) + "\n" + scope
				}
				p := k.keylessPolicyWith(t, identity, scope)
				res := k.verifyAt(t, p, repo.Tag("main").String(), time.Now().Add(tt.at))
				wantVerdict(t, res, tt.want, tt.reason)
				if tt.check != nil && res.Trusted {
					tt.check(t, res)
				}
			})
		}
	}
}

// keylessPolicyWith is keylessPolicy with text after the team/* scope (a
// scope field when indented by four, a top-level field when not).
func (k *keylessFixture) keylessPolicyWith(t testing.TB, identity, text string) *trustpolicy.Policy {
	t.Helper()
	if strings.HasPrefix(text, "revoked:") {
		// A top-level field: before the builders.
		first, rest, _ := strings.Cut(text, "\n")
		return writePolicy(t, k.dir, strings.Replace(k.policyText(identity, rest), "builders:\n", first+"\nbuilders:\n", 1))
	}
	return writePolicy(t, k.dir, k.policyText(identity, text))
}

func (k *keylessFixture) policyText(identity, scopeExtra string) string {
	return fmt.Sprintf(`version: 1
trustedRoot: %s
builders:
  - name: gha
    identity:
%s
  - name: gitlab
    identity:
      issuer: %s
      subject: "https://gitlab.com/acme/app//.gitlab-ci.yml@refs/heads/main"
      ref: refs/heads/main
  - name: ci
    key: ci.pub
scopes:
  - repositories: ["%s/team/*"]
    builders: [gha, gitlab, ci]
%s
`, filepath.Base(k.root), identity, gitlabIssuer, k.reg.Host, scopeExtra)
}

// TestKeylessThreshold: the threshold counts distinct builders across key
// and identity builders; two keyless signatures of one identity count once.
func TestKeylessThreshold(t *testing.T) {
	k := newKeylessFixture(t)
	p := k.keylessPolicyWith(t, mainIdentity, "    threshold: 2")
	repo := k.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	main := signOpts{claims: githubClaims("acme", "refs/heads/main", "push")}
	k.signKeyless(t, repo, d, main)
	k.signKeyless(t, repo, d, main)
	wantVerdict(t, k.verifyAt(t, p, repo.Tag("main").String(), time.Now()), VerdictUntrusted, "1 of the 2 required allowed builders signed")
	sign(t, k.ci, "ci", repo, d, time.Now(), nil)
	res := k.verifyAt(t, p, repo.Tag("main").String(), time.Now())
	wantVerdict(t, res, VerdictTrusted, "")
	if len(res.Signers) != 2 || res.Signers[0].Builder != "ci" || res.Signers[1].Builder != "gha" {
		t.Errorf("signers = %+v", res.Signers)
	}
}

// TestKeylessNotAllowed: an identity builder that the scope does not allow
// is named as such, as a key builder is.
func TestKeylessNotAllowed(t *testing.T) {
	k := newKeylessFixture(t)
	text := strings.Replace(k.policyText(mainIdentity, ""), "builders: [gha, gitlab, ci]", "builders: [gitlab, ci]", 1)
	p := writePolicy(t, k.dir, text)
	repo := k.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	k.signKeyless(t, repo, d, signOpts{claims: githubClaims("acme", "refs/heads/main", "push")})
	wantVerdict(t, k.verifyAt(t, p, repo.Tag("main").String(), time.Now()), VerdictUntrusted, "signed by builder gha, which is not allowed")
}

// TestKeylessWithoutTrustedRoot: a keyless signature under a key-only
// policy does not count, and says why.
func TestKeylessWithoutTrustedRoot(t *testing.T) {
	k := newKeylessFixture(t)
	p := k.policy(t, "", "")
	repo := k.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	k.signKeyless(t, repo, d, signOpts{claims: githubClaims("acme", "refs/heads/main", "push")})
	wantVerdict(t, k.verifyAt(t, p, repo.Tag("main").String(), time.Now()), VerdictUntrusted, "the policy has no trustedRoot")
}

// BenchmarkVerifyKeyless: one keyless signature (certificate, RFC 3161
// timestamp), against the baseline of one key signature measured in the
// same run (x-baseline). Both are cold verifications in a new Verifier.
func BenchmarkVerifyKeyless(b *testing.B) {
	k := newKeylessFixture(b)
	p := k.keylessPolicyWith(b, mainIdentity, "")
	keyless := k.reg.Repo(b, "team/keyless")
	d := testreg.PushRandom(b, keyless.Tag("main"), 256, 1)
	k.signKeyless(b, keyless, d, signOpts{claims: githubClaims("acme", "refs/heads/main", "push")})
	keyed := k.reg.Repo(b, "team/keyed")
	d2 := testreg.PushRandom(b, keyed.Tag("main"), 256, 1)
	sign(b, k.ci, "ci", keyed, d2, time.Now(), nil)
	once := func(repo name.Repository) {
		res, err := New(p).Verify(context.Background(), repo.Tag("main").String())
		if err != nil || !res.Trusted {
			b.Fatalf("Verify = %v, %v (%s)", res.Verdict, err, res.Reason())
		}
	}
	once(keyless)
	once(keyed)
	b.ReportAllocs()
	for b.Loop() {
		once(keyless)
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	const rounds = 300
	start := time.Now()
	for range rounds {
		once(keyed)
	}
	b.ReportMetric(perOp/(float64(time.Since(start).Nanoseconds())/rounds), "x-baseline")
}

// FuzzKeylessMaterial: whatever a registry serves as keyless material (a
// certificate, timestamps, the signature and what it signs), verification
// ends with an error or a result, never a panic, and never trusts material
// that no authority of the trusted root vouches for. The seeds include a
// real certificate and timestamp of the test authorities over another
// signature.
func FuzzKeylessMaterial(f *testing.F) {
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		f.Fatal(err)
	}
	fc := newFulcioCA(f)
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, []root.CertificateAuthority{fc.authority()}, nil, vs.TimestampingAuthorities(), nil)
	if err != nil {
		f.Fatal(err)
	}
	key := testreg.Key(f)
	cert := fc.issue(f, githubClaims("acme", "refs/heads/main", "push"), key.Public(), time.Now().Add(-time.Minute))
	ts, err := vs.TimestampResponse([]byte("another signature"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cert.Raw, ts, []byte("payload"), []byte("sig"))
	f.Add([]byte{}, []byte{}, []byte{}, []byte{})
	f.Add(cert.Raw[:len(cert.Raw)/2], ts[:len(ts)/2], []byte("{}"), []byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, certDER, tsr, payload, sig []byte) {
		s := signature.Signature{Format: signature.FormatLegacy, Payload: payload, Signature: sig,
			Keyless: &signature.Keyless{Certificate: certDER, Timestamps: [][]byte{tsr}}}
		if r, err := verifyKeyless(tr, s); err == nil {
			t.Fatalf("verified material signed by no key of a certificate: %+v", r)
		}
	})
}
