//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// TestCosignSignThenVerify: a signature written by the real cosign v2
// `sign --key` (key from cosign generate-key-pair) verifies with docker
// trustcache verify when that key is an allowed builder's, and not when it
// is not.
func TestCosignSignThenVerify(t *testing.T) {
	e := trustEnv(t)
	e.cosign(t, "generate-key-pair").must(t)
	e.genKey(t, "ci")
	repo := uniqueRepo(t)
	policy := e.writePolicy(t, "policy.yaml",
		[]builder{{"cosigner", []string{"cosign.pub"}}, {"ci", []string{"ci.pub"}}},
		[]scope{{repos: []string{repo}, builders: []string{"cosigner"}}})

	signed, digest := pushRandomImage(t, repo)
	e.cosign(t, "sign", "--key", "cosign.key", "--tlog-upload=false", "-y", repo+"@"+digest).must(t)
	byCI, _ := pushRandomImage(t, repo)
	e.trustcache(t, "sign", "--key", "ci.key", byCI).must(t)
	unsigned, _ := pushRandomImage(t, repo)

	r := e.trustcache(t, "verify", "--policy", policy, "--format", "json", signed).must(t)
	res := parseVerify(t, r.stdout)
	if len(res) != 1 || !res[0].Trusted || res[0].Digest != digest || len(res[0].Signers) != 1 || res[0].Signers[0].Builder != "cosigner" {
		t.Errorf("verify of a cosign-signed ref = %+v; want trusted by cosigner at %s", res, digest)
	}

	// ci is a builder of the policy but not allowed for this repository;
	// the unsigned one has no signature at all. Exit 3: untrusted.
	r = e.trustcache(t, "verify", "--policy", policy, "--format", "json", signed, byCI, unsigned).wantCode(t, 3)
	res = parseVerify(t, r.stdout)
	if len(res) != 3 || !res[0].Trusted || res[1].Trusted || res[2].Trusted {
		t.Fatalf("verify = %+v; want trusted, untrusted, untrusted", res)
	}
	if why := strings.Join(res[1].Reasons, ";"); !strings.Contains(why, "builder ci, which is not allowed") {
		t.Errorf("reasons for a builder of another scope = %q", why)
	}
	if why := strings.Join(res[2].Reasons, ";"); !strings.Contains(why, "no signatures found") {
		t.Errorf("reasons for an unsigned ref = %q", why)
	}

	// Text output names the verdict and the signer.
	r = e.trustcache(t, "verify", "--policy", policy, signed).must(t)
	if !strings.Contains(r.stdout, signed+": trusted") || !strings.Contains(r.stdout, "signer:  cosigner") {
		t.Errorf("text output:\n%s", r.stdout)
	}
}

// TestVerifyExitCodes: untrusted (3), inconclusive (4: nothing listens),
// missing (5) and configuration errors (2) are told apart.
func TestVerifyExitCodes(t *testing.T) {
	e := trustEnv(t)
	e.genKey(t, "ci")
	policy := e.writePolicy(t, "policy.yaml", []builder{{"ci", []string{"ci.pub"}}},
		[]scope{{repos: []string{"**"}, builders: []string{"ci"}}})
	ref, _ := pushRandomImage(t, uniqueRepo(t))
	e.trustcache(t, "verify", "--policy", policy, ref).wantCode(t, 3)
	e.trustcache(t, "verify", "--policy", policy, "127.0.0.1:9/e2e/nothing:here").wantCode(t, 4)
	// A tag nothing was pushed to (a new branch's first run): missing (5),
	// told apart from untrusted, on the real registry.
	r := e.trustcache(t, "verify", "--trust-policy", policy, uniqueRepo(t)+":never-pushed").wantCode(t, 5)
	if !strings.Contains(r.stdout, ": missing\n") {
		t.Errorf("verify of a tag never pushed:\n%s\nwant verdict missing", r.stdout)
	}
	e.trustcache(t, "verify", "--policy", "no-such-policy.yaml", ref).wantCode(t, 2)
	bad := e.writePolicy(t, "bad.yaml", []builder{{"ci", []string{"ci.pub"}}},
		[]scope{{repos: []string{"**"}, builders: []string{"nobody"}}})
	r = e.trustcache(t, "policy", "lint", bad).wantCode(t, 2)
	if !strings.Contains(r.stderr, "bad.yaml:") || !strings.Contains(r.stderr, "nobody") {
		t.Errorf("policy lint of an unknown builder: %q", r.stderr)
	}
}
