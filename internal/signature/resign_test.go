package signature

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/keys"
)

// readFormat reads the signatures of digest in the given format.
func readFormat(t *testing.T, format Format, repo name.Repository, d v1.Hash) []Signature {
	t.Helper()
	read := ReadLegacy
	if format == FormatBundle {
		read = ReadBundles
	}
	sigs, err := read(context.Background(), repo, d)
	if err != nil {
		t.Fatal(err)
	}
	return sigs
}

// createdBy returns the signed creation times of the signatures in sigs
// that s's key made, oldest first as stored.
func createdBy(t *testing.T, s Signer, sigs []Signature) []string {
	t.Helper()
	var out []string
	for _, sig := range sigs {
		if sig.Err != nil || keys.VerifySignature(s.Key.Public(), sig.SignedBytes(), sig.Signature) != nil {
			continue
		}
		var ann map[string]string
		if sig.Format == FormatBundle {
			st, err := ParseStatement(sig.Payload)
			if err != nil {
				t.Fatal(err)
			}
			ann = st.Annotations()
		} else {
			p, err := ParsePayload(sig.Payload)
			if err != nil {
				t.Fatal(err)
			}
			ann = p.Annotations()
		}
		out = append(out, ann[AnnotationCreated])
	}
	return out
}

// TestAttachRefreshesAged: an equivalent signature by the same key that is
// older than the signer's MaxAge does not make signing a no-op: a fresh
// one is made, the aged one is reported and, in the .sig tag, replaced
// (other signers' signatures stay); a fresh one makes it a no-op again, so
// signatures never pile up. With MaxAge 0 any age is kept, as before.
func TestAttachRefreshesAged(t *testing.T) {
	first := time.Date(2026, 10, 1, 4, 0, 0, 0, time.UTC)
	later := first.Add(721 * time.Hour)
	ann := map[string]string{"ref": "refs/heads/main"}
	for _, format := range []Format{FormatLegacy, FormatBundle} {
		t.Run(string(format), func(t *testing.T) {
			ctx := context.Background()
			repo := newRepo(t)
			d := pushRandom(t, repo)
			s, other := newSigner(t, "ci"), newSigner(t, "release")
			s.Now, other.Now = func() time.Time { return first }, func() time.Time { return first }
			if _, _, err := s.Attach(ctx, format, repo, d, ann); err != nil {
				t.Fatal(err)
			}
			if _, _, err := other.Attach(ctx, format, repo, d, ann); err != nil {
				t.Fatal(err)
			}

			// Within MaxAge: kept.
			s.MaxAge = 720 * time.Hour
			s.Now = func() time.Time { return first.Add(719 * time.Hour) }
			a, err := s.AttachFresh(ctx, format, repo, d, ann)
			if err != nil || a.Added || !a.Aged.IsZero() {
				t.Fatalf("AttachFresh within MaxAge = %+v, %v; want the signature there kept", a, err)
			}

			// Past MaxAge: signed again, the aged one reported.
			s.Now = func() time.Time { return later }
			a, err = s.AttachFresh(ctx, format, repo, d, ann)
			if err != nil || !a.Added {
				t.Fatalf("AttachFresh past MaxAge = %+v, %v; want a fresh signature added", a, err)
			}
			if !a.Aged.Equal(first) {
				t.Errorf("Aged = %v; want %v, the replaced signature's time", a.Aged, first)
			}
			if got := a.Signature.Payload; !bytes.Contains(got, []byte(later.Format(time.RFC3339))) {
				t.Errorf("the signature returned is not the fresh one: %s", got)
			}
			sigs := readFormat(t, format, repo, d)
			mine := createdBy(t, s, sigs)
			switch format {
			case FormatLegacy:
				if len(mine) != 1 || mine[0] != later.Format(time.RFC3339) {
					t.Errorf("the .sig tag holds this key's signatures from %v; want only the fresh one (the aged one replaced)", mine)
				}
			case FormatBundle:
				if len(mine) != 2 || mine[len(mine)-1] != later.Format(time.RFC3339) && mine[0] != later.Format(time.RFC3339) {
					t.Errorf("the referrers hold this key's bundles from %v; want the aged one and one fresh one", mine)
				}
			}
			if n := len(createdBy(t, other, sigs)); n != 1 {
				t.Errorf("another signer's signatures: %d; want its one kept", n)
			}

			// Again: the fresh one is there, nothing is added.
			s.Now = func() time.Time { return later.Add(time.Hour) }
			a, err = s.AttachFresh(ctx, format, repo, d, ann)
			if err != nil || a.Added || !a.Aged.IsZero() {
				t.Fatalf("AttachFresh after the refresh = %+v, %v; want nothing added", a, err)
			}
			if n := len(createdBy(t, s, readFormat(t, format, repo, d))); n != len(mine) {
				t.Errorf("this key's signatures: %d after a no-op; want %d", n, len(mine))
			}

			// MaxAge 0: any age is kept.
			s.MaxAge = 0
			s.Now = func() time.Time { return later.Add(10000 * time.Hour) }
			if a, err := s.AttachFresh(ctx, format, repo, d, ann); err != nil || a.Added {
				t.Errorf("AttachFresh with MaxAge 0 = %+v, %v; want the signature there kept", a, err)
			}
		})
	}
}

