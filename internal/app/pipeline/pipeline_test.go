package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
	"github.com/docker-trustcache/docker-trustcache/verify/provenance"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// fixture is a registry with a cache signed by the policy's builder ci
// and an unsigned one, and the policy.
type fixture struct {
	reg      *testreg.Registry
	ci       signature.Signer
	policy   *trustpolicy.Policy
	good     string // REPO:TAG of the signed cache
	goodD    v1.Hash
	unsigned string // REPO:TAG of the unsigned cache
}

// newFixture starts the registry and writes the policy: builder ci
// trusted for team/*, with extra lines for the scope.
func newFixture(t testing.TB, extra string) *fixture {
	t.Helper()
	f := &fixture{reg: testreg.New(t)}
	key := testreg.Key(t)
	f.ci = signature.Signer{Key: key, Builder: "ci"}
	pub, err := keys.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	text := "version: 1\nbuilders:\n  - name: ci\n    key: |\n      " + strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n      ") +
		"\nscopes:\n  - repositories: [\"" + f.reg.Host + "/team/*\"]\n    builders: [ci]\n" + extra
	if f.policy, err = trustpolicy.Parse(filepath.Join(t.TempDir(), "policy.yaml"), []byte(text)); err != nil {
		t.Fatalf("policy: %v\n%s", err, text)
	}
	repo := f.reg.Repo(t, "team/cache")
	f.good, f.unsigned = repo.Name()+":main", repo.Name()+":unsigned"
	f.goodD = testreg.PushRandom(t, repo.Tag("main"), 64, 1)
	testreg.PushRandom(t, repo.Tag("unsigned"), 64, 1)
	if _, err := f.ci.Sign(context.Background(), repo, f.goodD, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func registryCache(t testing.TB, ref string) cachespec.Spec {
	t.Helper()
	spec, err := cachespec.Parse("type=registry,ref=" + ref)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// registrySigner signs in the registry with a key, as the plugin's
// signer does, without the ledger or the heads.
type registrySigner struct {
	s      signature.Signer
	mu     sync.Mutex
	tagged []string // REPO@DIGEST TAG signed
}

func (rs *registrySigner) Sign(ctx context.Context, e Export, tags []string, ann map[string]string) error {
	for _, tag := range tags {
		a := maps.Clone(ann)
		if a == nil {
			a = map[string]string{}
		}
		if tag != "" {
			a[signature.AnnotationTag] = tag
		}
		if _, _, err := rs.s.Attach(ctx, signature.FormatLegacy, e.Repo, e.Digest, a); err != nil {
			return err
		}
		rs.mu.Lock()
		rs.tagged = append(rs.tagged, e.Reference()+" "+tag)
		rs.mu.Unlock()
	}
	return nil
}

func (rs *registrySigner) Attest(ctx context.Context, st provenance.Statement, subjects []Export) ([]Signed, error) {
	payload, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	bundle, err := signature.NewBundle(payload, rs.s.Key)
	if err != nil {
		return nil, err
	}
	var out []Signed
	for _, e := range subjects {
		if _, err := signature.AppendBundle(ctx, e.Repo, e.Digest, bundle, signature.AppendOptions{PredicateType: provenance.PredicateType}); err != nil {
			return out, err
		}
		out = append(out, Signed{Reference: e.Reference(), Kind: e.Kind})
	}
	return out, nil
}

// endpointRef matches a reference to the verified content endpoint.
var endpointRef = regexp.MustCompile(`^127\.0\.0\.1:\d+/[0-9a-f]{32}/\d+@sha256:[0-9a-f]{64}$`)

// TestRunBuild: a signing build of one target imports its signed cache
// through the verified content endpoint (its credential in buildx's
// environment) and runs without the unsigned one; what buildx reported it
// exported is signed by that digest, under its tag, with the provenance
// record attached; the report says all of it, as JSON and on stderr.
func TestRunBuild(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	dir := t.TempDir()
	out := f.reg.Repo(t, "team/out")
	var got Invocation
	var built v1.Hash
	buildx := func(ctx context.Context, inv Invocation) error {
		got = inv
		built = testreg.PushRandom(t, out.Tag("main"), 64, 1)
		md := `{"cache.manifest":{"digest":"` + built.String() + `"}}`
		return os.WriteFile(inv.MetadataFile, []byte(md), 0o600)
	}
	rs := &registrySigner{s: f.ci}
	var stderr bytes.Buffer
	pl, err := New(Options{
		Command:         "build",
		Trust:           buildargs.Options{Sign: true, Report: filepath.Join(dir, "report.json"), SignAnnotations: map[string]string{"team": "a"}},
		Version:         "test",
		Getenv:          envOf(map[string]string{"TRUSTCACHE_SOURCE_COMMIT": "abc"}),
		DockerConfigDir: t.TempDir(), // no builders: the docker driver
		Stderr:          &stderr,
		Buildx:          buildx,
		LoadSigner:      func(*trustpolicy.Policy, *verify.Verifier) (Signer, error) { return rs, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	target := Target{
		CacheFrom: []cachespec.Spec{registryCache(t, f.good), registryCache(t, f.unsigned)},
		CacheTo:   []cachespec.Spec{registryCache(t, out.Name()+":main")},
	}
	if err := pl.Run(context.Background(), f.policy, verify.New(f.policy), []Target{target}); err != nil {
		t.Fatalf("Run = %v\n%s", err, stderr.String())
	}
	if len(got.Pass) != 1 || len(got.Pass[0]) != 1 || !endpointRef.MatchString(got.Pass[0][0].Ref()) {
		t.Errorf("buildx passed %+v; want the signed cache alone, through the endpoint", got.Pass)
	}
	if len(got.Env) != 1 || !strings.HasPrefix(got.Env[0], "DOCKER_AUTH_CONFIG=") || got.MetadataFile == "" {
		t.Errorf("buildx env %q, metadata file %q; want the endpoint's credential and a metadata file", got.Env, got.MetadataFile)
	}
	exported := out.Name() + "@" + built.String()
	if diff := cmp.Diff([]string{exported + " main"}, rs.tagged); diff != "" {
		t.Errorf("signed (-want +got):\n%s", diff)
	}
	var rep Report
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(data, &rep) != nil {
		t.Fatalf("report: %v %s", err, data)
	}
	var actions []decision.Action
	for _, c := range rep.Caches {
		actions = append(actions, c.Action)
	}
	want := []Signed{{Reference: exported, Kind: "cache"}}
	if diff := cmp.Diff([]decision.Action{decision.Used, decision.Dropped}, actions); diff != "" || !rep.Built || rep.Caches[0].Guarantee != GuaranteeVerifiedBytes {
		t.Errorf("report caches (-want +got):\n%s built %v, guarantee %q", diff, rep.Built, rep.Caches[0].Guarantee)
	}
	if !cmp.Equal(want, rep.Signed) || !cmp.Equal(want, rep.Attested) || rep.Provenance == nil || rep.Provenance.Predicate.Source.Commit != "abc" {
		t.Errorf("report signed %v, attested %v, provenance %+v; want %v signed and attested, the commit recorded", rep.Signed, rep.Attested, rep.Provenance, want)
	}
	res, err := verify.New(f.policy).Verify(context.Background(), exported)
	if err != nil || !res.Trusted {
		t.Errorf("Verify(%s) = %+v, %v; want trusted", exported, res, err)
	}
	for _, w := range []string{"dropped cache type=registry,ref=" + f.unsigned, "trustcache: summary\n", "(verified bytes)", "signed   " + exported + " (cache)", "attested " + exported} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
		}
	}
}

// TestRunBake: a cache two targets import is verified once and passed to
// both; on a builder that cannot reach this host's loopback it is pinned
// by digest, with a warning, and the report names each target.
func TestRunBake(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	config := t.TempDir()
	writeBuilder(t, filepath.Join(config, "buildx"), "k8s", "kubernetes", "kubernetes:///buildkit", nil, true)
	var got Invocation
	var stderr bytes.Buffer
	pl, err := New(Options{
		Command: "bake", DockerConfigDir: config, Stderr: &stderr,
		Buildx: func(ctx context.Context, inv Invocation) error { got = inv; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	targets := []Target{
		{Name: "a", CacheFrom: []cachespec.Spec{registryCache(t, f.good)}},
		{Name: "b", CacheFrom: []cachespec.Spec{registryCache(t, f.unsigned), registryCache(t, f.good)}},
	}
	f.reg.Reset()
	if err := pl.Run(context.Background(), f.policy, verify.New(f.policy), targets); err != nil {
		t.Fatalf("Run = %v\n%s", err, stderr.String())
	}
	pinned := registryCache(t, strings.TrimSuffix(f.good, ":main")+"@"+f.goodD.String())
	want := []map[int]cachespec.Spec{{0: pinned}, {1: pinned}}
	if diff := cmp.Diff(want, got.Pass, cmp.Comparer(func(a, b cachespec.Spec) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("passed (-want +got):\n%s", diff)
	}
	if n := f.reg.Count("GET", "/team/cache/manifests/main") + f.reg.Count("HEAD", "/team/cache/manifests/main"); n != 1 {
		t.Logf("requests: %q", f.reg.Requests())
		t.Errorf("the shared cache's tag was read %d times; want once", n)
	}
	for _, w := range []string{"WARNING: trustcache: builder \"k8s\" cannot reach the verified content endpoint", "dropped cache type=registry,ref=" + f.unsigned + " of target b", "used     target b: type=registry,ref=" + f.good, "(digest pin only)"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
		}
	}
}

// TestRunStopped: a run the policy stops (onUntrusted: fail; a signing
// run importing an audited cache; requireVerifiedBytes on a builder
// without the endpoint) never runs buildx, returns a *StoppedError with
// its status, and says so in the summary and the report.
func TestRunStopped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, extra, builder string
		sign                 bool
		cache                func(*fixture) string
		want                 string
	}{
		{"onUntrusted fail", "    onUntrusted: fail\n", "", false, func(f *fixture) string { return f.unsigned }, "trustcache: not building: cache type=registry,ref=%s is untrusted (policy onUntrusted: fail)"},
		{"signing an audited import", "    level: audit\n", "", true, func(f *fixture) string { return f.unsigned }, "trustcache: not building: not signing a build that imports caches not verified trusted: type=registry,ref=%s"},
		{"requireVerifiedBytes", "requireVerifiedBytes: true\n", "kubernetes", false, func(f *fixture) string { return f.good }, "trustcache: not building: builder \"k8s\" cannot reach the verified content endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.extra)
			config, dir := t.TempDir(), t.TempDir()
			if tc.builder != "" {
				writeBuilder(t, filepath.Join(config, "buildx"), "k8s", tc.builder, "kubernetes:///buildkit", nil, true)
			}
			var stderr bytes.Buffer
			ran := false
			pl, err := New(Options{
				Trust:           buildargs.Options{Sign: tc.sign, Report: filepath.Join(dir, "report.json")},
				DockerConfigDir: config, Stderr: &stderr,
				Buildx:     func(context.Context, Invocation) error { ran = true; return nil },
				LoadSigner: func(*trustpolicy.Policy, *verify.Verifier) (Signer, error) { return &registrySigner{s: f.ci}, nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			target := Target{CacheFrom: []cachespec.Spec{registryCache(t, tc.cache(f))}, Pushes: true}
			err = pl.Run(context.Background(), f.policy, verify.New(f.policy), []Target{target})
			var stopped *StoppedError
			want := strings.ReplaceAll(tc.want, "%s", tc.cache(f))
			if !errors.As(err, &stopped) || stopped.Status != decision.Untrusted || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Run = %v; want a *StoppedError (untrusted) %q", err, want)
			}
			if ran {
				t.Errorf("buildx ran")
			}
			if !strings.Contains(stderr.String(), "trustcache: summary: the build did not run") {
				t.Errorf("stderr lacks the summary:\n%s", stderr.String())
			}
			var rep Report
			if data, err := os.ReadFile(filepath.Join(dir, "report.json")); err != nil || json.Unmarshal(data, &rep) != nil || rep.Built || len(rep.Caches) != 1 {
				t.Errorf("report: %v %+v", err, rep)
			}
		})
	}
}

// TestNewRefusesContradictions: signing options without --sign, and an
// annotation trustcache sets itself, are usage errors before anything
// runs.
func TestNewRefusesContradictions(t *testing.T) {
	t.Parallel()
	buildx := func(context.Context, Invocation) error { return nil }
	for _, trust := range []buildargs.Options{
		{Key: "ci.key"},
		{Keyless: true},
		{IdentityToken: "x"},
		{SigningConfig: "x"},
		{SignAnnotations: map[string]string{"team": "a"}},
		{Sign: true, SignAnnotations: map[string]string{signature.AnnotationBuilder: "x"}},
	} {
		_, err := New(Options{Trust: trust, Buildx: buildx, LoadSigner: func(*trustpolicy.Policy, *verify.Verifier) (Signer, error) { return nil, nil }})
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("New(%+v) = %v; want a *UsageError", trust, err)
		}
	}
}

// TestPlanExports: what --sign refuses before the build, and what a
// report-only run leaves out.
func TestPlanExports(t *testing.T) {
	t.Parallel()
	two := []cachespec.Spec{registryCache(t, "r.example/a:c"), registryCache(t, "r.example/b:c")}
	for _, tc := range []struct {
		name    string
		targets []Target
		signing bool
		want    string // the error; "" for none
	}{
		{"build exports nothing", []Target{{}}, true, "this build exports nothing to sign"},
		{"bake exports nothing", []Target{{Name: "a"}, {Name: "b"}}, true, "this bake exports nothing to sign"},
		{"build with two caches", []Target{{CacheTo: two, Pushes: true}}, true, "one registry --cache-to per build"},
		{"bake target with two caches", []Target{{Name: "app", CacheTo: two}}, true, "target app has 2"},
		{"report only: two caches left out", []Target{{CacheTo: two}}, false, ""},
	} {
		plan, err := planExports(tc.targets, tc.signing)
		var ue *UsageError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: planExports = %v", tc.name, err)
		case tc.want == "" && !plan.empty():
			t.Errorf("%s: planned %+v; want nothing", tc.name, plan.targets)
		case tc.want != "" && (!errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: planExports = %v; want a *UsageError containing %q", tc.name, err, tc.want)
		}
	}
}
