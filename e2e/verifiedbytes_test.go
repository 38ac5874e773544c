//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lyingRegistry is a proxy in front of the e2e registry, on its own
// loopback port, that answers everything honestly except what lies[path]
// names: a GET of that path (a manifest or blob by digest) is answered
// with other bytes. trustcache's verification (tag HEAD, signatures)
// stays honest; only the fetch of the content BuildKit imports lies.
type lyingRegistry struct {
	host string
	mu   sync.Mutex
	lies map[string]lie // by URL path
	hits map[string]int // lies told, by URL path
}

type lie struct {
	body        []byte
	contentType string
}

func startLyingRegistry(t *testing.T) *lyingRegistry {
	t.Helper()
	lr := &lyingRegistry{lies: map[string]lie{}, hits: map[string]int{}}
	upstream, err := url.Parse("http://" + cfg.registry)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lr.mu.Lock()
		l, ok := lr.lies[r.URL.Path]
		if ok && r.Method == http.MethodGet {
			lr.hits[r.URL.Path]++
		}
		lr.mu.Unlock()
		if ok && r.Method == http.MethodGet {
			w.Header().Set("Content-Type", l.contentType)
			w.Write(l.body)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	lr.host = strings.TrimPrefix(srv.URL, "http://")
	return lr
}

// lieAbout makes GETs of path answer with body.
func (lr *lyingRegistry) lieAbout(path string, body []byte, contentType string) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	lr.lies[path] = lie{body, contentType}
}

func (lr *lyingRegistry) told(path string) int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.hits[path]
}

// manifestOf fetches a manifest's bytes and media type from the real
// registry.
func manifestOf(t *testing.T, repoPath, ref string) ([]byte, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+cfg.registry+"/v2/"+repoPath+"/manifests/"+ref, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s:%s = %d %v", repoPath, ref, resp.StatusCode, err)
	}
	return b, resp.Header.Get("Content-Type")
}

// sameSize returns the JSON document evil compacted and padded with
// trailing spaces to n bytes, as an attacker would shape a lie to the size
// the registry's HEAD reports for the digest (BuildKit reads that many
// bytes), or evil as it is when it cannot be made that small.
func sameSize(t *testing.T, evil []byte, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, evil); err != nil {
		t.Fatal(err)
	}
	if b.Len() > n {
		return evil
	}
	return append(b.Bytes(), bytes.Repeat([]byte(" "), n-b.Len())...)
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// blobOf fetches a blob from the real registry.
func blobOf(t *testing.T, repoPath, digest string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + cfg.registry + "/v2/" + repoPath + "/blobs/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob %s@%s = %d %v", repoPath, digest, resp.StatusCode, err)
	}
	return b
}

