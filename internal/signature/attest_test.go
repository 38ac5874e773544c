package signature

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// TestAttest: Attest signs a statement and attaches it once to every
// subject (duplicates once), where ReadAttestations finds it verifiable by
// the signer's key; an attestation the same function calls the same, by
// the same key, is not written again; another key's is.
func TestAttest(t *testing.T) {
	const predicateType = "https://example.com/attestation/v1"
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo, other := reg.repo("team/cache"), reg.repo("team/app")
		d1, d2 := reg.push(repo), reg.push(other)
		subjects := []name.Digest{repo.Digest(d1.String()), other.Digest(d2.String()), repo.Digest(d1.String())}
		st, _ := json.Marshal(Statement{Type: StatementTypeV1, PredicateType: predicateType,
			Subject: []Subject{{Digest: map[string]string{"sha256": d1.Hex}}}, Predicate: json.RawMessage(`{"n":1}`)})
		same := func(existing []byte) bool { return bytes.Equal(existing, st) }

		s := newSigner(t, "ci")
		got, err := s.Attest(ctx, st, predicateType, same, subjects)
		if err != nil || len(got) != 2 || got[0] != subjects[0] || got[1] != subjects[1] {
			t.Fatalf("Attest = %v, %v; want the two distinct subjects", got, err)
		}
		count := func() int {
			atts, err := ReadAttestations(ctx, repo, d1, predicateType)
			if err != nil {
				t.Fatal(err)
			}
			return len(atts)
		}
		atts, _ := ReadAttestations(ctx, repo, d1, predicateType)
		if len(atts) != 1 || !bytes.Equal(atts[0].Payload, st) {
			t.Fatalf("ReadAttestations = %d; want the statement once", len(atts))
		}
		if _, err := s.Attest(ctx, st, predicateType, same, subjects[:1]); err != nil || count() != 1 {
			t.Errorf("the same statement again: %v, %d attestations; want still 1", err, count())
		}
		if _, err := newSigner(t, "other").Attest(ctx, st, predicateType, same, subjects[:1]); err != nil || count() != 2 {
			t.Errorf("another key's: %v, %d attestations; want 2", err, count())
		}
	})
}

// TestAttestKeylessNeverSame: a keyless signer has no key to compare an
// attached attestation's signature with; it is never "the same" (the
// record is written again) instead of dereferencing the absent key — a
// keyless rebuild, whose subjects carry the last build's record, crashed
// so.
func TestAttestKeylessNeverSame(t *testing.T) {
	s := Signer{Keyless: newLocalKeyless(t)}
	if same := s.sameAttestation(func([]byte) bool { return true }); same != nil && same(Signature{Payload: []byte(`{}`), Signature: []byte("sig")}) {
		t.Errorf("a keyless signer's attestation matched an attached one")
	}
}
