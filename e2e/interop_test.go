//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// The interop matrix: every signer × every verifier × both registry kinds,
// each cell a subtest. Signers: docker trustcache sign in both formats,
// cosign v2.6.5 (its default .sig format and --new-bundle-format) and
// cosign v3.1.3 (its default, a bundle). Verifiers: docker trustcache
// verify, cosign v2.6.5 verify and cosign v3.1.3 verify, all offline (key,
// no tlog, a trusted root without services) under the dead-proxy guard.
// Registries: distribution v3 (cfg.registry, no referrers API: bundles live
// in the sha256-<hex> referrers tag) and go-containerregistry's registry
// with the referrers API, served in this process on 127.0.0.1.
//
// Keys: one made by `docker trustcache keys generate` (builder "tc") and
// one by `cosign generate-key-pair` (builder "cosigner"). Which one a cell
// signs with alternates over signers and registries, so that every signer
// signs with both kinds of key and every verifier reads both.
//
// Flags each cosign needs offline, found here:
//   - cosign v2 sign, .sig format:  --key K --tlog-upload=false -y
//   - cosign v2 sign, bundle:       --key K --tlog-upload=false --new-bundle-format -y
//     (no --trusted-root or signing config needed to sign)
//   - cosign v3 sign:               signing-config create --out sc.json (once), then
//     --key K --signing-config sc.json -y (--tlog-upload=false is refused)
//   - cosign v2 and v3 verify:      --key K.pub --insecure-ignore-tlog=true --trusted-root FILE
//     cosign v2.6.5 verify switches to the bundle format by itself when the
//     digest has bundle referrers (no --new-bundle-format needed); cosign
//     v3.1.3 verify falls back to the .sig format by itself when it has none
//     (its --new-bundle-format, default true, is deprecated and hidden;
//     --new-bundle-format=false forces the .sig format, checked too).

// startReferrersRegistry starts go-containerregistry's in-memory registry
// with the referrers API (internal/testreg), on 127.0.0.1 (a random port);
// its request log tells the tests that readers used the API.
func startReferrersRegistry(t *testing.T) *testreg.Registry {
	t.Helper()
	r := testreg.New(t, testreg.Referrers(true))
	if !strings.HasPrefix(r.Host, "127.0.0.1:") {
		t.Fatalf("in-process registry listens on %s; want 127.0.0.1", r.Host)
	}
	return r
}

// interopRegistry is one registry kind of the matrix.
type interopRegistry struct {
	name string
	host string
	api  *testreg.Registry // the registry with the referrers API; nil: no API
}

// interopKey is one key pair in the env's directory: BASE.key, BASE.pub,
// listed in the policies as builder.
type interopKey struct {
	base    string // file base name
	builder string // builder name in the policies
	madeBy  string // for the log
}

func (k interopKey) priv() string { return k.base + ".key" }
func (k interopKey) pub() string  { return k.base + ".pub" }

// interopSigner is one signer of the matrix.
type interopSigner struct {
	name   string // tool and mode, e.g. "cosign v2.6.5 --new-bundle-format"
	format string // "legacy" (.sig tag, simple signing) or "bundle" (sigstore bundle v0.3 referrer)
	// unbound: the signer's bundle names no repository (cosign's), so
	// trustcache counts it only under acceptUnboundBundles.
	unbound bool
	sign    func(t *testing.T, e *env, k interopKey, ref, pinned string)
}

// interopVerifier is one verifier of the matrix; verify fails t unless the
// cell verifies, and checks that a key that did not sign is refused.
type interopVerifier struct {
	name   string
	verify func(t *testing.T, c *interopCell)
}

// interopCell is what a verifier needs to know about one signed digest.
type interopCell struct {
	e              *env
	reg            interopRegistry
	signer         interopSigner
	key, otherKey  interopKey
	ref, pinned    string // tag reference, repo@digest
	digest         string
	policyBound    string // policy without acceptUnboundBundles
	policyUnbound  string // the same with acceptUnboundBundles: true
	policyOtherKey string // only the builder of the key that did not sign is allowed
}

// interopOutcome is one line of the printed matrix.
type interopOutcome struct {
	registry, signer, format, key, verifier, outcome string
}

