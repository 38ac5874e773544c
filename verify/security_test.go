package verify

// Attack tests for docs/SECURITY.md that the rule and fault tables
// (verifier_test.go, faults_test.go, bundle_test.go) do not already hold:
// mix-and-match of index children, replay of old signed caches, oversized
// and lying payloads, slow retrieval bounds, and redirects to other hosts.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// pushIndex pushes a random index of three images to repo:tag.
func pushIndex(t *testing.T, repo name.Repository, tag string) v1.ImageIndex {
	t.Helper()
	idx, err := random.Index(256, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(repo.Tag(tag), idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

// swapChild returns idx with its first child replaced by a new random
// image: what an attacker who can push builds from a signed index.
func swapChild(t *testing.T, idx v1.ImageIndex) v1.ImageIndex {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	evil, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	swapped := mutate.AppendManifests(mutate.RemoveManifests(idx, match.Digests(im.Manifests[0].Digest)),
		mutate.IndexAddendum{Add: evil})
	return swapped
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func rawOf(t *testing.T, m interface{ RawManifest() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMixAndMatchIndex: a signed cache index (BuildKit's registry cache
// manifest is an OCI index) whose children an attacker swaps. The index
// digest covers every child's digest, so the swapped index is another
// digest, which nobody signed; and what a build imports is pinned to the
// verified digest, whose content the client checks.
func TestMixAndMatchIndex(t *testing.T) {
	tests := []struct {
		name string
		// setup attacks the signed index idx (tag "main") and returns the
		// reference to verify.
		setup func(t *testing.T, f *fixture, repo name.Repository, idx v1.ImageIndex) string
		want  Verdict
		why   string
		// pinned, when set, is what the result must be pinned to (digest of
		// the signed index) and is fetched afterwards as a build would.
		pinnedSigned bool
		fetchFails   string // the fetch by the pinned digest must fail so
	}{{
		name: "children swapped under the tag",
		setup: func(t *testing.T, f *fixture, repo name.Repository, idx v1.ImageIndex) string {
			if err := remote.WriteIndex(repo.Tag("main"), swapChild(t, idx)); err != nil {
				t.Fatal(err)
			}
			return repo.Tag("main").String()
		},
		want: VerdictUntrusted, why: "no signatures found",
	}, {
		name: "children swapped, signature copied onto the new index",
		setup: func(t *testing.T, f *fixture, repo name.Repository, idx v1.ImageIndex) string {
			swapped := swapChild(t, idx)
			if err := remote.WriteIndex(repo.Tag("main"), swapped); err != nil {
				t.Fatal(err)
			}
			copyTag(t, signature.SigTag(repo, digestOf(t, idx)), signature.SigTag(repo, digestOf(t, swapped)))
			return repo.Tag("main").String()
		},
		want: VerdictUntrusted, why: "copied from another manifest",
	}, {
		name: "digest-pinned ref, the registry serves the swapped index for it",
		setup: func(t *testing.T, f *fixture, repo name.Repository, idx v1.ImageIndex) string {
			d := digestOf(t, idx)
			raw := rawOf(t, swapChild(t, idx))
			f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, "/manifests/"+d.String()) {
					return false
				}
				w.Header().Set("Content-Type", string(types.OCIImageIndex))
				w.Header().Set("Docker-Content-Digest", d.String())
				w.Write(raw)
				return true
			})
			return repo.Digest(d.String()).String()
		},
		// The verdict is about the digest (the verifier never reads the
		// manifest); the bytes are checked by whoever fetches them.
		want: VerdictTrusted, pinnedSigned: true, fetchFails: "does not match requested digest",
	}, {
		name: "the tag's HEAD names the signed digest, the tag holds another index",
		setup: func(t *testing.T, f *fixture, repo name.Repository, idx v1.ImageIndex) string {
			d := digestOf(t, idx)
			swapped := swapChild(t, idx)
			if err := remote.WriteIndex(repo.Tag("main"), swapped); err != nil {
				t.Fatal(err)
			}
			raw := rawOf(t, idx)
			f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodHead || !strings.HasSuffix(r.URL.Path, "/manifests/main") {
					return false
				}
				w.Header().Set("Content-Type", string(types.OCIImageIndex))
				w.Header().Set("Docker-Content-Digest", d.String())
				w.Header().Set("Content-Length", fmt.Sprint(len(raw)))
				return true
			})
			return repo.Tag("main").String()
		},
		// Trusted, pinned to the signed digest: the build imports the signed
		// index, never the one the tag holds.
		want: VerdictTrusted, pinnedSigned: true,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(t, "", "")
			repo := f.reg.Repo(t, "team/app-cache")
			idx := pushIndex(t, repo, "main")
			signed := digestOf(t, idx)
			sign(t, f.ci, "ci", repo, signed, now, nil)

			ref := tc.setup(t, f, repo, idx)
			res := f.verify(t, p, ref)
			wantVerdict(t, res, tc.want, tc.why)
			if res.Trusted && res.Digest != signed.String() {
				t.Fatalf("Verify(%q) = trusted for %s; the only signed digest is %s", ref, res.Digest, signed)
			}
			if !tc.pinnedSigned {
				if res.Digest == signed.String() {
					t.Errorf("Verify(%q).Digest = the signed digest; want the attacker's", ref)
				}
				return
			}
			if want := repo.Name() + "@" + signed.String(); res.Pinned() != want {
				t.Fatalf("Pinned() = %q; want %q", res.Pinned(), want)
			}
			// Fetch the pinned reference as the build's importer does.
			pinned, err := name.NewDigest(res.Pinned())
			if err != nil {
				t.Fatal(err)
			}
			got, err := remote.Index(pinned)
			if tc.fetchFails != "" {
				if err == nil {
					_, err = got.IndexManifest()
				}
				if err == nil || !strings.Contains(err.Error(), tc.fetchFails) {
					t.Fatalf("fetching %s from a registry serving other bytes = %v; want an error containing %q", pinned, err, tc.fetchFails)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := digestOf(t, got); d != signed {
				t.Errorf("fetching %s gave index %s; want the signed %s", pinned, d, signed)
			}
		})
	}
}

// TestRollbackAndFreeze: an old signed cache put back under the tag
// (rollback), or a tag held at an old signed cache (freeze). maxAge
// defeats both; without maxAge an old signature of an allowed builder
// still counts, as docs/SECURITY.md says.
func TestRollbackAndFreeze(t *testing.T) {
	tests := []struct {
		name  string
		scope string
		want  Verdict
		why   string
	}{
		{"rollback under maxAge", "    maxAge: 24h", VerdictUntrusted, "older than maxAge"},
		{"rollback without maxAge", "", VerdictTrusted, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(t, tc.scope, "")
			repo := f.reg.Repo(t, "team/app-cache")
			old := testreg.PushRandom(t, repo.Tag("v1"), 256, 1)
			sign(t, f.ci, "ci", repo, old, now.Add(-48*time.Hour), nil)
			cur := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			sign(t, f.ci, "ci", repo, cur, now.Add(-time.Hour), nil)
			wantVerdict(t, f.verify(t, p, repo.Tag("main").String()), VerdictTrusted, "")

			copyTag(t, repo.Tag("v1"), repo.Tag("main")) // the attacker moves the tag back
			res := f.verify(t, p, repo.Tag("main").String())
			wantVerdict(t, res, tc.want, tc.why)
			if res.Digest != old.String() {
				t.Errorf("Verify digest = %s; want the rolled-back %s", res.Digest, old)
			}
		})
	}

	// Freeze: the tag stays on a cache verified (and recorded in the
	// ledger) while fresh; once its signature is older than maxAge neither
	// the ledger nor a fresh verification trusts it.
	t.Run("freeze with the ledger", func(t *testing.T) {
		f := newFixture(t)
		p := f.policy(t, "    maxAge: 24h", "")
		repo := f.reg.Repo(t, "team/app-cache")
		d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
		sign(t, f.ci, "ci", repo, d, now.Add(-time.Hour), nil)
		l := newLedger(t)
		ref := repo.Tag("main").String()
		if res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now), ref); !res.Trusted {
			t.Fatalf("Verify = %s; want trusted", res.Verdict)
		}
		if res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now.Add(22*time.Hour)), ref); !res.Trusted || !res.FromLedger {
			t.Errorf("Verify within maxAge: trusted %v, from ledger %v; want both", res.Trusted, res.FromLedger)
		}
		res, _ := ledgerRun(t, f, ledgerVerifier(p, l, now.Add(23*time.Hour+time.Second)), ref)
		wantVerdict(t, res, VerdictUntrusted, "older than maxAge")
		if res.FromLedger {
			t.Errorf("a frozen cache past maxAge came from the ledger")
		}
	})
}

