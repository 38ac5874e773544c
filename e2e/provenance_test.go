//go:build e2e

package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// provenancePredicateType is the predicate type of trustcache's
// provenance record (docs/provenance.md).
const provenancePredicateType = "https://docker-trustcache.dev/cache-provenance/v1"

// provenanceRecord is the part of the record the e2e tests read.
type provenanceRecord struct {
	Type    string `json:"_type"`
	Subject []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	PredicateType string `json:"predicateType"`
	Predicate     struct {
		Trustcache string `json:"trustcacheVersion"`
		Policy     struct {
			Digest string `json:"digest"`
		} `json:"policy"`
		Caches []struct {
			Reference string `json:"reference"`
			Digest    string `json:"digest"`
			Action    string `json:"action"`
			Verdict   string `json:"verdict"`
			Guarantee string `json:"guarantee"`
			Signers   []struct {
				Builder string `json:"builder"`
				KeyID   string `json:"keyId"`
			} `json:"signers"`
		} `json:"caches"`
	} `json:"predicate"`
}

// attestations reads what cosign verify-attestation prints: one DSSE
// envelope a line, the statement base64 in its payload.
func attestations(t *testing.T, out string) []provenanceRecord {
	t.Helper()
	var recs []provenanceRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     string `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatalf("cosign verify-attestation printed %q: %v", line, err)
		}
		data, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatalf("attestation payload: %v", err)
		}
		var rec provenanceRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatalf("attestation statement %s: %v", data, err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// TestProvenanceAttestation: a signing build records which caches it
// imported (one used, one dropped) in an in-toto statement, signs it with
// the builder key and attaches it to the cache it exported; the real cosign
// verifies it offline with the builder's public key and the record's
// predicate type, and refuses it with another key.
func TestProvenanceAttestation(t *testing.T) {
	e := trustEnv(t)
	ctx := e.project(t)
	e.genKey(t, "builder-a")
	e.genKey(t, "attacker")
	repo := uniqueRepo(t)
	base, next := repo+":base", repo+":next"
	evil, evilDigest := pushRandomImage(t, repo) // unsigned: dropped
	policy := e.writePolicy(t, "policy.yaml", []builder{{"builder-a", []string{"builder-a.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"builder-a"}}})

	// Builder A exports and signs the base cache.
	e.prune(t)
	reportA := filepath.Join(e.dir, "report-a.json")
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--trust-report", reportA, "--sign", "--key", "builder-a.key",
		"--cache-to", "type=registry,ref="+base+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-a"), ctx)
	e.trustcache(t, args...).must(t)
	rep := readReport(t, reportA)
	if len(rep.Signed) != 1 {
		t.Fatalf("builder A signed %+v; want its cache", rep.Signed)
	}
	baseRef := rep.Signed[0].Reference

	// The next build imports it (used) and the unsigned one (dropped),
	// exports its own cache and signs it, with the provenance record.
	e.prune(t)
	reportB := filepath.Join(e.dir, "report-b.json")
	args = append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--trust-report", reportB, "--no-ledger", "--sign", "--key", "builder-a.key",
		"--cache-from", base, "--cache-from", "type=registry,ref="+evil,
		"--cache-to", "type=registry,ref="+next+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-b"), ctx)
	e.trustcache(t, args...).must(t)
	rep = readReport(t, reportB)
	if len(rep.Signed) != 1 {
		t.Fatalf("build B signed %+v; want its cache", rep.Signed)
	}
	nextRef := rep.Signed[0].Reference
	t.Logf("build B exported %s", nextRef)

	verifyArgs := func(pub string) []string {
		return []string{"verify-attestation", "--key", pub, "--type", provenancePredicateType,
			"--insecure-ignore-tlog=true", "--trusted-root", cfg.trustedRoot, nextRef}
	}
	check := func(t *testing.T, out string) {
		t.Helper()
		// Build B's cache is build A's, byte for byte (every step came
		// from it): the digest carries both builds' records.
		recs := attestations(t, out)
		var r *provenanceRecord
		for i := range recs {
			if len(recs[i].Predicate.Caches) > 0 {
				r = &recs[i]
			}
		}
		if len(recs) == 0 || len(recs) > 2 || r == nil {
			t.Fatalf("cosign verify-attestation printed %d attestations, none with caches; want build B's (and A's):\n%s", len(recs), out)
		}
		if r.Type != "https://in-toto.io/Statement/v1" || r.PredicateType != provenancePredicateType {
			t.Errorf("statement type %q, predicate type %q", r.Type, r.PredicateType)
		}
		if len(r.Subject) != 1 || r.Subject[0].Name != repo || "sha256:"+r.Subject[0].Digest["sha256"] != nextRef[strings.LastIndex(nextRef, "@")+1:] {
			t.Errorf("subjects %+v; want %s", r.Subject, nextRef)
		}
		if !strings.HasPrefix(r.Predicate.Policy.Digest, "sha256:") || r.Predicate.Trustcache == "" {
			t.Errorf("policy digest %q, trustcache version %q; want both", r.Predicate.Policy.Digest, r.Predicate.Trustcache)
		}
		if len(r.Predicate.Caches) != 2 {
			t.Fatalf("predicate caches %+v; want the used and the dropped one", r.Predicate.Caches)
		}
		t.Logf("record by trustcache %q, policy %s", r.Predicate.Trustcache, r.Predicate.Policy.Digest)
		used, dropped := r.Predicate.Caches[0], r.Predicate.Caches[1]
		if used.Action != "used" || !strings.Contains(used.Reference, base) || repo+"@"+used.Digest != baseRef || used.Verdict != "trusted" ||
			len(used.Signers) != 1 || used.Signers[0].Builder != "builder-a" || used.Guarantee == "" {
			t.Errorf("used cache %+v; want %s used, pinned to %s, signed by builder-a", used, base, baseRef)
		}
		if !strings.Contains(dropped.Reference, evil) || dropped.Action != "dropped" || dropped.Verdict != "untrusted" || dropped.Digest != evilDigest {
			t.Errorf("dropped cache %+v; want %s dropped, untrusted, digest %s", dropped, evil, evilDigest)
		}
	}

	t.Run("cosign v3", func(t *testing.T) {
		r := e.cosign3(t, verifyArgs("builder-a.pub")...).must(t)
		check(t, r.stdout)
		if r := e.cosign3(t, verifyArgs("attacker.pub")...); r.code == 0 {
			t.Errorf("cosign v3 verify-attestation with another key succeeded:\n%s", r.stdout)
		}
		// The attestation does not disturb the cache's signature.
		e.cosign3(t, cosignVerifyArgs("builder-a.pub", nextRef)...).must(t)
	})
	t.Run("cosign v2 --new-bundle-format", func(t *testing.T) {
		args := append([]string{"verify-attestation", "--new-bundle-format"}, verifyArgs("builder-a.pub")[1:]...)
		r := e.cosign(t, args...).must(t)
		check(t, r.stdout)
		args = append([]string{"verify-attestation", "--new-bundle-format"}, verifyArgs("attacker.pub")[1:]...)
		if r := e.cosign(t, args...); r.code == 0 {
			t.Errorf("cosign v2 verify-attestation with another key succeeded:\n%s", r.stdout)
		}
		e.cosign(t, cosignVerifyArgs("builder-a.pub", nextRef)...).must(t)
	})
	// trustcache's own verification of the cache is unchanged.
	if r := e.trustcache(t, "verify", "--policy", policy, "--format", "json", nextRef); r.code != 0 {
		t.Errorf("docker trustcache verify %s = %d %s%s", nextRef, r.code, r.stdout, r.stderr)
	}
}

// layeredProject writes a build context whose Dockerfile is the e2e
// Dockerfile plus one step per extra line, each appending to /result.txt:
// a build of level N imports level N-1's cache for every step but its own
// last, and exports a cache with a digest of its own.
func (e *env) layeredProject(t *testing.T, name string, extra ...string) string {
	t.Helper()
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(dockerfile, "%BASE%", cfg.baseImage)
	for _, x := range extra {
		df += "RUN echo " + x + " >> /result.txt\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// appendPolicy appends top-level YAML to the policy file at path.
func appendPolicy(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// signedBuild runs docker trustcache build --sign with key under policy,
// importing from (if set) and exporting the cache to ref; it returns the
// pinned reference it signed.
func (e *env) signedBuild(t *testing.T, policy, key, ctx, from, to string) string {
	t.Helper()
	e.prune(t)
	report := filepath.Join(e.dir, "report-"+filepath.Base(ctx)+".json")
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--trust-report", report, "--no-ledger", "--sign", "--key", key)
	if from != "" {
		args = append(args, "--cache-from", from)
	}
	args = append(args, "--cache-to", "type=registry,ref="+to+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-"+filepath.Base(ctx)), ctx)
	e.trustcache(t, args...).must(t)
	rep := readReport(t, report)
	if len(rep.Signed) != 1 {
		t.Fatalf("build of %s signed %+v; want its cache", ctx, rep.Signed)
	}
	if from != "" && (len(rep.Caches) != 1 || rep.Caches[0].Action != "used") {
		t.Fatalf("build of %s: caches %+v; want %s used", ctx, rep.Caches, from)
	}
	return rep.Signed[0].Reference
}

// consumeCache builds ctx under policy with --cache-from from, on a
// pruned builder, and returns the trust report's one cache entry and the
// build's /result.txt.
func (e *env) consumeCache(t *testing.T, policy, ctx, from, out string) (action, reason, result string) {
	t.Helper()
	e.prune(t)
	report := filepath.Join(e.dir, "report-"+out+".json")
	args := append([]string{"build"}, remoteBuildArgs()...)
	args = append(args, "--trust-policy", policy, "--trust-report", report, "--no-ledger",
		"--cache-from", from, "-o", "type=local,dest="+filepath.Join(e.dir, out), ctx)
	e.trustcache(t, args...).must(t)
	rep := readReport(t, report)
	if len(rep.Caches) != 1 {
		t.Fatalf("consumer %s: caches %+v; want one", out, rep.Caches)
	}
	return rep.Caches[0].Action, rep.Caches[0].Reason, readResult(t, filepath.Join(e.dir, out))
}

// TestProvenanceLaundering is issue 16's laundering scenario on the real
// stack. Builder A, an allowed builder, imports the attacker's unsigned
// cache with plain docker buildx build — outside trustcache — exports its
// own cache and signs it with docker trustcache sign: a good signature
// over the attacker's bytes, and no provenance record (no trustcache
// build made it). A consumer whose scope does not require provenance uses
// it (the attacker's output is built); one whose scope requires it drops
// it; docker trustcache provenance shows why.
func TestProvenanceLaundering(t *testing.T) {
	e := trustEnv(t)
	ctx := e.project(t)
	e.genKey(t, "builder-a")
	repo := uniqueRepo(t)
	poison, laundered := repo+":poison", repo+":laundered"
	builders := []builder{{"builder-a", []string{"builder-a.pub"}}}
	plain := e.writePolicy(t, "plain.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}}})
	strict := e.writePolicy(t, "strict.yaml", builders, []scope{{repos: []string{repo}, builders: []string{"builder-a"}, extra: "    requireProvenance: true"}})

	// The attacker's cache: unsigned.
	e.prune(t)
	args := append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-to", "type=registry,ref="+poison+",mode=max", "-o", "type=local,dest="+filepath.Join(e.dir, "out-poison"), ctx)
	e.docker(t, args...).must(t)
	poisoned := readResult(t, filepath.Join(e.dir, "out-poison"))

	// Builder A imports it without trustcache, exports and signs.
	e.prune(t)
	args = append([]string{"buildx", "build"}, remoteBuildArgs()...)
	args = append(args, "--cache-from", "type=registry,ref="+poison, "--cache-to", "type=registry,ref="+laundered+",mode=max",
		"-o", "type=local,dest="+filepath.Join(e.dir, "out-a"), ctx)
	e.docker(t, args...).must(t)
	if got := readResult(t, filepath.Join(e.dir, "out-a")); got != poisoned {
		t.Fatalf("builder A built %q, not the attacker's %q: the import did not happen", got, poisoned)
	}
	e.trustcache(t, "sign", "--key", "builder-a.key", laundered).must(t)
	e.trustcache(t, "verify", "--policy", plain, laundered).must(t)

	// A consumer whose scope does not require provenance: A's signature
	// counts, the attacker's output is built.
	action, reason, got := e.consumeCache(t, plain, ctx, laundered, "out-plain")
	if action != "used" || got != poisoned {
		t.Errorf("consumer without requireProvenance: %s (%s), built %q; want the laundered cache used (%q)", action, reason, got, poisoned)
	}
	// One whose scope requires provenance drops it.
	action, reason, got = e.consumeCache(t, strict, ctx, laundered, "out-strict")
	if action != "dropped" || got == poisoned || !strings.Contains(reason, "no provenance record") {
		t.Errorf("consumer with requireProvenance: %s (%s), built %q; want dropped for its missing record, not %q", action, reason, got, poisoned)
	}
	t.Logf("requireProvenance: dropped: %s", reason)

	// provenance shows why.
	r := e.trustcache(t, "provenance", "--policy", strict, laundered).wantCode(t, 3)
	if !strings.Contains(r.stdout, "no verified record") || !strings.Contains(r.stdout, "no provenance record") {
		t.Errorf("docker trustcache provenance %s:\n%s%s", laundered, r.stdout, r.stderr)
	}
	e.trustcache(t, "verify", "--policy", strict, laundered).wantCode(t, 3)
}

// TestProvenanceChain: C imported B imported A, each through docker
// trustcache build --sign by its own builder. provenance --depth 2 shows
// and verifies the three records; a consumer requiring provenance uses C.
// Then builder A's key is revoked (say it signed a poisoned cache): C is
// still signed by a good key and its record is good, but what it was
// built from no longer verifies — a consumer requiring provenance drops
// it, one that does not still uses it, and provenance shows why.
func TestProvenanceChain(t *testing.T) {
	e := trustEnv(t)
	for _, k := range []string{"builder-a", "builder-b", "builder-c"} {
		e.genKey(t, k)
	}
	repo := uniqueRepo(t)
	builders := []builder{{"builder-a", []string{"builder-a.pub"}}, {"builder-b", []string{"builder-b.pub"}}, {"builder-c", []string{"builder-c.pub"}}}
	all := []string{"builder-a", "builder-b", "builder-c"}
	plain := e.writePolicy(t, "plain.yaml", builders, []scope{{repos: []string{repo}, builders: all}})
	strict := e.writePolicy(t, "strict.yaml", builders, []scope{{repos: []string{repo}, builders: all, extra: "    requireProvenance: true"}})
	ctxA := e.layeredProject(t, "level-a")
	ctxB := e.layeredProject(t, "level-b", "b")
	ctxC := e.layeredProject(t, "level-c", "b", "c")

	refA := e.signedBuild(t, strict, "builder-a.key", ctxA, "", repo+":a")
	refB := e.signedBuild(t, strict, "builder-b.key", ctxB, repo+":a", repo+":b")
	refC := e.signedBuild(t, strict, "builder-c.key", ctxC, repo+":b", repo+":c")
	if refA == refB || refB == refC {
		t.Fatalf("the levels share a digest (%s, %s, %s): the chain would be a cycle", refA, refB, refC)
	}
	builtC := readResult(t, filepath.Join(e.dir, "out-level-c"))

	r := e.trustcache(t, "provenance", "--policy", strict, "--depth", "2", repo+":c").must(t)
	t.Logf("docker trustcache provenance --depth 2:\n%s", r.stdout)
	for _, want := range []string{
		"verified record", "signed by: builder-c", "signed by: builder-b", "signed by: builder-a",
		"chain:     " + refB + ": verified record", "chain:     " + refA + ": verified record", "imports:   none",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("provenance --depth 2 lacks %q", want)
		}
	}
	r = e.trustcache(t, "provenance", "--policy", strict, "--depth", "2", "--format", "json", repo+":c").must(t)
	var node struct {
		OK      bool `json:"ok"`
		Records []struct {
			Imports []struct {
				Pinned string `json:"pinned"`
				Chain  *struct {
					OK      bool `json:"ok"`
					Records []struct {
						Imports []struct {
							Pinned string `json:"pinned"`
							Chain  *struct {
								OK bool `json:"ok"`
							} `json:"chain"`
						} `json:"imports"`
					} `json:"records"`
				} `json:"chain"`
			} `json:"imports"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &node); err != nil {
		t.Fatalf("provenance --format json: %v\n%s", err, r.stdout)
	}
	if !node.OK || len(node.Records) == 0 || len(node.Records[0].Imports) != 1 || node.Records[0].Imports[0].Pinned != refB {
		t.Fatalf("json: C's record %+v; want its import %s", node, refB)
	}
	b := node.Records[0].Imports[0].Chain
	if b == nil || !b.OK || len(b.Records) == 0 || len(b.Records[0].Imports) != 1 || b.Records[0].Imports[0].Pinned != refA ||
		b.Records[0].Imports[0].Chain == nil || !b.Records[0].Imports[0].Chain.OK {
		t.Errorf("json: B's level %+v; want its import %s with A's verified record", b, refA)
	}

	action, reason, got := e.consumeCache(t, strict, ctxC, repo+":c", "out-consumer-strict")
	if action != "used" || got != builtC {
		t.Errorf("consumer requiring provenance: %s (%s), built %q; want C's cache used (%q)", action, reason, got, builtC)
	}

	// Builder A's key is revoked.
	id := strings.TrimSpace(e.trustcache(t, "keys", "id", filepath.Join(e.dir, "builder-a.pub")).must(t).stdout)
	appendPolicy(t, plain, "revoked: ["+id+"]\n")
	appendPolicy(t, strict, "revoked: ["+id+"]\n")
	action, reason, got = e.consumeCache(t, plain, ctxC, repo+":c", "out-consumer-plain-revoked")
	if action != "used" || got != builtC {
		t.Errorf("consumer without requireProvenance after the revocation: %s (%s), built %q; want C's cache still used", action, reason, got)
	}
	action, reason, got = e.consumeCache(t, strict, ctxC, repo+":c", "out-consumer-strict-revoked")
	if action != "dropped" || got == builtC || !strings.Contains(reason, "no longer verifies") {
		t.Errorf("consumer requiring provenance after the revocation: %s (%s), built %q; want C's cache dropped", action, reason, got)
	}
	t.Logf("requireProvenance after revoking A: dropped: %s", reason)
	r = e.trustcache(t, "provenance", "--policy", strict, "--depth", "2", repo+":c").wantCode(t, 3)
	if !strings.Contains(r.stdout, "revoked key") || !strings.Contains(r.stdout, "no longer verifies") {
		t.Errorf("provenance after the revocation does not say why:\n%s", r.stdout)
	}
}
