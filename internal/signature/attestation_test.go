package signature

import (
	"context"
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestAppendBundleAttestation: AppendBundle with another predicate type
// attaches an attestation (cosign attest's layout): a bundle referrer
// marked with that predicate type, which signature readers skip unread,
// beside the signatures, which they still read.
func TestAppendBundleAttestation(t *testing.T) {
	const predicateType = "https://example.com/attestation/v1"
	registryModes(t, func(t *testing.T, reg *testRegistry) {
		ctx := context.Background()
		repo := reg.repo("team/cache")
		d := reg.push(repo)
		s := newSigner(t, "ci")
		if _, err := s.SignBundle(ctx, repo, d, nil); err != nil {
			t.Fatal(err)
		}
		st, _ := json.Marshal(Statement{Type: StatementTypeV1, PredicateType: predicateType,
			Subject: []Subject{{Digest: map[string]string{"sha256": d.Hex}}}, Predicate: json.RawMessage("{}")})
		bundle, err := NewBundle(st, s.Key)
		if err != nil {
			t.Fatal(err)
		}
		if added, err := AppendBundle(ctx, repo, d, bundle, AppendOptions{PredicateType: predicateType}); err != nil || !added {
			t.Fatalf("AppendBundle(attestation) = %v, %v; want added", added, err)
		}
		idx, err := remote.Referrers(repo.Digest(d.String()))
		if err != nil {
			t.Fatal(err)
		}
		im, _ := idx.IndexManifest()
		types := map[string]int{}
		for _, m := range im.Manifests {
			desc, err := remote.Get(repo.Digest(m.Digest.String()))
			if err != nil {
				t.Fatal(err)
			}
			var man v1.Manifest
			if err := json.Unmarshal(desc.Manifest, &man); err != nil {
				t.Fatal(err)
			}
			types[man.Annotations[annotationBundlePredicateType]]++
		}
		if types[predicateType] != 1 || types[SignPredicateType] != 1 {
			t.Errorf("referrers by predicate type %v; want one signature and one attestation", types)
		}
		sigs, err := ReadBundles(ctx, repo, d)
		if err != nil || len(sigs) != 1 {
			t.Fatalf("ReadBundles = %d signatures, %v; want the signature only", len(sigs), err)
		}
		if _, err := ParseStatement(sigs[0].Payload); err != nil {
			t.Errorf("ReadBundles returned a non-signature: %v", err)
		}
	})
}