// sigManifest returns the manifest of digest's .sig tag.
func sigManifest(t *testing.T, repo name.Repository, d v1.Hash) *v1.Manifest {
	t.Helper()
	img, err := remote.Image(signature.SigTag(repo, d))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.DeepCopy()
}

// putSigManifest writes m as digest's .sig tag, as given.
func putSigManifest(t *testing.T, repo name.Repository, d v1.Hash, m *v1.Manifest) {
	t.Helper()
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(signature.SigTag(repo, d), rawManifest{raw, m.MediaType}); err != nil {
		t.Fatal(err)
	}
}

// junkDigest is a payload digest no blob has.
var junkDigest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}

// TestOversizedPayloads: a signature payload is at most
// signature.MaxPayloadSize bytes. A layer that declares more is refused
// unread; a blob larger than declared is cut at the limit; a
// Content-Length over registry.MaxResponseBody is refused before the body
// is read; a Content-Length that lies short fails the digest check. None
// makes a cache trusted, and a refused entry costs no valid signature next
// to it.
func TestOversizedPayloads(t *testing.T) {
	big := int64(64 << 20)
	stream := func(w http.ResponseWriter, n int) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		for written := 0; written < n; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	// serve answers GETs of blob with respond.
	serve := func(f *fixture, blob v1.Hash, respond func(w http.ResponseWriter)) {
		f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+blob.String()) {
				return false
			}
			respond(w)
			return true
		})
	}
	tests := []struct {
		name string
		// attack changes the signature list or the registry; payload is the
		// digest of the signed payload blob. It returns the blob that must
		// never be fetched, if any.
		attack func(t *testing.T, f *fixture, repo name.Repository, d, payload v1.Hash) (unfetched *v1.Hash)
		want   Verdict
		why    string
	}{{
		name: "declared size over the limit",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d, payload v1.Hash) *v1.Hash {
			m := sigManifest(t, repo, d)
			m.Layers[0].Size = big
			putSigManifest(t, repo, d, m)
			return &payload
		},
		want: VerdictUntrusted, why: "exceeds",
	}, {
		name: "declared size over the limit next to a valid signature",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d, payload v1.Hash) *v1.Hash {
			m := sigManifest(t, repo, d)
			huge := m.Layers[0]
			huge.Size, huge.Digest = big, junkDigest
			m.Layers = append([]v1.Descriptor{huge}, m.Layers...)
			putSigManifest(t, repo, d, m)
			return &junkDigest
		},
		want: VerdictTrusted,
	}, {
		name: "blob larger than declared",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d, payload v1.Hash) *v1.Hash {
			serve(f, payload, func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusOK) // no Content-Length: chunked
				stream(w, int(big))
			})
			return nil
		},
		want: VerdictUntrusted, why: "exceeds",
	}, {
		name: "Content-Length over the response limit",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d, payload v1.Hash) *v1.Hash {
			serve(f, payload, func(w http.ResponseWriter) {
				w.Header().Set("Content-Length", fmt.Sprint(big))
				w.WriteHeader(http.StatusOK)
				stream(w, int(big))
			})
			return nil
		},
		want: VerdictInconclusive, why: "size limit",
	}, {
		name: "Content-Length shorter than the body",
		attack: func(t *testing.T, f *fixture, repo name.Repository, d, payload v1.Hash) *v1.Hash {
			serve(f, payload, func(w http.ResponseWriter) {
				// net/http will not send more than the Content-Length:
				// write the response by hand.
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n%s", strings.Repeat("x", 1<<20))
				buf.Flush()
			})
			return nil
		},
		want: VerdictInconclusive, why: "checksum",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(t, "", "")
			repo := f.reg.Repo(t, "team/app-cache")
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			sign(t, f.ci, "ci", repo, d, now, nil)
			stripData(t, repo, d) // as cosign writes it: the payload blob is fetched
			payload := sigManifest(t, repo, d).Layers[0].Digest
			unfetched := tc.attack(t, f, repo, d, payload)
			var fetches atomic.Int64
			if unfetched != nil {
				f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+unfetched.String()) {
						fetches.Add(1)
					}
					return false
				})
			}
			start := time.Now()
			res, err := New(p, WithClock(func() time.Time { return now }), WithRequestTimeout(2*time.Second)).Verify(t.Context(), repo.Tag("main").String())
			if err != nil {
				t.Fatal(err)
			}
			wantVerdict(t, res, tc.want, tc.why)
			if el := time.Since(start); el > 15*time.Second { // a bound, with room for a loaded machine
				t.Errorf("Verify took %s; want a bounded decision", el)
			}
			if n := fetches.Load(); n != 0 {
				t.Errorf("the oversized payload %s was fetched %d times; want 0", unfetched, n)
			}
		})
	}
}

