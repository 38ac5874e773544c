package plugin

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/docker-trustcache/docker-trustcache/verify"
)

// TestProvenanceCommand: docker trustcache provenance shows the verified
// record of a cache build --sign exported (its import re-verified), exits
// 3 with the reason for a cache `sign` signed (no record), 5 for a tag
// that does not exist and 2 for usage errors; under requireProvenance, verify refuses a cache built from the
// unrecorded one though its own signature and record are good.
func TestProvenanceCommand(t *testing.T) {
	dir := isolate(t)
	host := newCountingRegistry(t, true).host
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	base := host + "/team/cache:main"
	pushRandom(t, base)
	if res := run(t, "sign", "--key", "ci.key", base); res.code != 0 {
		t.Fatal(res.stderr)
	}
	cache := pushRandom(t, host+"/team/cache:next")
	fakeBuildMetadata(t, dir, `{"cache.manifest":{"digest":"`+cache.String()+`"}}`)
	if res := run(t, "build", "--no-ledger", "--sign", "--key", "ci.key", "--cache-from", base,
		"--cache-to", "type=registry,ref="+host+"/team/cache:next", "."); res.code != 0 {
		t.Fatalf("build --sign = %d %s", res.code, res.stderr)
	}
	repo, _ := name.NewRepository(host + "/team/cache")
	next := repo.Name() + "@" + cache.String()

	res := run(t, "provenance", "--no-ledger", next)
	if res.code != 0 {
		t.Fatalf("provenance = %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{next + ": verified record", "signed by: ci sha256:", "(this policy)",
		"import:    type=registry,ref=" + base, "recorded:  trusted, used", "now:       ok: re-verified"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("provenance output lacks %q:\n%s", want, res.stdout)
		}
	}

	// --depth 1: base's own records are read: it has none (signed by sign).
	res = run(t, "provenance", "--no-ledger", "--depth", "1", "--format", "json", next)
	var node verify.ProvenanceNode
	if err := json.Unmarshal([]byte(res.stdout), &node); err != nil || res.code != 0 {
		t.Fatalf("provenance --format json = %d %v\n%s%s", res.code, err, res.stdout, res.stderr)
	}
	chain := node.Records[0].Imports[0].Chain
	if !node.OK || chain == nil || chain.OK || !strings.Contains(strings.Join(chain.Reasons, " "), "no provenance record") {
		t.Errorf("depth 1: %+v; want base's missing record as a reason", chain)
	}

	res = run(t, "provenance", "--no-ledger", base)
	if res.code != ExitUntrusted || !strings.Contains(res.stdout, "no verified record") || !strings.Contains(res.stdout, "reason:    no provenance record") {
		t.Errorf("provenance of a cache signed by sign = %d\n%s%s; want 3 with the reason", res.code, res.stdout, res.stderr)
	}
	// A tag that does not exist is missing (exit 5, as verify says it),
	// not a registry failure (4).
	if res := run(t, "provenance", "--no-ledger", host+"/team/cache:never-pushed"); res.code != ExitMissing || !strings.Contains(res.stdout, "does not exist") {
		t.Errorf("provenance of a missing tag = %d\n%s%s; want %d saying it does not exist", res.code, res.stdout, res.stderr, ExitMissing)
	}
	for _, args := range [][]string{{"--depth", "17", next}, {"--format", "yaml", next}, {"NOT A REF"}, {}} {
		if res := run(t, append([]string{"provenance"}, args...)...); res.code != ExitUsage {
			t.Errorf("provenance %q = %d; want %d\n%s", args, res.code, ExitUsage, res.stderr)
		}
	}

	// The provenance rule: next's record is good, but the cache it imported
	// has no record of its own.
	trustPolicy(t, dir, host, "    requireProvenance: true\n")
	if res := run(t, "verify", "--no-ledger", next); res.code != ExitUntrusted || !strings.Contains(res.stdout, "no longer verifies") {
		t.Errorf("verify under requireProvenance = %d\n%s%s; want 3: its import has no record", res.code, res.stdout, res.stderr)
	}
	if res := run(t, "policy", "explain", next); res.code != ExitUntrusted || !strings.Contains(res.stdout, "provenance (requireProvenance, maxDepth 3, maxRequests 200): ") {
		t.Errorf("policy explain under requireProvenance = %d\n%s%s; want 3 with the rule's reason", res.code, res.stdout, res.stderr)
	}
	trustPolicy(t, dir, host, "    requireProvenance: true\n    maxDepth: 99\n")
	if res := run(t, "policy", "lint"); res.code != ExitUsage || !strings.Contains(res.stderr, ".trustcache.yaml:9:5: scopes[0].maxDepth: 99 is out of range") {
		t.Errorf("policy lint of maxDepth 99 = %d\n%s%s; want 2 naming file:line and field", res.code, res.stdout, res.stderr)
	}
	trustPolicy(t, dir, host, "")
	if res := run(t, "verify", "--no-ledger", next); res.code != 0 {
		t.Errorf("verify without requireProvenance = %d\n%s%s; want 0", res.code, res.stdout, res.stderr)
	}
}
