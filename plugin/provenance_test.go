package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/internal/cicontext"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// fakeBuildMetadata installs a docker CLI that, run as the build, writes
// metadata (buildx's --metadata-file JSON) where it is asked to.
func fakeBuildMetadata(t *testing.T, dir, metadata string) {
	t.Helper()
	script := filepath.Join(dir, "docker")
	body := "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = --metadata-file ]; then f=\"$2\"; fi; shift; done\n" +
		"[ -n \"$f\" ] && printf '%s' '" + metadata + "' > \"$f\"\nexit 0\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", script)
}

// countingRegistry is the harness registry (internal/testreg), with or
// without the referrers API, that counts write requests: POST, PUT, PATCH.
type countingRegistry struct {
	*testreg.Registry
	host string
}

func newCountingRegistry(t *testing.T, referrers bool) *countingRegistry {
	t.Helper()
	r := testreg.New(t, testreg.Referrers(referrers))
	return &countingRegistry{Registry: r, host: r.Host}
}

// writes counts the write requests so far.
func (cr *countingRegistry) writes() int64 {
	n := 0
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch} {
		n += cr.Count(m, "/")
	}
	return int64(n)
}

func readTrustReport(t *testing.T, path string) pipeline.Report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r pipeline.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("trust report %s: %v", data, err)
	}
	return r
}

