package plugin

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/keys"
)

// TestProvenanceSigningFailureReported: a real build --sign whose image
// signature cannot be written (the build reports an image digest the
// registry does not have) fails, naming the signing failure; the report
// lists as signed only what carries a signature, and as attested only
// subjects that carry the record — nothing half-written is reported done.
func TestProvenanceSigningFailureReported(t *testing.T) {
	dir := isolate(t)
	host := newCountingRegistry(t, false).host
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	cache := pushRandom(t, host+"/team/cache:next")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	missing, _ := img.Digest() // never pushed
	fakeBuildMetadata(t, dir, `{"cache.manifest":{"digest":"`+cache.String()+`"},"containerimage.digest":"`+missing.String()+`","image.name":"`+host+`/team/app:1"}`)
	res := run(t, "build", "--no-ledger", "--sign", "--key", "ci.key", "--signature-format", "bundle", "--trust-report", "report.json",
		"--cache-to", "type=registry,ref="+host+"/team/cache:next", "--push", "-t", host+"/team/app:1", ".")
	if res.code == 0 || !strings.Contains(res.stderr, "signing its exports failed") || !strings.Contains(res.stderr, missing.String()) {
		t.Fatalf("build --sign = %d %s; want the signing failure naming %s", res.code, res.stderr, missing)
	}
	rep := readTrustReport(t, "report.json")
	cacheRepo, _ := name.NewRepository(host + "/team/cache")
	want := []pipeline.Signed{{Reference: cacheRepo.Name() + "@" + cache.String(), Kind: "cache"}}
	if diff := cmp.Diff(want, rep.Signed); diff != "" {
		t.Errorf("signed (-want +got):\n%s", diff)
	}
	if res := run(t, "verify", "--no-ledger", "--format", "json", cacheRepo.Name()+"@"+cache.String()); res.code != 0 {
		t.Errorf("verify of the signed cache = %d %s %s", res.code, res.stdout, res.stderr)
	}
	// Whatever the report says was attested carries the record; the
	// image, which does not exist, is not among them.
	ci, _ := keys.LoadPublicKey("ci.pub", dir)
	for _, a := range rep.Attested {
		if a.Kind != "cache" {
			t.Errorf("attested %v; the image was never written", a)
			continue
		}
		if recs := provenanceReferrers(t, cacheRepo, cache, ci); len(recs) != 1 {
			t.Errorf("report says the record is on %s; the registry has %d", a.Reference, len(recs))
		}
	}
	if rep.Provenance == nil {
		t.Errorf("no provenance record in the report")
	}
}
