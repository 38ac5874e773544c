package signature

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

func newRepo(t testing.TB) name.Repository {
	t.Helper()
	return testreg.New(t).Repo(t, "team/cache")
}

func pushRandom(t testing.TB, repo name.Repository) v1.Hash {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if err := remote.Write(repo.Digest(d.String()), img); err != nil {
		t.Fatal(err)
	}
	return d
}

func newSigner(t testing.TB, builder string) Signer {
	t.Helper()
	k := testreg.Key(t)
	return Signer{Key: k, Builder: builder}
}

// countValid returns how many signers have a signature on digest that
// verifies with their key.
func countValid(t *testing.T, repo name.Repository, d v1.Hash, signers []Signer) int {
	t.Helper()
	sigs, err := ReadLegacy(context.Background(), repo, d)
	if err != nil {
		t.Fatalf("ReadLegacy: %v", err)
	}
	n := 0
	for _, s := range signers {
		for _, sig := range sigs {
			if sig.Err == nil && keys.VerifySignature(s.Key.Public(), sig.Payload, sig.Signature) == nil {
				n++
				break
			}
		}
	}
	return n
}

func TestSignAppendsAndDeduplicates(t *testing.T) {
	repo := newRepo(t)
	d := pushRandom(t, repo)
	a, b := newSigner(t, "a"), newSigner(t, "b")
	ctx := context.Background()
	for _, tc := range []struct {
		s         Signer
		ann       map[string]string
		wantAdded bool
		wantSigs  int
	}{
		{a, map[string]string{"ref": "refs/heads/main"}, true, 1},
		{a, map[string]string{"ref": "refs/heads/main"}, false, 1}, // same key, same annotations
		{a, map[string]string{"ref": "refs/heads/next"}, true, 2},  // other annotations
		{b, map[string]string{"ref": "refs/heads/main"}, true, 3},  // other key
	} {
		added, err := tc.s.Sign(ctx, repo, d, tc.ann)
		if err != nil || added != tc.wantAdded {
			t.Fatalf("Sign(%s, %v) = %v, %v; want %v", tc.s.Builder, tc.ann, added, err, tc.wantAdded)
		}
		sigs, err := ReadLegacy(ctx, repo, d)
		if err != nil || len(sigs) != tc.wantSigs {
			t.Fatalf("after Sign(%s, %v): %d signatures (%v); want %d", tc.s.Builder, tc.ann, len(sigs), err, tc.wantSigs)
		}
	}
}

// TestConcurrentSignersLoseNothing: 8 builders sign one digest at once,
// many times over; every signature is there afterwards, every time.
func TestConcurrentSignersLoseNothing(t *testing.T) {
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	repo := newRepo(t)
	signers := make([]Signer, 8)
	for i := range signers {
		signers[i] = newSigner(t, fmt.Sprintf("builder-%d", i))
	}
	for round := 0; round < rounds; round++ {
		d := pushRandom(t, repo)
		var wg sync.WaitGroup
		errs := make([]error, len(signers))
		for i, s := range signers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Sign(context.Background(), repo, d, map[string]string{"round": fmt.Sprint(round)})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: signer %d: %v", round, i, err)
			}
		}
		if n := countValid(t, repo, d, signers); n != len(signers) {
			t.Fatalf("round %d: %d of %d concurrent signatures kept", round, n, len(signers))
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	d, _ := v1.NewHash("sha256:" + strings.Repeat("ab", 32))
	good, _ := NewPayload("reg.example.com/team/cache", d, map[string]string{"builder": "ci", "ref": "refs/heads/main"})
	f.Add(good)
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":null}`))
	f.Add([]byte(`{"critical":{"type":"cosign container image signature"}} trailing`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePayload(data)
		if err != nil {
			return
		}
		// A payload that parses names a sha256 digest and a repository,
		// and re-encoding it parses to the same.
		if p.Digest().Algorithm != "sha256" || p.Critical.Identity.DockerReference == "" {
			t.Fatalf("ParsePayload(%q) accepted %+v", data, p)
		}
		again, err := NewPayload(p.Critical.Identity.DockerReference, p.Digest(), p.Annotations())
		if err != nil {
			t.Fatalf("NewPayload of a parsed payload: %v", err)
		}
		q, err := ParsePayload(again)
		if err != nil || q.Digest() != p.Digest() || q.Critical.Identity != p.Critical.Identity {
			t.Fatalf("round trip of %q: %+v, %v", data, q, err)
		}
	})
}
