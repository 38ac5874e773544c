package signature

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

const testHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPAE(t *testing.T) {
	// The example of the DSSE protocol description.
	got := string(PAE("http://example.com/HelloWorld", []byte("hello world")))
	want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
	if got != want {
		t.Errorf("PAE = %q; want %q", got, want)
	}
	if got := string(PAE("", nil)); got != "DSSEv1 0  0 " {
		t.Errorf("PAE(empty) = %q", got)
	}
}

func TestNewStatementShape(t *testing.T) {
	d := v1.Hash{Algorithm: "sha256", Hex: testHex}
	got, err := NewStatement(d, map[string]string{"identity": "registry.example/team/cache", "builder": "ci"})
	if err != nil {
		t.Fatal(err)
	}
	// The cosign v3 shape (cmd/cosign/cli/sign/sign.go signDigestBundle):
	// no subject name, annotations on the subject, empty predicate. Only
	// fields in the in-toto protobuf schema: cosign decodes it with
	// protojson, which refuses unknown fields.
	want := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testHex + `"},` +
		`"annotations":{"builder":"ci","identity":"registry.example/team/cache"}}],` +
		`"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}`
	if string(got) != want {
		t.Errorf("NewStatement =\n%s\nwant\n%s", got, want)
	}
	st, err := ParseStatement(got)
	if err != nil {
		t.Fatalf("ParseStatement(NewStatement) = %v", err)
	}
	if st.Digest() != d {
		t.Errorf("Digest() = %v; want %v", st.Digest(), d)
	}
	if id, ok := st.Identity(); !ok || id != "registry.example/team/cache" {
		t.Errorf("Identity() = %q, %v", id, ok)
	}

	if _, err := NewStatement(v1.Hash{Algorithm: "sha512", Hex: testHex}, nil); err == nil {
		t.Error("NewStatement(sha512) succeeded")
	}
	noAnn, err := NewStatement(d, nil)
	if err != nil || strings.Contains(string(noAnn), "annotations") {
		t.Errorf("NewStatement(no annotations) = %s, %v", noAnn, err)
	}
}