// TestSignatureListAtTheLimit: exactly signature.MaxSignatures entries are
// read (a valid one among them counts); one more is refused unread
// (TestTooManySignatures).
func TestSignatureListAtTheLimit(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now, nil)
	addJunkSignatures(t, repo, d, signature.MaxSignatures-1)
	if n := len(sigManifest(t, repo, d).Layers); n != signature.MaxSignatures {
		t.Fatalf("signature list has %d entries; want %d", n, signature.MaxSignatures)
	}
	wantVerdict(t, f.verify(t, p, repo.Tag("main").String()), VerdictTrusted, "")
}

// TestSlowRetrievalBound: a registry that stalls every payload fetch. Each
// request is bounded by the request timeout; payloads are fetched 4 at a
// time (signature.fetchConcurrency is 8, go-containerregistry's puller
// runs 4 jobs), so n stalled entries cost about n/4 timeouts, and a valid
// signature among them still counts. Past a few, the verification's own
// deadline (WithVerifyTimeout, DefaultVerifyTimeout) ends it: inconclusive,
// whether the registry never answers or answers 503 just before each
// timeout (which is retried). docs/SECURITY.md gives the bounds.
func TestSlowRetrievalBound(t *testing.T) {
	const timeout = 300 * time.Millisecond
	stall := func(w http.ResponseWriter, r *http.Request) {
		select { // never answers
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
	unavailable := func(w http.ResponseWriter, r *http.Request) {
		select { // 503 just before the request timeout: retried
		case <-r.Context().Done():
			return
		case <-time.After(timeout - 50*time.Millisecond):
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	tests := []struct {
		name  string
		junk  int
		valid bool
		total time.Duration // WithVerifyTimeout; 0: the default
		fault func(w http.ResponseWriter, r *http.Request)
		want  Verdict
		why   string
		bound time.Duration
	}{
		// Bounds leave room for a loaded machine; without the verification
		// deadline the 255-entry cases take 64 rounds of the request
		// timeout (19 s), or of three tries and two pauses (96 s).
		{"31 stalled next to a valid signature", 31, true, 0, stall, VerdictTrusted, "", 8*timeout + 4*time.Second},
		{"31 stalled, no valid signature", 31, false, 0, stall, VerdictInconclusive, "deadline", 8*timeout + 4*time.Second},
		{"255 stalled, verification deadline", signature.MaxSignatures - 1, false, time.Second, stall, VerdictInconclusive, "did not finish within 1s", 6 * time.Second},
		{"255 answering 503 before the timeout, verification deadline", signature.MaxSignatures - 1, false, time.Second, unavailable, VerdictInconclusive, "did not finish within 1s", 6 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(t, "", "")
			repo := f.reg.Repo(t, "team/app-cache")
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			k := f.ci
			if !tc.valid {
				k = f.rand
			}
			sign(t, k, "ci", repo, d, now, nil)
			// Distinct junk payload blobs, each answered by the fault.
			m := sigManifest(t, repo, d)
			junk := map[string]bool{}
			for i := range tc.junk {
				l := static.NewLayer([]byte(fmt.Sprintf(`{"junk":%d}`, i)), "application/vnd.dev.cosign.simplesigning.v1+json")
				ld, _ := l.Digest()
				size, _ := l.Size()
				if err := remote.WriteLayer(repo, l); err != nil {
					t.Fatal(err)
				}
				junk[ld.String()] = true
				// A well-formed (base64) signature, so that the entry is
				// fetched: a malformed one is refused before.
				m.Layers = append(m.Layers, v1.Descriptor{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Size: size, Digest: ld,
					Annotations: map[string]string{signature.SignatureAnnotation: "MEUCIQAAAAAA"}})
			}
			putSigManifest(t, repo, d, m)
			f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				i := strings.LastIndex(r.URL.Path, "/blobs/")
				if i < 0 || !junk[r.URL.Path[i+len("/blobs/"):]] {
					return false
				}
				tc.fault(w, r)
				return true
			})
			start := time.Now()
			v := New(p, WithClock(func() time.Time { return now }), WithRequestTimeout(timeout), WithVerifyTimeout(tc.total))
			res, err := v.Verify(t.Context(), repo.Tag("main").String())
			if err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			wantVerdict(t, res, tc.want, tc.why)
			if el > tc.bound {
				t.Errorf("Verify with %d stalled payloads took %s; want under %s", tc.junk, el, tc.bound)
			}
			t.Logf("%d stalled payloads, request timeout %s: decision in %s", tc.junk, timeout, el.Round(time.Millisecond))
		})
	}
}

// staticKeychain answers every registry with one user's credentials.
type staticKeychain struct{ user, pass string }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.pass}, nil
}

