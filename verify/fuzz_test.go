package verify

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// FuzzIdentityRepository checks the reading of the repository a signature
// names (the payload's docker-reference, the bundle's identity annotation):
// it never panics, and what it returns is a canonical repository name.
func FuzzIdentityRepository(f *testing.F) {
	for _, s := range []string{
		"registry.example.com/team/app",
		"Registry.Example.com/team/app",
		"registry.example.com/team/app:tag",
		"registry.example.com/team/app@sha256:" + strings.Repeat("ab", 32),
		"registry.example.com/team/app:tag@sha256:" + strings.Repeat("ab", 32),
		"ubuntu", "docker.io/library/ubuntu", "index.docker.io/ubuntu:22.04",
		"localhost:5000/x", "127.0.0.1:5000/a/b/c",
		"registry.example.com/Team/App", "registry.example.com/team//app", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := identityRepository(s)
		if !ok {
			return
		}
		c, err := trustpolicy.CanonicalRepository(r)
		if err != nil || c != r {
			t.Fatalf("identityRepository(%q) = %q, which is not canonical (%q, %v)", s, r, c, err)
		}
	})
}

// FuzzSignedContent checks the verifier's reading of signed content:
// whatever bytes an allowed builder's key signed, as a simple-signing
// payload or as a bundle's statement, the signature counts only when those
// bytes parse and name exactly the digest and the repository being
// verified. (An attacker cannot sign; this guards the parsers and rules
// against a payload a sloppy or older signer wrote.)
func FuzzSignedContent(f *testing.F) {
	priv := testreg.Key(f)
	pubPEM, err := keys.MarshalPublicKeyPEM(priv.Public())
	if err != nil {
		f.Fatal(err)
	}
	const repo = "registry.example.com/team/app"
	p, err := trustpolicy.Parse("policy.yaml", []byte("version: 1\nbuilders:\n  - name: ci\n    key: |\n      "+strings.ReplaceAll(strings.TrimSpace(string(pubPEM)), "\n", "\n      ")+"\n"+
		"scopes:\n  - repositories: [\"registry.example.com/team/*\"]\n    builders: [ci]\n"))
	if err != nil {
		f.Fatal(err)
	}
	scope, ok := p.Match(repo)
	if !ok {
		f.Fatal("no scope")
	}
	v := New(p, WithClock(func() time.Time { return now }))
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	other := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}

	created := now.Add(-time.Hour).Format(time.RFC3339)
	for _, r := range []string{repo, "Registry.Example.com/team/app", repo + ":tag", "registry.example.com/team/other", "registry.example.com/team/app/sub"} {
		for _, h := range []v1.Hash{d, other} {
			if pl, err := signature.NewPayload(r, h, map[string]string{"created": created}); err == nil {
				f.Add(pl, false)
			}
			if st, err := signature.NewStatement(h, map[string]string{"identity": r, "created": created}); err == nil {
				f.Add(st, true)
			}
		}
	}
	st, _ := signature.NewStatement(d, nil) // no identity: an unbound bundle
	f.Add(st, true)
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"registry.example.com/team/app"},"image":{"docker-manifest-digest":"sha256:`+other.Hex+`","docker-manifest-digest":"`+d.String()+`"},"type":"cosign container image signature"}}`), false)
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"registry.example.com/team/app"},"image":{"Docker-Manifest-Digest":"`+d.String()+`"},"type":"Cosign Container Image Signature"}}`), false)

	f.Fuzz(func(t *testing.T, content []byte, bundle bool) {
		s := signature.Signature{Format: signature.FormatLegacy, Source: "fuzz", Payload: content}
		signed := content
		if bundle {
			s.Format = signature.FormatBundle
			s.Signed = signature.PAE(signature.InTotoPayloadType, content)
			signed = s.Signed
		}
		sig, err := keys.Sign(priv, signed)
		if err != nil {
			t.Fatal(err)
		}
		s.Signature = sig
		sc := v.evaluate(scope, repo, d, s)
		if sc.Signer == nil {
			return
		}
		var digest v1.Hash
		var identity string
		if bundle {
			st, err := signature.ParseStatement(content)
			if err != nil {
				t.Fatalf("a bundle counted whose statement does not parse (%v): %q", err, content)
			}
			digest = st.Digest()
			var ok bool
			if identity, ok = st.Identity(); !ok {
				t.Fatalf("an unbound bundle counted without acceptUnboundBundles: %q", content)
			}
		} else {
			pl, err := signature.ParsePayload(content)
			if err != nil {
				t.Fatalf("a payload counted that does not parse (%v): %q", err, content)
			}
			digest, identity = pl.Digest(), pl.Critical.Identity.DockerReference
		}
		if digest != d {
			t.Fatalf("a signature for digest %s counted for %s: %q", digest, d, content)
		}
		if r, ok := identityRepository(identity); !ok || r != repo {
			t.Fatalf("a signature for repository %q counted for %s: %q", identity, repo, content)
		}
		if sc.Signer.Builder != "ci" {
			t.Fatalf("signer = %+v; want builder ci", sc.Signer)
		}
	})
}