// TestProvenanceRecordInReport: an unsigned build with a used, a dropped
// and a passed cache, exporting a registry cache: --trust-report carries
// the record, which parses, names the exported cache by the digest the
// build reported and lists every import with its verdict, action,
// guarantee and signers, the policy's fingerprint, the trustcache version
// and the source context.
func TestProvenanceRecordInReport(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "allowUnsignedTypes: [local]\n")
	good, bad := host+"/team/cache:main", host+"/team/cache:pr"
	goodDigest := pushRandom(t, good)
	badDigest := pushRandom(t, bad)
	if res := run(t, "sign", "--key", "ci.key", good); res.code != 0 {
		t.Fatal(res.stderr)
	}
	exported := pushRandom(t, host+"/team/cache:next")
	fakeBuildMetadata(t, dir, `{"cache.manifest":"{\"digest\":\"`+exported.String()+`\"}"}`)
	t.Setenv(cicontext.EnvRepo, "github.com/acme/app")
	t.Setenv(cicontext.EnvRef, "refs/heads/main")
	t.Setenv(cicontext.EnvCommit, "0123456789abcdef")

	res := run(t, "build", "--no-ledger", "--trust-report", "report.json",
		"--cache-from", good, "--cache-from", bad, "--cache-from", "type=local,src=/tmp/c",
		"--cache-to", "type=registry,ref="+host+"/team/cache:next,mode=max", ".")
	if res.code != 0 {
		t.Fatalf("build = %d %s", res.code, res.stderr)
	}
	rep := readTrustReport(t, "report.json")
	if rep.Provenance == nil {
		t.Fatal("the trust report carries no provenance record")
	}
	data, _ := rep.Provenance.Marshal()
	st, err := provenance.Parse(data)
	if err != nil {
		t.Fatalf("provenance.Parse(the report's record) = %v", err)
	}
	p, err := trustpolicy.Load(filepath.Join(dir, ".trustcache.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.LoadPublicKey("ci.pub", dir)
	if err != nil {
		t.Fatal(err)
	}
	keyID, _ := keys.ID(pub)
	want := provenance.New([]provenance.Subject{{Name: host + "/team/cache", Digest: map[string]string{"sha256": exported.Hex}}}, provenance.Predicate{
		Trustcache: "test",
		Policy:     provenance.Policy{File: p.File, Digest: p.Fingerprint(nil)},
		Source:     provenance.Source{Repository: "github.com/acme/app", Ref: "refs/heads/main", Commit: "0123456789abcdef"},
		Caches: []provenance.Cache{
			{Reference: rep.Caches[0].Source, Type: "registry", Digest: goodDigest.String(), Verdict: "trusted", Action: "used",
				Guarantee: rep.Caches[0].Guarantee, Signers: []provenance.Signer{{Builder: "ci", KeyID: keyID, SignedAt: "TIME"}}},
			{Reference: rep.Caches[1].Source, Type: "registry", Digest: badDigest.String(), Verdict: "untrusted", Action: "dropped"},
			{Reference: "type=local,src=/tmp/c", Type: "local", Action: "passed"},
		},
	})
	got := *st
	got.Predicate.BuiltAt = ""
	for i := range got.Predicate.Caches {
		for j := range got.Predicate.Caches[i].Signers {
			if _, err := time.Parse(time.RFC3339, got.Predicate.Caches[i].Signers[j].SignedAt); err == nil {
				got.Predicate.Caches[i].Signers[j].SignedAt = "TIME"
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("provenance record (-want +got):\n%s", diff)
	}
	if !strings.Contains(rep.Caches[0].Source, good) || rep.Caches[0].Guarantee == "" {
		t.Errorf("used cache report %+v; want %s with a guarantee", rep.Caches[0], good)
	}
	if len(rep.Attested) != 0 {
		t.Errorf("an unsigned build attested %+v", rep.Attested)
	}
	repo, _ := name.NewRepository(host + "/team/cache")
	if refs := provenanceReferrers(t, repo, exported, nil); len(refs) != 0 {
		t.Errorf("an unsigned build attached %d provenance referrers", len(refs))
	}
}

// provenanceReferrers returns the provenance records attached to digest
// in repo as bundle referrers, each checked against pub (nil: not
// checked).
func provenanceReferrers(t *testing.T, repo name.Repository, digest v1.Hash, pub any) []*provenance.Statement {
	t.Helper()
	idx, err := remote.Referrers(repo.Digest(digest.String()))
	if err != nil {
		t.Fatalf("referrers of %s: %v", digest, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []*provenance.Statement
	for _, d := range im.Manifests {
		if d.Annotations["dev.sigstore.bundle.predicateType"] != provenance.PredicateType {
			continue
		}
		img, err := remote.Image(repo.Digest(d.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("provenance referrer %s: %d layers, %v", d.Digest, len(layers), err)
		}
		rc, err := layers[0].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		b, err := signature.ParseBundle(data)
		if err != nil {
			t.Fatalf("provenance bundle: %v", err)
		}
		e := b.DSSEEnvelope
		if e.PayloadType != provenance.PayloadType {
			t.Errorf("payload type %q; want %q", e.PayloadType, provenance.PayloadType)
		}
		if pub != nil {
			if err := keys.VerifySignature(pub, signature.PAE(e.PayloadType, e.Payload), e.Signatures[0].Sig); err != nil {
				t.Errorf("the provenance bundle on %s does not verify with the builder key: %v", digest, err)
			}
		}
		st, err := provenance.Parse(e.Payload)
		if err != nil {
			t.Fatalf("provenance record on %s: %v", digest, err)
		}
		out = append(out, st)
	}
	return out
}

// TestProvenanceSigned: build --sign attaches the record, signed by the
// builder key, to the exported cache and the pushed image, found as a
// referrer of each (on a registry with the referrers API and on one
// without: the referrers tag); another key does not verify it; the
// caches' signatures still verify.
func TestProvenanceSigned(t *testing.T) {
	for _, api := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers API %v", api), func(t *testing.T) {
			dir := isolate(t)
			host := newCountingRegistry(t, api).host
			run(t, "keys", "generate", "--name", "ci")
			run(t, "keys", "generate", "--name", "other")
			trustPolicy(t, dir, host, "")
			base := host + "/team/cache:main"
			baseDigest := pushRandom(t, base)
			if res := run(t, "sign", "--key", "ci.key", base); res.code != 0 {
				t.Fatal(res.stderr)
			}
			cache := pushRandom(t, host+"/team/cache:next")
			image := pushRandom(t, host+"/team/app:1")
			fakeBuildMetadata(t, dir, `{"cache.manifest":{"digest":"`+cache.String()+`"},"containerimage.digest":"`+image.String()+`","image.name":"`+host+`/team/app:1,`+host+`/team/app:latest"}`)
			res := run(t, "build", "--no-ledger", "--sign", "--key", "ci.key", "--trust-report", "report.json",
				"--cache-from", base, "--cache-to", "type=registry,ref="+host+"/team/cache:next", "--push", "-t", host+"/team/app:1", ".")
			if res.code != 0 {
				t.Fatalf("build --sign = %d %s", res.code, res.stderr)
			}
			rep := readTrustReport(t, "report.json")
			cacheRepo, _ := name.NewRepository(host + "/team/cache")
			appRepo, _ := name.NewRepository(host + "/team/app")
			want := []pipeline.Signed{{Reference: cacheRepo.Name() + "@" + cache.String(), Kind: "cache"}, {Reference: appRepo.Name() + "@" + image.String(), Kind: "image"}}
			if diff := cmp.Diff(want, rep.Attested); diff != "" {
				t.Errorf("attested (-want +got):\n%s", diff)
			}
			ci, _ := keys.LoadPublicKey("ci.pub", dir)
			other, _ := keys.LoadPublicKey("other.pub", dir)
			for _, s := range []struct {
				repo   name.Repository
				digest v1.Hash
			}{{cacheRepo, cache}, {appRepo, image}} {
				recs := provenanceReferrers(t, s.repo, s.digest, ci)
				if len(recs) != 1 {
					t.Fatalf("%s@%s has %d provenance referrers; want 1", s.repo, s.digest, len(recs))
				}
				r := recs[0]
				if len(r.Subject) != 2 || len(r.Predicate.Caches) != 1 || r.Predicate.Caches[0].Digest != baseDigest.String() || r.Predicate.Caches[0].Action != "used" {
					t.Errorf("record on %s: subjects %+v, caches %+v; want both exports and the used cache %s", s.digest, r.Subject, r.Predicate.Caches, baseDigest)
				}
			}
			// The same envelope does not verify with another key.
			st, _ := rep.Provenance.Marshal()
			sigs := provenanceReferrerSigs(t, cacheRepo, cache)
			if len(sigs) != 1 || keys.VerifySignature(other, signature.PAE(provenance.PayloadType, st), sigs[0]) == nil {
				t.Errorf("the provenance signature verifies with another key (or is missing: %d)", len(sigs))
			}
			// The attestation is not a signature: verification of the cache
			// reads the build's signature only.
			if res := run(t, "verify", "--format", "json", cacheRepo.Name()+"@"+cache.String()); res.code != 0 {
				t.Errorf("verify of the signed cache = %d %s %s", res.code, res.stdout, res.stderr)
			}
		})
	}
}

// provenanceReferrerSigs returns the DSSE signatures of the provenance
// bundles attached to digest.
func provenanceReferrerSigs(t *testing.T, repo name.Repository, digest v1.Hash) [][]byte {
	t.Helper()
	idx, err := remote.Referrers(repo.Digest(digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	var out [][]byte
	for _, d := range im.Manifests {
		if d.Annotations["dev.sigstore.bundle.predicateType"] != provenance.PredicateType {
			continue
		}
		img, err := remote.Image(repo.Digest(d.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		rc, err := ls[0].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		b, err := signature.ParseBundle(data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b.DSSEEnvelope.Signatures[0].Sig)
	}
	return out
}

// TestProvenanceRegistryWrites counts the registry writes (POST, PUT,
// PATCH) attaching the record costs per subject. The bundle is the same
// for every subject: its blob is uploaded once per repository. Each
// further subject in a repository costs one write (the referrer manifest)
// with the referrers API, two without (the manifest and the referrers
// tag).
func TestProvenanceRegistryWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		api              bool
		first, following int64
	}{
		// The first subject: the empty config and the bundle blob (a POST,
		// a PATCH and a PUT each, as go-containerregistry uploads) and the
		// referrer manifest.
		{api: true, first: 7, following: 1},
		{api: false, first: 8, following: 2},
	} {
		t.Run(fmt.Sprintf("referrers API %v", tc.api), func(t *testing.T) {
			cr := newCountingRegistry(t, tc.api)
			repo, _ := name.NewRepository(cr.host + "/team/cache")
			var targets []exportTarget
			for i := range 3 {
				targets = append(targets, exportTarget{repo, pushRandom(t, fmt.Sprintf("%s:t%d", repo, i)), "cache"})
			}
			key, _, err := keys.GenerateKeyPair([]byte("pw"))
			if err != nil {
				t.Fatal(err)
			}
			signer, err := keys.LoadPrivateKey(key, []byte("pw"))
			if err != nil {
				t.Fatal(err)
			}
			st := testRecord(targets, time.Now())
			payload, err := st.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			bundle, err := signature.Signer{Key: signer}.SignStatement(context.Background(), payload)
			if err != nil {
				t.Fatal(err)
			}
			var perSubject []int64
			for _, tg := range targets {
				before := cr.writes()
				if _, err := signature.AttachAttestation(context.Background(), bundle, provenance.PredicateType, nil, []name.Digest{tg.repo.Digest(tg.digest.String())}); err != nil {
					t.Fatal(err)
				}
				perSubject = append(perSubject, cr.writes()-before)
			}
			t.Logf("registry writes per subject: %v", perSubject)
			want := []int64{tc.first, tc.following, tc.following}
			if diff := cmp.Diff(want, perSubject); diff != "" {
				t.Errorf("writes per subject (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProvenanceRecordDeduplicated: a build that records exactly what an
// earlier one did (builtAt aside), signed by the same key, attaches no
// second record and writes nothing; a record that differs (another source
// commit) or is signed by another key is attached.
func TestProvenanceRecordDeduplicated(t *testing.T) {
	t.Parallel()
	cr := newCountingRegistry(t, false)
	repo, _ := name.NewRepository(cr.host + "/team/cache")
	targets := []exportTarget{{repo, pushRandom(t, repo.String()+":c"), "cache"}}
	newSigner := func() signature.Signer {
		key, _, err := keys.GenerateKeyPair([]byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := keys.LoadPrivateKey(key, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		return signature.Signer{Key: k}
	}
	s1, s2 := newSigner(), newSigner()
	record := func(commit string, at time.Time) provenance.Statement {
		st := testRecord(targets, at)
		st.Predicate.Source.Commit = commit
		return st
	}
	attach := func(s signature.Signer, st provenance.Statement) (int, int64) {
		before := cr.writes()
		got, err := attachProvenance(context.Background(), s, st, targets)
		if err != nil {
			t.Fatal(err)
		}
		return len(got), cr.writes() - before
	}
	count := func() int { return len(provenanceReferrers(t, repo, targets[0].digest, nil)) }
	attach(s1, record("aaa", time.Now()))
	if _, writes := attach(s1, record("aaa", time.Now().Add(time.Minute))); writes != 0 || count() != 1 {
		t.Errorf("the same record again: %d writes, %d records; want 0 and 1", writes, count())
	}
	attach(s1, record("bbb", time.Now()))
	attach(s2, record("bbb", time.Now()))
	if n := count(); n != 3 {
		t.Errorf("%d records; want 3 (another commit, another key)", n)
	}
}

// BenchmarkProvenance compares attaching the record with one verification
// of a signed cache against an in-memory registry (building the record:
// internal/app/pipeline BenchmarkProvenanceRecord).
func BenchmarkProvenance(b *testing.B) {
	host := testreg.New(b).Host
	privPEM, pubPEM, err := keys.GenerateKeyPair([]byte("pw"))
	if err != nil {
		b.Fatal(err)
	}
	key, _ := keys.LoadPrivateKey(privPEM, []byte("pw"))
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "ci.pub"), pubPEM, 0o644)
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"" + host + "/team/*\"]\n    builders: [ci]\n"
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policy), 0o644)
	p, err := trustpolicy.Load(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	repo, _ := name.NewRepository(host + "/team/cache")
	ref := repo.Name() + ":main"
	r, _ := name.ParseReference(ref)
	img, _ := random.Image(128, 1)
	if err := remote.Write(r, img); err != nil {
		b.Fatal(err)
	}
	d, _ := img.Digest()
	if _, err := (signature.Signer{Key: key, Builder: "ci"}).Sign(context.Background(), repo, d, nil); err != nil {
		b.Fatal(err)
	}
	v := verify.New(p)
	res, err := v.Verify(context.Background(), ref)
	if err != nil || !res.Trusted {
		b.Fatalf("Verify = %+v, %v", res, err)
	}
	targets := []exportTarget{{repo, d, "cache"}}

	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Verify(context.Background(), ref); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Attaching it to one subject on this registry (no referrers API: the
	// referrers tag and its confirmation waits): a new record each time
	// (another commit), and the same record again (read, not written).
	signer := signature.Signer{Key: key, Builder: "ci"}
	n := 0
	b.Run("attach-new", func(b *testing.B) {
		for b.Loop() {
			n++
			st := testRecord(targets, time.Now())
			st.Predicate.Source.Commit = fmt.Sprint(n)
			if _, err := attachProvenance(context.Background(), signer, st, targets); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("attach-same", func(b *testing.B) {
		st := testRecord(targets, time.Now())
		for b.Loop() {
			if _, err := attachProvenance(context.Background(), signer, st, targets); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestProvenanceBake: a signing bake's record lists each target's imports
// with the target, and is attached to every target's exports.
func TestProvenanceBake(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	bakePolicy(t, dir, host, "")
	base := host + "/team/cache:base"
	dBase := pushRandom(t, base)
	if res := run(t, "sign", "--key", "ci.key", base); res.code != 0 {
		t.Fatal(res.stderr)
	}
	cacheA, cacheB := host+"/team/cache:a", host+"/team/cache:b"
	dA, dB := pushRandom(t, cacheA), pushRandom(t, cacheB)
	f := fakeBake(t, dir, 0)
	bakeDef(t, f.def, map[string]map[string]any{
		"a": {"cache-from": []any{registryCache(base)}, "cache-to": []any{registryCache(cacheA)}},
		"b": {"cache-from": []any{registryCache(base)}, "cache-to": []any{registryCache(cacheB)}},
	})
	md, _ := json.Marshal(map[string]any{
		"a": map[string]any{"cache.manifest": map[string]string{"digest": dA.String()}},
		"b": map[string]any{"cache.manifest": map[string]string{"digest": dB.String()}},
	})
	os.WriteFile(f.metadata, md, 0o644)
	res := run(t, "bake", "--no-ledger", "--trust-policy", "policy.yaml", "--trust-report", "report.json", "--sign", "--key", "ci.key")
	if res.code != 0 {
		t.Fatalf("bake --sign = %d %s", res.code, res.stderr)
	}
	rep := readTrustReport(t, "report.json")
	repo, _ := name.NewRepository(host + "/team/cache")
	ci, _ := keys.LoadPublicKey("ci.pub", dir)
	for _, d := range []v1.Hash{dA, dB} {
		recs := provenanceReferrers(t, repo, d, ci)
		if len(recs) != 1 {
			t.Fatalf("%s has %d provenance referrers; want 1", d, len(recs))
		}
		var targets []string
		for _, c := range recs[0].Predicate.Caches {
			if c.Digest != dBase.String() || c.Action != "used" {
				t.Errorf("cache %+v; want %s used", c, dBase)
			}
			targets = append(targets, c.Target)
		}
		if diff := cmp.Diff([]string{"a", "b"}, targets); diff != "" {
			t.Errorf("record targets (-want +got):\n%s", diff)
		}
		if len(recs[0].Subject) != 2 {
			t.Errorf("record subjects %+v; want both targets' caches", recs[0].Subject)
		}
	}
	if len(rep.Attested) != 2 {
		t.Errorf("attested %+v; want both caches", rep.Attested)
	}
}

// testRecord is a provenance record of targets, built at at.
func testRecord(targets []exportTarget, at time.Time) provenance.Statement {
	var subjects []provenance.Subject
	for _, t := range targets {
		subjects = append(subjects, provenance.Subject{Name: t.repo.Name(), Digest: map[string]string{"sha256": t.digest.Hex}})
	}
	return provenance.New(subjects, provenance.Predicate{Trustcache: "test", BuiltAt: at.UTC().Format(time.RFC3339), Caches: []provenance.Cache{}})
}