// TestRedirectToAnotherHost: the registry (which wants credentials)
// redirects signature reads to another host, as registries redirect blob
// reads to a CDN. The credentials never reach that host, and what it
// serves is judged like anything else: an honest mirror costs nothing, a
// lying one cannot make a cache trusted.
func TestRedirectToAnotherHost(t *testing.T) {
	const user, pass = "builder", "s3cret-registry-password"
	for _, tc := range []struct {
		name  string
		lying bool
		want  Verdict
		why   string
	}{
		{"honest mirror", false, VerdictTrusted, ""},
		{"mirror serving another signature list", true, VerdictUntrusted, "not signed by any key in the policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(t, "", "")
			repo := f.reg.Repo(t, "team/app-cache")
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			sign(t, f.ci, "ci", repo, d, now, nil)
			registryURL := "http://" + f.reg.Host

			// The attacker's signature list, under another digest's tag.
			evilDigest := testreg.PushRandom(t, repo.Tag("evil"), 256, 1)
			sign(t, f.rand, "ci", repo, evilDigest, now, nil)
			evilPath := "/v2/" + repo.RepositoryStr() + "/manifests/" + signature.SigTag(repo, evilDigest).TagStr()

			var sawAuth, mirrored atomic.Int64
			const fromMirror = "X-Test-Mirror"
			// The mirror is not a registry of its own (not testreg): it is
			// another host, the redirect's target, that relays to the
			// registry (with the credentials only it was given) and, lying,
			// swaps what it relays.
			mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mirrored.Add(1)
				if r.Header.Get("Authorization") != "" {
					sawAuth.Add(1)
				}
				path := r.URL.Path
				if tc.lying && strings.Contains(path, "/manifests/") {
					path = evilPath
				}
				req, _ := http.NewRequestWithContext(r.Context(), r.Method, registryURL+path, nil)
				req.SetBasicAuth(user, pass)
				req.Header.Set("Accept", r.Header.Get("Accept"))
				req.Header.Set(fromMirror, "1")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				defer resp.Body.Close()
				for _, h := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest"} {
					if v := resp.Header.Get(h); v != "" {
						w.Header().Set(h, v)
					}
				}
				w.WriteHeader(resp.StatusCode)
				io.Copy(w, resp.Body)
			}))
			t.Cleanup(mirror.Close)

			f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if u, pw, ok := r.BasicAuth(); !ok || u != user || pw != pass {
					w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
					w.WriteHeader(http.StatusUnauthorized)
					return true
				}
				if r.Header.Get(fromMirror) == "" && (strings.Contains(r.URL.Path, "/manifests/sha256-") || strings.Contains(r.URL.Path, "/blobs/")) {
					http.Redirect(w, r, mirror.URL+r.URL.Path, http.StatusTemporaryRedirect)
					return true
				}
				return false
			})
			v := New(p, WithClock(func() time.Time { return now }), WithRequestTimeout(2*time.Second),
				WithRemoteOptions(remote.WithAuthFromKeychain(staticKeychain{user, pass})))
			res, err := v.Verify(context.Background(), repo.Tag("main").String())
			if err != nil {
				t.Fatal(err)
			}
			wantVerdict(t, res, tc.want, tc.why)
			if mirrored.Load() == 0 {
				t.Fatal("nothing was redirected to the other host: the test proves nothing")
			}
			if n := sawAuth.Load(); n != 0 {
				t.Errorf("the other host received an Authorization header on %d of %d requests", n, mirrored.Load())
			}
		})
	}
}