// TestAttachRefreshesFuture: a signature by this key dated beyond
// ClockSkew in the future does not count here: a fresh one is added, but
// the future one stays (it may count where the clock agrees with its
// signer's; a signer whose clock is behind must not delete it).
func TestAttachRefreshesFuture(t *testing.T) {
	ctx := context.Background()
	repo := newRepo(t)
	d := pushRandom(t, repo)
	s := newSigner(t, "ci")
	now := time.Date(2026, 10, 1, 4, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now.Add(time.Hour) }
	if _, _, err := s.Attach(ctx, FormatLegacy, repo, d, nil); err != nil {
		t.Fatal(err)
	}
	s.Now, s.MaxAge = func() time.Time { return now }, 24*time.Hour
	a, err := s.AttachFresh(ctx, FormatLegacy, repo, d, nil)
	if err != nil || !a.Added || !a.Refreshed || a.Replaced != 0 || !a.Aged.Equal(now.Add(time.Hour)) {
		t.Fatalf("AttachFresh over a future-dated signature = %+v, %v; want a fresh one added, none replaced", a, err)
	}
	if mine := createdBy(t, s, readFormat(t, FormatLegacy, repo, d)); len(mine) != 2 || mine[1] != now.Format(time.RFC3339) {
		t.Errorf("this key's signatures from %v; want the future one and the one made now", mine)
	}
}

// TestReplaceKeepsCosignLayout: the .sig manifest rewritten without an
// aged layer still lists every remaining layer in its config's diff_ids,
// as cosign reads it.
func TestReplaceKeepsCosignLayout(t *testing.T) {
	ctx := context.Background()
	repo := newRepo(t)
	d := pushRandom(t, repo)
	s, other := newSigner(t, "ci"), newSigner(t, "release")
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Now, other.Now = func() time.Time { return old }, func() time.Time { return old }
	for _, x := range []Signer{other, s} {
		if _, _, err := x.Attach(ctx, FormatLegacy, repo, d, nil); err != nil {
			t.Fatal(err)
		}
	}
	s.Now, s.MaxAge = func() time.Time { return old.Add(48 * time.Hour) }, 24*time.Hour
	if a, err := s.AttachFresh(ctx, FormatLegacy, repo, d, nil); err != nil || !a.Added {
		t.Fatalf("AttachFresh = %+v, %v", a, err)
	}
	img, err := remote.Image(SigTag(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 2 || len(cf.RootFS.DiffIDs) != 2 {
		t.Fatalf("%d layers, %d diff_ids; want 2 and 2", len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		if cf.RootFS.DiffIDs[i] != l.Digest {
			t.Errorf("layer %d is %s, diff_id %s", i, l.Digest, cf.RootFS.DiffIDs[i])
		}
		if l.Annotations[SignatureAnnotation] == "" {
			t.Errorf("layer %d lost its signature annotation", i)
		}
		if len(l.Data) == 0 {
			t.Errorf("layer %d lost its inline data", i)
		}
	}
}