// TestVerifiedBytesLyingRegistry: a registry that answers trustcache's
// verification honestly and the fetch of the verified cache's content
// with another cache's bytes (for the manifest, for the cache config).
// Told only the pinned digest, BuildKit imports the other cache (the
// control shows it); through the verified content endpoint, the build
// never produces the other cache's output, and says why.
func TestVerifiedBytesLyingRegistry(t *testing.T) {
	e := trustEnv(t)
	ctx := e.project(t)
	e.genKey(t, "builder-a")
	lr := startLyingRegistry(t)
	repoPath := strings.TrimPrefix(uniqueRepo(t), cfg.registry+"/")
	repo := lr.host + "/" + repoPath
	cache := repo + ":cache"
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})

	// Builder A exports and signs the honest cache; the attacker's cache
	// sits under another tag of the same repository.
	e.prune(t)
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--sign", "--key", "builder-a.key",
		"--cache-to", "type=registry,ref="+cache+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-a"), ctx)
	e.trustcache(t, args...).must(t)
	honest := readResult(t, filepath.Join(e.dir, "out-a"))
	e.prune(t)
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+repo+":evil,mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-x"), ctx)
	e.docker(t, args...).must(t)
	poison := readResult(t, filepath.Join(e.dir, "out-x"))

	signed := strings.TrimSpace(e.crane(t, "digest", cfg.registry+"/"+repoPath+":cache").must(t).stdout)
	honestManifest, _ := manifestOf(t, repoPath, signed)
	evilManifest, evilType := manifestOf(t, repoPath, "evil")
	type descriptor struct{ Digest string }
	var hm, em struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if json.Unmarshal(honestManifest, &hm) != nil || json.Unmarshal(evilManifest, &em) != nil || hm.Config.Digest == "" || em.Config.Digest == "" || len(hm.Layers) == 0 || len(em.Layers) == 0 {
		t.Fatalf("cache manifests without a config or layers:\n%s\n%s", honestManifest, evilManifest)
	}
	manifestPath := "/v2/" + repoPath + "/manifests/" + signed
	configPath := "/v2/" + repoPath + "/blobs/" + hm.Config.Digest
	// The last layer (the result step's), answered with the attacker's
	// last layer cut or padded to its size.
	lastLayer := hm.Layers[len(hm.Layers)-1].Digest
	layerPath := "/v2/" + repoPath + "/blobs/" + lastLayer
	honestLayer := blobOf(t, repoPath, lastLayer)
	evilLayer := append(blobOf(t, repoPath, em.Layers[len(em.Layers)-1].Digest), make([]byte, len(honestLayer))...)[:len(honestLayer)]

	for _, tc := range []struct {
		name, path string
		body       []byte
		typ        string
		// A layer that does not match fails the layer's download: the
		// build may fail (BuildKit checks layers it commits, and cannot
		// fetch this one through the endpoint), never with the lie.
		mayFail bool
	}{
		{"manifest", manifestPath, sameSize(t, evilManifest, len(honestManifest)), evilType, false},
		{"cache config", configPath, sameSize(t, blobOf(t, repoPath, em.Config.Digest), len(blobOf(t, repoPath, hm.Config.Digest))), "application/octet-stream", false},
		{"layer", layerPath, evilLayer, "application/octet-stream", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lr.lieAbout(tc.path, tc.body, tc.typ)
			defer func() {
				lr.mu.Lock()
				delete(lr.lies, tc.path)
				lr.mu.Unlock()
			}()

			// The control: BuildKit told only the pinned digest imports
			// the other cache's content.
			func() {
				e.prune(t)
				outCtl := filepath.Join(e.dir, "out-control-"+strings.ReplaceAll(tc.name, " ", "-"))
				args := append([]string{"buildx", "build"}, remoteBuildArgs()...)
				args = append(args, "--cache-from", "type=registry,ref="+repo+"@"+signed, "-o", "type=local,dest="+outCtl, ctx)
				ctl := e.docker(t, args...)
				if ctl.code != 0 {
					if !tc.mayFail {
						t.Fatalf("control build failed: %v", ctl)
					}
					t.Logf("control: BuildKit told %s@%s failed on the lie: %s", repo, signed, lastLine(ctl.stderr))
					return
				}
				// Without the endpoint BuildKit imports the manifest lie
				// (it reads the manifest unchecked): the attack is real. A
				// config lie alone is not imported (BuildKit then finds no
				// records), so that control is only logged.
				got := readResult(t, outCtl)
				switch {
				case got != poison && tc.name == "manifest" && len(tc.body) == len(honestManifest):
					t.Errorf("control: BuildKit told %s@%s built %q, not the attacker's %q: the lie was not imported, the test proves nothing", repo, signed, got, poison)
				case got == poison:
					t.Logf("control: BuildKit told %s@%s imported the attacker's cache (%q): the attack is real", repo, signed, poison)
				default:
					t.Logf("control: BuildKit told %s@%s built %q (attacker's %q, honest %q): the lie was not imported", repo, signed, got, poison, honest)
				}
			}()

			// Through trustcache: verified, served through the endpoint,
			// the lie refused.
			e.prune(t)
			before := lr.told(tc.path)
			out := filepath.Join(e.dir, "out-"+strings.ReplaceAll(tc.name, " ", "-"))
			report := out + "-report.json"
			args := append([]string{"build"}, remoteBuildArgs()...)
			args = append(args, "--trust-policy", policy, "--no-ledger", "--trust-report", report, "--cache-from", cache, "-o", "type=local,dest="+out, ctx)
			r := e.trustcache(t, args...)
			switch {
			case r.code == 0:
				if got := readResult(t, out); got == poison {
					t.Errorf("the build produced the attacker's output %q through trustcache\n%s", got, r.stderr)
				}
			case !tc.mayFail:
				t.Fatalf("the build failed: %v", r)
			}
			if lr.told(tc.path) == before {
				t.Errorf("the lying registry was never asked for %s: the test proves nothing\n%s", tc.path, r.stderr)
			}
			if !strings.Contains(r.stderr, "not passed on to BuildKit: mismatch") {
				t.Errorf("the build does not say why the cache was not imported:\n%s", r.stderr)
			}
			rep := readReport(t, report)
			if len(rep.Caches) != 1 || rep.Caches[0].Action != "used" || rep.Caches[0].Guarantee != "verified-bytes" || len(rep.Caches[0].Refused) == 0 {
				t.Errorf("trust report %+v; want the cache used with verified bytes and the refusal recorded", rep.Caches)
			}
		})
	}

	// Honest again: the signed cache is imported through the endpoint and
	// the steps are cached.
	e.prune(t)
	out := filepath.Join(e.dir, "out-honest")
	args = append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--no-ledger", "--cache-from", cache, "-o", "type=local,dest="+out, ctx)
	r := e.trustcache(t, args...).must(t)
	if got := readResult(t, out); got != honest {
		t.Errorf("consumer built %q; want the signed cache's %q through the endpoint\n%s", got, honest, r.stderr)
	}
	if !strings.Contains(r.stderr, "(verified bytes)") {
		t.Errorf("the summary does not say the cache had verified bytes:\n%s", r.stderr)
	}
}