// TestRemoteOptionsKeepTheLimits: a caller's remote.WithTransport, passed
// through WithRemoteOptions, does not replace the bounded transport (body
// size, request time, the walk's and scan's request budgets, remembered
// pings): its verification still refuses a Content-Length over
// registry.MaxResponseBody unread. WithTransport is the way to set the
// transport, and the limits wrap it.
func TestRemoteOptionsKeepTheLimits(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now, nil)
	stripData(t, repo, d)
	payload := sigManifest(t, repo, d).Layers[0].Digest
	f.reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+payload.String()) {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(64<<20))
		w.WriteHeader(http.StatusOK)
		chunk := []byte(strings.Repeat("x", 32<<10))
		for range 64 << 20 / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return true
			}
		}
		return true
	})
	var through atomic.Int64
	mine := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		through.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})
	res, err := New(p, WithClock(func() time.Time { return now }), WithRequestTimeout(2*time.Second),
		WithRemoteOptions(remote.WithTransport(mine))).Verify(t.Context(), repo.Tag("main").String())
	if err != nil {
		t.Fatal(err)
	}
	wantVerdict(t, res, VerdictInconclusive, "size limit")
	if n := through.Load(); n != 0 {
		t.Errorf("%d requests went through the transport given as a remote option; want 0 (WithTransport sets it)", n)
	}
}
