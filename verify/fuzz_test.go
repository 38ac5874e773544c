package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// FuzzDecodeLedgerEntry checks the ledger's value decoder on arbitrary
// stored bytes (a ledger file is only as trustworthy as its directory, and
// a damaged one must be detected, never trusted): it never panics, every
// failure is "corrupt" (the ledger is then rebuilt), and an entry it
// accepts is the one stored under its key and survives a round trip.
func FuzzDecodeLedgerEntry(f *testing.F) {
	e := testEntry(1, now.Add(time.Hour))
	key := e.Pinned()
	good, err := encodeLedgerEntry(key, &e)
	if err != nil {
		f.Fatal(err)
	}
	other := testEntry(2, now.Add(time.Hour))
	otherValue, _ := encodeLedgerEntry(other.Pinned(), &other)
	sum := ledgerChecksum(key, []byte("{not json"))
	f.Add(key, good)
	f.Add(key, otherValue)                             // another entry's value under this key
	f.Add(other.Pinned(), good)                        // this value under another key
	f.Add(key, append(sum[:], []byte("{not json")...)) // checksum right, JSON wrong
	f.Add(key, good[:len(good)-1])
	f.Add(key, good[:31])
	f.Add(key, []byte{})
	f.Add("", []byte("x"))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		e, err := decodeLedgerEntry(key, value)
		if err != nil {
			if e != nil || !isCorrupt(err) {
				t.Fatalf("decodeLedgerEntry(%q, %q) = %v, %v; want nil and a corrupt error", key, value, e, err)
			}
			return
		}
		if e.Pinned() != key {
			t.Fatalf("decodeLedgerEntry(%q) = entry for %s", key, e.Pinned())
		}
		again, err := encodeLedgerEntry(key, e)
		if err != nil {
			t.Fatalf("encodeLedgerEntry(decoded %q) = %v", key, err)
		}
		back, err := decodeLedgerEntry(key, again)
		if err != nil {
			t.Fatalf("decodeLedgerEntry(encodeLedgerEntry(%+v)) = %v", e, err)
		}
		if diff := cmp.Diff(e, back); diff != "" {
			t.Fatalf("ledger entry round trip (-first +second):\n%s", diff)
		}
	})
}

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
		c, err := CanonicalRepository(r)
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
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	pubPEM, err := keys.MarshalPublicKeyPEM(priv.Public())
	if err != nil {
		f.Fatal(err)
	}
	const repo = "registry.example.com/team/app"
	p, err := ParsePolicy("policy.yaml", []byte("version: 1\nbuilders:\n  - name: ci\n    key: |\n"+indent(string(pubPEM), "      ")+
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

// FuzzDecodePingEntry checks the decoder of the registry pings the ledger
// remembers, on arbitrary stored bytes: it never panics, and an entry it
// accepts is the one stored under its key (scheme and registry as the key
// says) and survives a round trip. What an accepted outcome may say is
// checked again by the ping cache before use (registry.PingOutcome.valid,
// internal/registry TestPingCacheCorruptEntry).
func FuzzDecodePingEntry(f *testing.F) {
	key := pingKey("http", "127.0.0.1:5000")
	good, err := encodePingEntry(key, &pingEntry{Registry: "127.0.0.1:5000", Scheme: "http", PingOutcome: registry.PingOutcome{
		Status: 401, Challenges: []string{`Bearer realm="https://auth.example/token",service="registry"`},
		RecordedAt: now, Expires: now.Add(time.Hour)}})
	if err != nil {
		f.Fatal(err)
	}
	other, _ := encodePingEntry(pingKey("https", "ghcr.io"), &pingEntry{Registry: "ghcr.io", Scheme: "https", PingOutcome: registry.PingOutcome{Status: 200, RecordedAt: now, Expires: now.Add(time.Hour)}})
	f.Add(key, good)
	f.Add(key, other)                               // another registry's value under this key
	f.Add(pingKey("https", "127.0.0.1:5000"), good) // this value under the other scheme
	f.Add(key, good[:len(good)-1])
	f.Add(key, good[:31])
	f.Add(key, []byte{})
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		e, err := decodePingEntry(key, value)
		if err != nil {
			if e != nil {
				t.Fatalf("decodePingEntry(%q, %q) = %+v and error %v", key, value, e, err)
			}
			return
		}
		if pingKey(e.Scheme, e.Registry) != key {
			t.Fatalf("decodePingEntry(%q) = entry for %s", key, pingKey(e.Scheme, e.Registry))
		}
		again, err := encodePingEntry(key, e)
		if err != nil {
			t.Fatalf("encodePingEntry(decoded %q) = %v", key, err)
		}
		back, err := decodePingEntry(key, again)
		if err != nil {
			t.Fatalf("decodePingEntry(encodePingEntry(%+v)) = %v", e, err)
		}
		if diff := cmp.Diff(e, back); diff != "" {
			t.Fatalf("ping entry round trip (-first +second):\n%s", diff)
		}
	})
}
