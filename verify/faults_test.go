package verify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// TestRegistryFaults: a registry that fails, lies, floods or stalls never
// makes a signed cache trusted through the fault, and each fault ends as
// "inconclusive" (or, for data that is malformed as served, "untrusted"),
// quickly.
func TestRegistryFaults(t *testing.T) {
	sigPath := "/manifests/sha256-"
	tests := []struct {
		name  string
		fault func(w http.ResponseWriter, r *http.Request) bool
		want  Verdict
		why   string
	}{{
		name: "5xx on the signature manifest",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, sigPath) {
				w.WriteHeader(http.StatusBadGateway)
				return true
			}
			return false
		},
		want: VerdictInconclusive, why: "502",
	}, {
		name: "truncated payload body",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
				w.Header().Set("Content-Length", "400")
				w.WriteHeader(http.StatusOK)
				w.Write([]byte(`{"critical":`))
				return true
			}
			return false
		},
		want: VerdictInconclusive, why: "payload",
	}, {
		name: "payload content that does not match its digest",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
				w.Write([]byte(`{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"sha256:` + strings.Repeat("0", 64) + `"},"type":"cosign container image signature"}}`))
				return true
			}
			return false
		},
		want: VerdictInconclusive, why: "checksum",
	}, {
		name: "invalid JSON for the signature manifest",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, sigPath) {
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				w.Write([]byte(`{"schemaVersion": 2, "layers": [`))
				return true
			}
			return false
		},
		want: VerdictInconclusive, why: "signature",
	}, {
		name: "signature manifest larger than any real one",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, sigPath) && r.Method == http.MethodGet {
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				w.Write([]byte(`{"schemaVersion":2,"annotations":{"junk":"`))
				junk := []byte(strings.Repeat("x", 1<<20))
				for i := 0; i < 6; i++ {
					if _, err := w.Write(junk); err != nil {
						break
					}
				}
				return true
			}
			return false
		},
		want: VerdictInconclusive, why: "size limit",
	}, {
		name: "registry that never answers",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, sigPath) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				return true
			}
			return false
		},
		want: VerdictInconclusive, why: "deadline",
	}, {
		name: "registry that trickles bytes",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, sigPath) && r.Method == http.MethodGet {
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				w.WriteHeader(http.StatusOK)
				for i := 0; i < 50; i++ {
					if _, err := w.Write([]byte(" ")); err != nil {
						return true
					}
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
						return true
					case <-time.After(100 * time.Millisecond):
					}
				}
				return true
			}
			return false
		},
		want: VerdictInconclusive, why: "",
	}, {
		name: "redirect to another host",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, sigPath) {
				http.Redirect(w, r, "http://127.0.0.2:9/v2/elsewhere"+r.URL.Path, http.StatusTemporaryRedirect)
				return true
			}
			return false
		},
		want: VerdictInconclusive, why: "",
	}, {
		name: "unexpected auth challenge",
		fault: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, sigPath) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="http://127.0.0.1:9/token",service="x"`)
				w.WriteHeader(http.StatusUnauthorized)
				return true
			}
			return false
		},
		want: VerdictInconclusive, why: "",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.policy(t, "", "")
			repo := f.reg.Repo(t, "team/app-cache")
			d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
			sign(t, f.ci, "ci", repo, d, now, nil)
			// As cosign writes it, without the payload embedded, so that
			// the payload blob is fetched and its faults apply (embedded
			// payloads: TestVerifyInlineData).
			stripData(t, repo, d)
			f.reg.SetFault(tc.fault)
			start := time.Now()
			res, err := New(p, WithClock(func() time.Time { return now }), WithRequestTimeout(time.Second)).Verify(t.Context(), repo.Tag("main").String())
			if err != nil {
				t.Fatal(err)
			}
			if res.Trusted {
				t.Fatalf("Verify under fault %q = trusted; a fault must never let a cache in", tc.name)
			}
			wantVerdict(t, res, tc.want, tc.why)
			if el := time.Since(start); el > 15*time.Second { // a bound (3 tries of 1 s and backoff), with room for a loaded machine
				t.Errorf("Verify under fault %q took %s; want a decision within the request timeout", tc.name, el)
			}
		})
	}
}

// TestTooManySignatures: a signature list longer than MaxSignatures is
// not read: untrusted, with that reason, even with a valid signature in it.
func TestTooManySignatures(t *testing.T) {
	f := newFixture(t)
	p := f.policy(t, "", "")
	repo := f.reg.Repo(t, "team/app-cache")
	d := testreg.PushRandom(t, repo.Tag("main"), 256, 1)
	sign(t, f.ci, "ci", repo, d, now, nil)
	addJunkSignatures(t, repo, d, signature.MaxSignatures+1)
	res := f.verify(t, p, repo.Tag("main").String())
	wantVerdict(t, res, VerdictUntrusted, "more than")
}

// addJunkSignatures appends n junk signature layers to digest's .sig tag.
func addJunkSignatures(t testing.TB, repo name.Repository, d v1.Hash, n int) {
	t.Helper()
	tag := signature.SigTag(repo, d)
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	junk := static.NewLayer([]byte(`{"junk":true}`), "application/vnd.dev.cosign.simplesigning.v1+json")
	jd, _ := junk.Digest()
	if err := remote.WriteLayer(repo, junk); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		m.Layers = append(m.Layers, v1.Descriptor{
			MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Size: 13, Digest: jd,
			Annotations: map[string]string{signature.SignatureAnnotation: fmt.Sprintf("MEUCIQ%04d", i)},
		})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(tag, rawManifest{raw, m.MediaType}); err != nil {
		t.Fatal(err)
	}
}

// rawManifest is a manifest written as given.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }
