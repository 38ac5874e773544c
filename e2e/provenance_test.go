//go:build e2e

package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
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
