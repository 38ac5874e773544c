package signature

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/docker-trustcache/docker-trustcache/keys"
)

// TestAttachReturnsWhatTheRegistryHolds: Attach returns the signature a
// reader of the registry finds for this signer: the new one, or, when an
// equivalent one was there already, that one (its older "created" time).
func TestAttachReturnsWhatTheRegistryHolds(t *testing.T) {
	for _, format := range []Format{FormatLegacy, FormatBundle} {
		t.Run(string(format), func(t *testing.T) {
			repo := newRepo(t)
			d := pushRandom(t, repo)
			s := newSigner(t, "ci")
			first := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
			s.Now = func() time.Time { return first }
			ctx := context.Background()
			sig, added, err := s.Attach(ctx, format, repo, d, map[string]string{"ref": "refs/heads/main"})
			if err != nil || !added {
				t.Fatalf("Attach = %v, %v; want added", added, err)
			}
			if err := keys.VerifySignature(s.Key.Public(), sig.SignedBytes(), sig.Signature); err != nil || sig.Format != format {
				t.Fatalf("Attach returned a %s signature that does not verify: %v", sig.Format, err)
			}
			var stored []Signature
			if format == FormatLegacy {
				stored, err = ReadLegacy(ctx, repo, d)
			} else {
				stored, err = ReadBundles(ctx, repo, d)
			}
			if err != nil || len(stored) != 1 || !bytes.Equal(stored[0].Payload, sig.Payload) || !bytes.Equal(stored[0].Signature, sig.Signature) {
				t.Fatalf("the registry holds %d signatures (%v); want exactly the one Attach returned", len(stored), err)
			}

			s.Now = func() time.Time { return first.Add(time.Hour) }
			again, added, err := s.Attach(ctx, format, repo, d, map[string]string{"ref": "refs/heads/main"})
			if err != nil || added {
				t.Fatalf("Attach again = %v, %v; want not added", added, err)
			}
			if !bytes.Equal(again.Payload, sig.Payload) || !bytes.Equal(again.Signature, sig.Signature) {
				t.Errorf("Attach again returned a signature made now, not the equivalent one the registry holds")
			}
		})
	}
}