func TestParseStatement(t *testing.T) {
	subj := `"subject":[{"digest":{"sha256":"` + testHex + `"}}]`
	pt := `"predicateType":"https://sigstore.dev/cosign/sign/v1"`
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		// What cosign v2.6.5 --new-bundle-format writes: no predicate, no annotations.
		{"cosign v2", `{"_type":"https://in-toto.io/Statement/v1",` + subj + `,` + pt + `}`, true},
		{"cosign v3", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testHex + `"},"annotations":{"a":"b"}}],` + pt + `,"predicate":{}}`, true},
		{"v0.1", `{"_type":"https://in-toto.io/Statement/v0.1",` + subj + `,` + pt + `,"predicate":{}}`, true},
		{"null predicate", `{"_type":"https://in-toto.io/Statement/v1",` + subj + `,` + pt + `,"predicate":null}`, true},
		{"unknown fields", `{"_type":"https://in-toto.io/Statement/v1",` + subj + `,` + pt + `,"x":1}`, true},
		{"other digests too", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha512":"aa","sha256":"` + testHex + `"}}],` + pt + `}`, true},
		{"wrong type", `{"_type":"https://in-toto.io/Statement/v2",` + subj + `,` + pt + `}`, false},
		{"no type", `{` + subj + `,` + pt + `}`, false},
		{"attestation", `{"_type":"https://in-toto.io/Statement/v1",` + subj + `,"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`, false},
		{"string predicate", `{"_type":"https://in-toto.io/Statement/v1",` + subj + `,` + pt + `,"predicate":"x"}`, false},
		{"no subject", `{"_type":"https://in-toto.io/Statement/v1",` + pt + `}`, false},
		{"null subject", `{"_type":"https://in-toto.io/Statement/v1","subject":[null],` + pt + `}`, false},
		{"two subjects", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testHex + `"}},{"digest":{"sha256":"` + testHex + `"}}],` + pt + `}`, false},
		{"no sha256", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha512":"` + testHex + testHex + `"}}],` + pt + `}`, false},
		{"short digest", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"abc"}}],` + pt + `}`, false},
		{"upper-case digest", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + strings.ToUpper(testHex) + `"}}],` + pt + `}`, false},
		{"trailing data", `{"_type":"https://in-toto.io/Statement/v1",` + subj + `,` + pt + `} {}`, false},
		{"trailing brace", `{"_type":"https://in-toto.io/Statement/v1",` + subj + `,` + pt + `}}`, false},
		{"not an object", `[]`, false},
		{"empty", ``, false},
		{"oversized", `{"_type":"https://in-toto.io/Statement/v1",` + subj + `,` + pt + `,"predicate":{"x":"` + strings.Repeat("a", MaxPayloadSize) + `"}}`, false},
	} {
		_, err := ParseStatement([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ParseStatement(%s) = %v; want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestStatementAnnotations(t *testing.T) {
	in := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testHex + `"},` +
		`"annotations":{"s":"v","n":12,"b":true,"z":null,"identity":"r.example/x"}}],` +
		`"predicateType":"https://sigstore.dev/cosign/sign/v1"}`
	st, err := ParseStatement([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s": "v", "n": "12", "b": "true", "identity": "r.example/x"}
	if diff := cmp.Diff(want, st.Annotations()); diff != "" {
		t.Errorf("Annotations() (-want +got):\n%s", diff)
	}
	for _, ann := range []string{`{}`, `{"identity":""}`, `{"identity":5}`} {
		in := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testHex + `"},"annotations":` + ann + `}],` +
			`"predicateType":"https://sigstore.dev/cosign/sign/v1"}`
		st, err := ParseStatement([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := st.Identity(); ok {
			t.Errorf("Identity() with annotations %s = %q, true; want none", ann, id)
		}
	}
}

func TestNewBundleVerifies(t *testing.T) {
	k := testreg.Key(t)
	d := v1.Hash{Algorithm: "sha256", Hex: testHex}
	st, err := NewStatement(d, map[string]string{AnnotationIdentity: "r.example/x"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := NewBundle(st, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle(raw)
	if err != nil {
		t.Fatalf("ParseBundle(NewBundle) = %v", err)
	}
	s := bundleSignature(b, "test")
	if string(s.Payload) != string(st) {
		t.Errorf("Payload = %s; want the statement", s.Payload)
	}
	if err := keys.VerifySignature(k.Public(), s.SignedBytes(), s.Signature); err != nil {
		t.Errorf("signature over SignedBytes does not verify: %v", err)
	}
	if err := keys.VerifySignature(k.Public(), s.Payload, s.Signature); err == nil {
		t.Error("signature verifies over the bare statement; a DSSE signature is over the PAE")
	}
	if err := keys.VerifySignature(testreg.Key(t).Public(), s.SignedBytes(), s.Signature); err == nil {
		t.Error("signature verifies with another key")
	}
	hint, _ := KeyHint(k.Public())
	if b.VerificationMaterial.PublicKey == nil || b.VerificationMaterial.PublicKey.Hint != hint {
		t.Errorf("hint = %+v; want %q", b.VerificationMaterial.PublicKey, hint)
	}
	// cosign's hint and trustcache's key id hash the same bytes.
	id, _ := keys.ID(k.Public())
	hb, _ := base64.StdEncoding.DecodeString(hint)
	if "sha256:"+hex.EncodeToString(hb) != id {
		t.Errorf("hint %s does not encode key id %s", hint, id)
	}
}

// TestNewBundleShape pins the exact JSON keys written: sigstore's protobuf
// JSON, which cosign decodes with protojson (unknown fields refused).
func TestNewBundleShape(t *testing.T) {
	raw, err := NewBundle([]byte(`{}`), testreg.Key(t))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	shape := func(v any) any {
		var walk func(v any) any
		walk = func(v any) any {
			switch v := v.(type) {
			case map[string]any:
				m := map[string]any{}
				for k, x := range v {
					m[k] = walk(x)
				}
				return m
			case []any:
				var l []any
				for _, x := range v {
					l = append(l, walk(x))
				}
				return l
			case string:
				return "string"
			}
			return v
		}
		return walk(v)
	}
	want := map[string]any{
		"mediaType":            "string",
		"verificationMaterial": map[string]any{"publicKey": map[string]any{"hint": "string"}},
		"dsseEnvelope": map[string]any{
			"payload":     "string",
			"payloadType": "string",
			"signatures":  []any{map[string]any{"sig": "string"}},
		},
	}
	if diff := cmp.Diff(want, shape(got)); diff != "" {
		t.Errorf("bundle JSON shape (-want +got):\n%s\n%s", diff, raw)
	}
	if got["mediaType"] != "application/vnd.dev.sigstore.bundle.v0.3+json" {
		t.Errorf("mediaType = %v", got["mediaType"])
	}
	env := got["dsseEnvelope"].(map[string]any)
	if env["payloadType"] != "application/vnd.in-toto+json" || env["payload"] != "e30=" {
		t.Errorf("dsseEnvelope = %v", env)
	}
}

func TestParseBundle(t *testing.T) {
	stmt := base64.StdEncoding.EncodeToString([]byte(`{"x":"y"}`))
	sig := base64.StdEncoding.EncodeToString([]byte("sig"))
	bundle := func(mediaType, env string) string {
		return `{"mediaType":"` + mediaType + `","verificationMaterial":{"publicKey":{"hint":"h"}},` + env + `}`
	}
	env := func(payload, payloadType, sigs string) string {
		return `"dsseEnvelope":{"payload":"` + payload + `","payloadType":"` + payloadType + `","signatures":` + sigs + `}`
	}
	good := env(stmt, InTotoPayloadType, `[{"sig":"`+sig+`"}]`)
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"key-signed", bundle(BundleMediaType, good), true},
		{"alternative media type", bundle("application/vnd.dev.sigstore.bundle+json;version=0.3", good), true},
		{"keyid", bundle(BundleMediaType, env(stmt, InTotoPayloadType, `[{"sig":"`+sig+`","keyid":"k"}]`)), true},
		{"url-safe unpadded base64", bundle(BundleMediaType, env(base64.RawURLEncoding.EncodeToString([]byte("{\"\xfb\xff\":1}")), InTotoPayloadType, `[{"sig":"`+sig+`"}]`)), true},
		{"with tlog entries and certificate", `{"mediaType":"` + BundleMediaType + `","verificationMaterial":{"certificate":{"rawBytes":"AAAA"},"tlogEntries":[{"logIndex":"1"}]},` + good + `}`, true},
		{"v0.2", bundle("application/vnd.dev.sigstore.bundle+json;version=0.2", good), false},
		{"v0.4", bundle("application/vnd.dev.sigstore.bundle.v0.4+json", good), false},
		{"message signature", bundle(BundleMediaType, `"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":"AAAA"}`), false},
		{"no content", `{"mediaType":"` + BundleMediaType + `"}`, false},
		{"other payload type", bundle(BundleMediaType, env(stmt, "application/vnd.dev.cosign.simplesigning.v1+json", `[{"sig":"`+sig+`"}]`)), false},
		{"no signatures", bundle(BundleMediaType, env(stmt, InTotoPayloadType, `[]`)), false},
		{"two signatures", bundle(BundleMediaType, env(stmt, InTotoPayloadType, `[{"sig":"`+sig+`"},{"sig":"`+sig+`"}]`)), false},
		{"empty signature", bundle(BundleMediaType, env(stmt, InTotoPayloadType, `[{"sig":""}]`)), false},
		{"empty payload", bundle(BundleMediaType, env("", InTotoPayloadType, `[{"sig":"`+sig+`"}]`)), false},
		{"bad base64", bundle(BundleMediaType, env("!!!!", InTotoPayloadType, `[{"sig":"`+sig+`"}]`)), false},
		{"payload not a string", `{"mediaType":"` + BundleMediaType + `","dsseEnvelope":{"payload":5,"payloadType":"` + InTotoPayloadType + `","signatures":[{"sig":"` + sig + `"}]}}`, false},
		{"trailing data", bundle(BundleMediaType, good) + `x`, false},
		{"not JSON", `<html>`, false},
		{"oversized", bundle(BundleMediaType, env(base64.StdEncoding.EncodeToString(make([]byte, MaxBundleSize)), InTotoPayloadType, `[{"sig":"`+sig+`"}]`)), false},
	} {
		_, err := ParseBundle([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ParseBundle(%s) = %v; want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSignedBytes(t *testing.T) {
	legacy := Signature{Format: FormatLegacy, Payload: []byte("p")}
	if string(legacy.SignedBytes()) != "p" {
		t.Errorf("legacy SignedBytes = %q; want the payload", legacy.SignedBytes())
	}
	b := Signature{Format: FormatBundle, Payload: []byte("p"), Signed: PAE(InTotoPayloadType, []byte("p"))}
	if got, want := string(b.SignedBytes()), "DSSEv1 28 application/vnd.in-toto+json 1 p"; got != want {
		t.Errorf("bundle SignedBytes = %q; want %q", got, want)
	}
}

func FuzzParseStatement(f *testing.F) {
	st, _ := NewStatement(v1.Hash{Algorithm: "sha256", Hex: testHex}, map[string]string{"identity": "r/x", "created": "2025-01-01T00:00:00Z"})
	f.Add(st)
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{"sha256":"` + testHex + `"},"annotations":{"n":1.5e300,"o":{"a":[1]}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}`))
	f.Add([]byte(`{"subject":[null]}`))
	f.Add([]byte(`{"subject":[{"digest":null}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatement(data)
		if err != nil {
			return
		}
		d := st.Digest()
		if d.Algorithm != "sha256" || len(d.Hex) != 64 {
			t.Errorf("accepted statement has digest %v", d)
		}
		st.Annotations()
		st.Identity()
	})
}

func FuzzParseBundle(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	st, _ := NewStatement(v1.Hash{Algorithm: "sha256", Hex: testHex}, map[string]string{"identity": "r/x"})
	b, _ := NewBundle(st, k)
	f.Add(b)
	f.Add([]byte(cosignV3Bundle))
	f.Add([]byte(cosignV2Bundle))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"-_8"}]}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		s := bundleSignature(b, "fuzz")
		if len(s.Signature) == 0 || len(s.Payload) == 0 {
			t.Errorf("accepted bundle has an empty payload or signature: %q", data)
		}
		if string(s.SignedBytes()) != string(PAE(InTotoPayloadType, s.Payload)) {
			t.Errorf("SignedBytes is not the PAE of the payload")
		}
		if st, err := ParseStatement(s.Payload); err == nil {
			st.Digest()
			st.Annotations()
		}
	})
}

// Bundles written by the real cosign CLI with one key (cosign
// generate-key-pair), read back from a registry (distribution v3, referrers
// tag). cosign v3.1.3: `cosign sign --key cosign.key -y --signing-config
// sc.json -a k=v REF@DIGEST`, sc.json from `cosign signing-config create`.
// cosign v2.6.5: `cosign sign --key cosign.key -y --new-bundle-format
// --tlog-upload=false -a k=v REF@DIGEST` — which drops the annotations and
// the predicate, and whose protojson puts spaces after commas.
const (
	cosignPublicKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECTBz9QLbVlj/LMGVMVwwphQ+a37q
VOGhiQJPXyD6JNYrspiW+QyGUk5Ojp4HDhmJQipoHe8yKOXb4OH2xhMRMw==
-----END PUBLIC KEY-----
`
	cosignV3Bundle = `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"zKp7+4TyKAZbybXm082paGXm4EvGhDFRokUCNs3SRUk="}},"dsseEnvelope":{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJzdWJqZWN0IjpbeyJkaWdlc3QiOnsic2hhMjU2IjoiYmI2OGEyOTc5MGRhOGI5ZDk5ZDA2ZDkxZTM5MDUzYjNlY2VmZDkzZTNiZDVjYTg3YTIzY2ZlYWNiMjg5NjVlYyJ9LCJhbm5vdGF0aW9ucyI6eyJrIjoidiJ9fV0sInByZWRpY2F0ZVR5cGUiOiJodHRwczovL3NpZ3N0b3JlLmRldi9jb3NpZ24vc2lnbi92MSIsInByZWRpY2F0ZSI6e319","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEYCIQDiz9dLEaqpquiNQKu/kVgrxnr8xSrDiSwuDJL8N5J1KAIhAK8ZXo6bKDn8aNJR8iDoODBfc+g6GhKTIN8+h19HILHo"}]}}`
	cosignV3Digest = "sha256:bb68a29790da8b9d99d06d91e39053b3ecefd93e3bd5ca87a23cfeacb28965ec"
	cosignV2Bundle = `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial":{"publicKey":{"hint":"zKp7+4TyKAZbybXm082paGXm4EvGhDFRokUCNs3SRUk="}}, "dsseEnvelope":{"payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCAic3ViamVjdCI6W3siZGlnZXN0Ijp7InNoYTI1NiI6IjhmNDE3Mjg0NWIzYzhiY2M1NTQ0OTQ1OGMwMTdmM2M4M2QxNDQ0MzA0NWQ3YzY0MWFkMzFhNzBmOTg4YmIzMGYifX1dLCAicHJlZGljYXRlVHlwZSI6Imh0dHBzOi8vc2lnc3RvcmUuZGV2L2Nvc2lnbi9zaWduL3YxIn0=", "payloadType":"application/vnd.in-toto+json", "signatures":[{"sig":"MEUCIA2uzsgQYoPYO7jIxnP9rPrOfGa+DCx+4pRh9d23qYCeAiEAhQsvHg11e9dhsFtxU8h+u412bgINfwm6gpGE2Dhjc6k="}]}}`
	cosignV2Digest = "sha256:8f4172845b3c8bcc55449458c017f3c83d14443045d7c641ad31a70f988bb30f"
)

func TestCosignBundles(t *testing.T) {
	pub, err := keys.ParsePublicKeyPEM([]byte(cosignPublicKey))
	if err != nil {
		t.Fatal(err)
	}
	hint, _ := KeyHint(pub)
	for _, tc := range []struct {
		name, bundle, digest string
		annotations          map[string]string
	}{
		{"cosign v3.1.3", cosignV3Bundle, cosignV3Digest, map[string]string{"k": "v"}},
		{"cosign v2.6.5 --new-bundle-format", cosignV2Bundle, cosignV2Digest, map[string]string{}},
	} {
		b, err := ParseBundle([]byte(tc.bundle))
		if err != nil {
			t.Fatalf("%s: ParseBundle = %v", tc.name, err)
		}
		s := bundleSignature(b, "cosign")
		if err := keys.VerifySignature(pub, s.SignedBytes(), s.Signature); err != nil {
			t.Errorf("%s: signature does not verify over the PAE: %v", tc.name, err)
		}
		st, err := ParseStatement(s.Payload)
		if err != nil {
			t.Fatalf("%s: ParseStatement = %v", tc.name, err)
		}
		if st.Digest().String() != tc.digest {
			t.Errorf("%s: statement digest = %s; want %s", tc.name, st.Digest(), tc.digest)
		}
		if diff := cmp.Diff(tc.annotations, st.Annotations()); diff != "" {
			t.Errorf("%s: annotations (-want +got):\n%s", tc.name, diff)
		}
		if id, ok := st.Identity(); ok {
			t.Errorf("%s: statement names identity %q; cosign writes none unless -a identity=", tc.name, id)
		}
		if b.VerificationMaterial.PublicKey == nil || b.VerificationMaterial.PublicKey.Hint != hint {
			t.Errorf("%s: hint %+v; KeyHint gives %q", tc.name, b.VerificationMaterial.PublicKey, hint)
		}
	}
}