// TestVerifiedBytesDockerDriver: the docker driver's BuildKit (inside
// dockerd) reaches the verified content endpoint too: an inline cache
// image signed by builder A is reused through it, and a registry that
// answers the fetch of the signed manifest with the attacker's image
// manifest gets nothing imported.
func TestVerifiedBytesDockerDriver(t *testing.T) {
	e := trustEnv(t)
	ctx := e.project(t)
	e.genKey(t, "builder-a")
	lr := startLyingRegistry(t)
	repoPath := strings.TrimPrefix(uniqueRepo(t), cfg.registry+"/")
	image := lr.host + "/" + repoPath + ":main"
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{lr.host + "/" + repoPath}, builders: []string{"builder-a"}}})
	flags := []string{"--builder", "default", "--network", cfg.network}
	fresh := func() {
		t.Helper()
		for _, ref := range []string{image, lr.host + "/" + repoPath + ":evil"} {
			e.docker(t, "image", "rm", "-f", ref) // may not be there
		}
		e.docker(t, "buildx", "prune", "--builder", "default", "--all", "--force").must(t)
	}
	push := func(ref, dir string) string {
		t.Helper()
		args := append([]string{"buildx", "build"}, flags...)
		args = append(args, "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", ref, "--push", dir)
		e.docker(t, args...).must(t)
		return strings.TrimSpace(e.docker(t, "run", "--rm", "--network", "none", ref, "cat", "/result.txt").must(t).stdout)
	}

	honest := push(image, ctx)
	fresh()
	attackerCtx := filepath.Join(e.dir, "attacker")
	if err := os.MkdirAll(attackerCtx, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(ctx, "Dockerfile"), filepath.Join(attackerCtx, "Dockerfile"), 0o644); err != nil {
		t.Fatal(err)
	}
	poison := push(lr.host+"/"+repoPath+":evil", attackerCtx)
	if poison == honest {
		t.Fatalf("the attacker's build reused the honest one (%q): the test proves nothing", honest)
	}
	signed := strings.TrimSpace(e.crane(t, "digest", cfg.registry+"/"+repoPath+":main").must(t).stdout)
	e.trustcache(t, "sign", "--key", "builder-a.key", lr.host+"/"+repoPath+"@"+signed).must(t)

	consume := func(name string) (string, result) {
		t.Helper()
		fresh()
		out := filepath.Join(e.dir, "out-"+name)
		args := append([]string{"build"}, flags...)
		args = append(args, "--trust-policy", policy, "--no-ledger", "--cache-from", image, "-o", "type=local,dest="+out, ctx)
		r := e.trustcache(t, args...)
		if r.code != 0 {
			return "", r
		}
		return readResult(t, out), r
	}
	got, r := consume("honest")
	if got != honest || !strings.Contains(r.stderr, "(verified bytes)") {
		t.Errorf("consumer on the docker driver built %q; want the signed image's %q through the verified content endpoint\n%v", got, honest, r)
	}

	evilManifest, evilType := manifestOf(t, repoPath, "evil")
	path := "/v2/" + repoPath + "/manifests/" + signed
	lr.lieAbout(path, evilManifest, evilType)
	got, r = consume("lied-to")
	if got == poison {
		t.Errorf("the build produced the attacker's output %q through trustcache\n%v", got, r)
	}
	if lr.told(path) == 0 {
		t.Errorf("the lying registry was never asked for the signed manifest: the test proves nothing\n%v", r)
	}
	if !strings.Contains(r.stderr, "not passed on to BuildKit: mismatch") {
		t.Errorf("the build does not say why the cache was not imported:\n%v", r)
	}
}