// cannot lists the cells a tool cannot do by design, with the reason; such
// a cell asserts that the tool refuses. Empty: every cell must verify (as
// of cosign v2.6.5 and v3.1.3 every one does).
var cannot = map[[2]string]string{}

func TestInterop(t *testing.T) {
	e := trustEnv(t)
	// Every command of e (the plugin, crane; cosign has it anyway) runs
	// under the dead-proxy guard: a request that is not for loopback fails.
	for k, v := range deadProxy {
		e.setenv(k, v)
	}
	e.setenv("COSIGN_PASSWORD", keyPassword)

	e.genKey(t, "tc")
	e.cosign(t, "generate-key-pair").must(t) // cosign.key, cosign.pub
	keyTC := interopKey{base: "tc", builder: "tc", madeBy: "trustcache keys generate"}
	keyCosign := interopKey{base: "cosign", builder: "cosigner", madeBy: "cosign generate-key-pair"}
	e.cosign3(t, "signing-config", "create", "--out", "sc.json").must(t)

	api := startReferrersRegistry(t)
	registries := []interopRegistry{
		{name: "distribution v3 (no referrers API)", host: cfg.registry},
		{name: "ggcr registry (referrers API)", host: api.Host, api: api},
	}

	builders := []builder{{"tc", []string{keyTC.pub()}}, {"cosigner", []string{keyCosign.pub()}}}
	patterns := []string{cfg.registry + "/e2e/**", api.Host + "/e2e/**"}
	policyBound := e.writePolicy(t, "interop-bound.yaml", builders,
		[]scope{{repos: patterns, builders: []string{"tc", "cosigner"}}})
	policyUnbound := e.writePolicy(t, "interop-unbound.yaml", builders,
		[]scope{{repos: patterns, builders: []string{"tc", "cosigner"}, extra: "    acceptUnboundBundles: true"}})
	policyOnly := map[string]string{
		"tc": e.writePolicy(t, "interop-only-tc.yaml", builders,
			[]scope{{repos: patterns, builders: []string{"tc"}, extra: "    acceptUnboundBundles: true"}}),
		"cosigner": e.writePolicy(t, "interop-only-cosigner.yaml", builders,
			[]scope{{repos: patterns, builders: []string{"cosigner"}, extra: "    acceptUnboundBundles: true"}}),
	}

	signers := []interopSigner{{
		name: "trustcache sign --signature-format legacy", format: "legacy",
		sign: func(t *testing.T, e *env, k interopKey, ref, pinned string) {
			r := e.trustcache(t, "sign", "--key", k.priv(), "--signature-format", "legacy", ref).must(t)
			if strings.TrimSpace(r.stdout) != pinned {
				t.Errorf("sign printed %q; want %q", r.stdout, pinned)
			}
		},
	}, {
		name: "trustcache sign --signature-format bundle", format: "bundle",
		sign: func(t *testing.T, e *env, k interopKey, ref, pinned string) {
			r := e.trustcache(t, "sign", "--key", k.priv(), "--signature-format", "bundle", ref).must(t)
			if strings.TrimSpace(r.stdout) != pinned {
				t.Errorf("sign printed %q; want %q", r.stdout, pinned)
			}
		},
	}, {
		name: "cosign v2.6.5 sign (default)", format: "legacy",
		sign: func(t *testing.T, e *env, k interopKey, ref, pinned string) {
			e.cosign(t, "sign", "--key", k.priv(), "--tlog-upload=false", "-y", pinned).must(t)
		},
	}, {
		name: "cosign v2.6.5 sign --new-bundle-format", format: "bundle", unbound: true,
		sign: func(t *testing.T, e *env, k interopKey, ref, pinned string) {
			e.cosign(t, "sign", "--key", k.priv(), "--tlog-upload=false", "--new-bundle-format", "-y", pinned).must(t)
		},
	}, {
		name: "cosign v3.1.3 sign (default)", format: "bundle", unbound: true,
		sign: func(t *testing.T, e *env, k interopKey, ref, pinned string) {
			e.cosign3(t, "sign", "--key", k.priv(), "-y", "--signing-config", "sc.json", pinned).must(t)
		},
	}}

	verifiers := []interopVerifier{
		{name: "trustcache verify", verify: verifyWithTrustcache},
		{name: "cosign v2.6.5 verify", verify: func(t *testing.T, c *interopCell) { verifyWithCosign(t, c, c.e.cosign, false) }},
		{name: "cosign v3.1.3 verify", verify: func(t *testing.T, c *interopCell) { verifyWithCosign(t, c, c.e.cosign3, true) }},
	}

	var outcomes []interopOutcome
	for ri, reg := range registries {
		t.Run(reg.name, func(t *testing.T) {
			for si, sg := range signers {
				t.Run(sg.name, func(t *testing.T) {
					// Alternate the keys over signers and registries.
					key, other := keyTC, keyCosign
					if (ri+si)%2 == 1 {
						key, other = keyCosign, keyTC
					}
					repo := strings.Replace(uniqueRepo(t), cfg.registry, reg.host, 1)
					ref, digest := pushRandomImage(t, repo)
					pinned := repo + "@" + digest
					sg.sign(t, e, key, ref, pinned)
					if t.Failed() {
						for _, v := range verifiers {
							outcomes = append(outcomes, interopOutcome{reg.name, sg.name, sg.format, key.madeBy, v.name, "FAILED (signing)"})
						}
						return
					}
					checkStorage(t, e, reg, sg.format, repo, digest)
					c := &interopCell{
						e: e, reg: reg, signer: sg, key: key, otherKey: other,
						ref: ref, pinned: pinned, digest: digest,
						policyBound: policyBound, policyUnbound: policyUnbound, policyOtherKey: policyOnly[other.builder],
					}
					for _, v := range verifiers {
						why, impossible := cannot[[2]string{sg.name, v.name}]
						ok := t.Run(v.name, func(t *testing.T) {
							if impossible {
								assertRefused(t, c, v, why)
								return
							}
							v.verify(t, c)
						})
						outcome := "✓ verified"
						switch {
						case !ok:
							outcome = "FAILED"
						case impossible:
							outcome = "not possible by design (asserted): " + why
						}
						t.Logf("cell: %s | signer %s (%s, key from %s) | verifier %s | %s",
							reg.name, sg.name, sg.format, key.madeBy, v.name, outcome)
						outcomes = append(outcomes, interopOutcome{reg.name, sg.name, sg.format, key.madeBy, v.name, outcome})
					}
				})
			}
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "interop matrix (%d cells):\n", len(outcomes))
	for _, o := range outcomes {
		fmt.Fprintf(&b, "  %-36s | %-43s | %-6s | key: %-24s | %-22s | %s\n",
			o.registry, o.signer, o.format, o.key, o.verifier, o.outcome)
	}
	t.Log(b.String())
}

// checkStorage checks that the signature landed where the registry kind
// says: the .sig tag for the legacy format; for bundles, the referrers tag
// sha256-<hex> on a registry without the referrers API, and the referrers
// API (and no referrers tag) on one with it.
func checkStorage(t *testing.T, e *env, reg interopRegistry, format, repo, digest string) {
	t.Helper()
	hex := strings.TrimPrefix(digest, "sha256:")
	if format == "legacy" {
		e.crane(t, "manifest", repo+":sha256-"+hex+".sig").must(t)
		return
	}
	fallback := e.crane(t, "manifest", repo+":sha256-"+hex)
	if reg.api == nil {
		if fallback.code != 0 || !strings.Contains(fallback.stdout, `"manifests"`) {
			t.Errorf("no referrers index under the fallback tag on %s: %v", reg.name, fallback)
		}
		return
	}
	if fallback.code == 0 {
		t.Errorf("a referrers tag was written on a registry with the referrers API:\n%s", fallback.stdout)
	}
	name := strings.TrimPrefix(repo, reg.host+"/")
	resp, err := http.Get("http://" + reg.host + "/v2/" + name + "/referrers/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var idx struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil || len(idx.Manifests) == 0 {
		t.Errorf("referrers API for %s: %d referrers (err %v); want the bundle", digest, len(idx.Manifests), err)
	}
}

// referrersUsed checks, for a bundle on the registry with the referrers
// API, that the verifier run in f asked the API.
func referrersUsed(t *testing.T, c *interopCell, f func()) {
	t.Helper()
	if c.reg.api == nil || c.signer.format != "bundle" {
		f()
		return
	}
	before := c.reg.api.Count(http.MethodGet, "/referrers/")
	f()
	if c.reg.api.Count(http.MethodGet, "/referrers/") == before {
		t.Errorf("verifier did not use the referrers API")
	}
}

// verifyWithTrustcache: trusted (by the signing key's builder, at the
// digest) under a policy allowing both keys; for a bundle that names no
// repository (cosign's) only with acceptUnboundBundles, untrusted without
// it with a reason naming that option; untrusted when only the other key's
// builder is allowed.
func verifyWithTrustcache(t *testing.T, c *interopCell) {
	e := c.e
	verify := func(policy string, code int) verifyJSON {
		t.Helper()
		var r result
		referrersUsed(t, c, func() {
			r = e.trustcache(t, "verify", "--no-ledger", "--policy", policy, "--format", "json", c.ref).wantCode(t, code)
		})
		res := parseVerify(t, r.stdout)
		if len(res) != 1 {
			t.Fatalf("verify printed %d results; want 1:\n%s", len(res), r.stdout)
		}
		if res[0].Digest != c.digest {
			t.Errorf("verify digest = %s; want %s", res[0].Digest, c.digest)
		}
		return res[0]
	}
	trusted := func(v verifyJSON) {
		t.Helper()
		if !v.Trusted || len(v.Signers) != 1 || v.Signers[0].Builder != c.key.builder {
			t.Errorf("verify = %+v; want trusted, signed by builder %s", v, c.key.builder)
		}
	}

	trusted(verify(c.policyUnbound, 0))
	if c.signer.unbound {
		v := verify(c.policyBound, 3)
		if v.Trusted || !strings.Contains(strings.Join(v.Reasons, "; "), "acceptUnboundBundles") {
			t.Errorf("verify of a bundle that names no repository without acceptUnboundBundles = %+v; want untrusted, reason naming acceptUnboundBundles", v)
		}
	} else {
		trusted(verify(c.policyBound, 0))
	}
	if v := verify(c.policyOtherKey, 3); v.Trusted || !strings.Contains(strings.Join(v.Reasons, "; "), "builder "+c.key.builder+", which is not allowed") {
		t.Errorf("verify with only builder %s allowed = %+v; want untrusted: builder %s is not allowed", c.otherKey.builder, v, c.key.builder)
	}
}

// verifyWithCosign: `cosign verify --key` with the signing key passes and
// prints a payload naming the digest; with the other key it fails. For the
// legacy format, cosign v3 is also run with --new-bundle-format=false.
func verifyWithCosign(t *testing.T, c *interopCell, cosign func(testing.TB, ...string) result, v3 bool) {
	var r result
	referrersUsed(t, c, func() {
		r = cosign(t, cosignVerifyArgs(c.key.pub(), c.pinned)...).must(t)
	})
	if !strings.Contains(r.stdout, strings.TrimPrefix(c.digest, "sha256:")) {
		t.Errorf("cosign verify printed no payload naming %s:\n%s", c.digest, r.stdout)
	}
	if v3 && c.signer.format == "legacy" {
		args := append([]string{"verify", "--new-bundle-format=false"}, cosignVerifyArgs(c.key.pub(), c.pinned)[1:]...)
		cosign(t, args...).must(t)
	}
	// The check is real: the key that did not sign is refused for the
	// signature ("no matching signatures", exit 12; for a bundle "no
	// matching attestations", exit 1), not for anything else.
	if r := cosign(t, cosignVerifyArgs(c.otherKey.pub(), c.pinned)...); r.code == 0 || !strings.Contains(r.stderr, "no matching") {
		t.Errorf("cosign verify with a key that did not sign: want a refusal for no matching signature; got %v", r)
	}
}

// assertRefused checks that a verifier the matrix lists as unable to read
// a format refuses it (no false ✓).
func assertRefused(t *testing.T, c *interopCell, v interopVerifier, why string) {
	t.Helper()
	var r result
	switch v.name {
	case "cosign v2.6.5 verify":
		r = c.e.cosign(t, cosignVerifyArgs(c.key.pub(), c.pinned)...)
	case "cosign v3.1.3 verify":
		r = c.e.cosign3(t, cosignVerifyArgs(c.key.pub(), c.pinned)...)
	default:
		r = c.e.trustcache(t, "verify", "--no-ledger", "--policy", c.policyUnbound, c.ref)
	}
	if r.code == 0 {
		t.Errorf("%s verified a cell listed as not possible (%s): remove it from cannot\n%v", v.name, why, r)
	}
}
