package signature

import (
	"context"
	"encoding/json"
	"testing"
)

// TestReadAttestations: ReadAttestations returns the attestations of the
// predicate type asked for — not the signatures beside them, not
// attestations of another type — through the referrers API and the
// referrers tag; none is (nil, nil); the signature type is refused.
func TestReadAttestations(t *testing.T) {
	const want, other = "https://example.com/record/v1", "https://example.com/sbom/v1"
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo := reg.repo("team/cache")
		d := reg.push(repo)
		s := newSigner(t, "ci")
		if got, err := ReadAttestations(ctx, repo, d, want); err != nil || got != nil {
			t.Fatalf("no attestations: %v, %v; want nil, nil", got, err)
		}
		if _, err := s.SignBundle(ctx, repo, d, nil); err != nil {
			t.Fatal(err)
		}
		for _, pt := range []string{want, other} {
			st, _ := json.Marshal(Statement{Type: StatementTypeV1, PredicateType: pt,
				Subject: []Subject{{Digest: map[string]string{"sha256": d.Hex}}}, Predicate: json.RawMessage(`{"n":1}`)})
			bundle, err := NewBundle(st, s.Key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := AppendBundle(ctx, repo, d, bundle, AppendOptions{PredicateType: pt}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := ReadAttestations(ctx, repo, d, want)
		if err != nil || len(got) != 1 {
			t.Fatalf("ReadAttestations = %d, %v; want the one %s attestation", len(got), err, want)
		}
		var st Statement
		if err := json.Unmarshal(got[0].Payload, &st); err != nil || st.PredicateType != want || got[0].Err != nil {
			t.Errorf("attestation %+v (%v); want predicate type %s", st, err, want)
		}
		if got[0].Format != FormatBundle || len(got[0].SignedBytes()) == 0 {
			t.Errorf("attestation format %q; want a bundle with the PAE it signs", got[0].Format)
		}
		if _, err := ReadAttestations(ctx, repo, d, SignPredicateType); err == nil {
			t.Error("ReadAttestations(signature type) = nil error; want refused")
		}
	})
}
