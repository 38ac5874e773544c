package plugin

// Attack tests for docs/SECURITY.md against docker trustcache build: a tag
// moved in the middle of a build, --cache-from values that try to smuggle a
// second ref, bad input that must build nothing, a signing build that must
// sign what it built and import only trusted caches.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// trustPolicy writes a policy allowing builder ci (ci.pub) for host/team/*.
func trustPolicy(t *testing.T, dir, host, extra string) {
	t.Helper()
	policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nscopes:\n  - repositories: [\"" + host + "/team/*\"]\n    builders: [ci]\n" + extra
	if err := os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBuildTagMovedDuringBuild: the registry moves the tag to the
// attacker's cache right after trustcache resolved it, before the
// signatures are read and long before BuildKit imports anything. The build
// is handed the verified digest, never the tag (the e2e test
// TestBuildTagMovedAfterVerification runs the same race against a real
// BuildKit).
func TestBuildTagMovedDuringBuild(t *testing.T) {
	dir := isolate(t)
	reg := testreg.New(t)
	var (
		mu    sync.Mutex
		moved bool
		evil  []byte // the attacker's manifest
		evilT string // and its media type
	)
	// The registry answers every request; the fault only acts after it.
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		reg.Handler.ServeHTTP(w, r)
		mu.Lock()
		defer mu.Unlock()
		if evil == nil || moved || !strings.HasSuffix(r.URL.Path, "/team/cache/manifests/main") {
			return true
		}
		// The tag was just resolved: move it, as a racing attacker would.
		moved = true
		put := httptest.NewRequest(http.MethodPut, "/v2/team/cache/manifests/main", strings.NewReader(string(evil)))
		put.Header.Set("Content-Type", evilT)
		rec := httptest.NewRecorder()
		reg.Handler.ServeHTTP(rec, put)
		if rec.Code != http.StatusCreated {
			panic("moving the tag: " + rec.Body.String())
		}
		return true
	})
	host := reg.Host

	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	cache := host + "/team/cache:main"
	good := pushRandom(t, cache)
	if res := run(t, "sign", "--key", "ci.key", cache); res.code != 0 {
		t.Fatal(res.stderr)
	}
	bad := pushRandom(t, host+"/team/cache:evil")
	evilRef, err := name.ParseReference(host + "/team/cache:evil")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(evilRef)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	evil, evilT = desc.Manifest, string(desc.MediaType)
	mu.Unlock()

	argsFile := fakeDocker(t, dir, 0)
	res := run(t, "build", "--no-ledger", "--cache-from", cache, ".")
	if res.code != 0 {
		t.Fatalf("build = %d %s", res.code, res.stderr)
	}
	want := []string{"buildx", "build", "--cache-from", "type=registry,ref=ENDPOINT@" + good.String(), "."}
	if diff := cmp.Diff(want, viaEndpoint(readArgs(t, argsFile))); diff != "" {
		t.Errorf("buildx argv (-want +got):\n%s", diff)
	}
	cacheRef, err := name.ParseReference(cache)
	if err != nil {
		t.Fatal(err)
	}
	now, err := remote.Head(cacheRef)
	if err != nil {
		t.Fatal(err)
	}
	if !moved || now.Digest != bad {
		t.Fatalf("the tag was not moved during the build (now %s, attacker's %s): the test proves nothing", now.Digest, bad)
	}
}

// TestBuildCacheFromSmuggling: a --cache-from value that names two refs.
// buildx keeps the last value of a repeated key (keys are case-insensitive),
// so that is the one verified, and the rewritten value holds only the
// pinned ref.
func TestBuildCacheFromSmuggling(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	good := host + "/team/cache:main"
	bad := host + "/team/cache:evil"
	dGood := pushRandom(t, good)
	pushRandom(t, bad)
	if res := run(t, "sign", "--key", "ci.key", good); res.code != 0 {
		t.Fatal(res.stderr)
	}
	pinned := "type=registry,ref=ENDPOINT@" + dGood.String()
	for _, tc := range []struct {
		cacheFrom string
		want      []string // the --cache-from values buildx gets
	}{
		{"type=registry,ref=" + good + ",ref=" + bad, nil},
		{"type=registry,ref=" + bad + ",REF=" + good, []string{pinned}},
		{"type=registry,ref=" + bad + `,"ref=` + good + `"`, []string{pinned}},
		{good + "," + bad, []string{pinned}},
	} {
		argsFile := fakeDocker(t, dir, 0)
		os.Remove(argsFile)
		res := run(t, "build", "--no-ledger", "--cache-from", tc.cacheFrom, ".")
		if res.code != 0 {
			t.Errorf("build --cache-from %q = %d %s", tc.cacheFrom, res.code, res.stderr)
			continue
		}
		var got []string
		args := viaEndpoint(readArgs(t, argsFile))
		for i, a := range args {
			if a == "--cache-from" && i+1 < len(args) {
				got = append(got, args[i+1])
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("build --cache-from %q: buildx --cache-from values (-want +got):\n%s", tc.cacheFrom, diff)
		}
	}
}

// TestBuildBadInputBuildsNothing: bad trustcache flags stop the build
// before it starts.
func TestBuildBadInputBuildsNothing(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("version: 1\nbuilders: []\n"), 0o644)
	argsFile := fakeDocker(t, dir, 0)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"build", "--sign", "--push", "--key", "ci.key", "--sign-annotation", "builder=me", "."}, "set by docker trustcache"},
		{[]string{"build", "--sign", "--push", "--key", "ci.key", "--sign-annotation", "created=now", "."}, "set by docker trustcache"},
		{[]string{"build", "--sign", "--push", "--key", "ci.key", "--sign-annotation", "=x", "."}, "key=value"},
		{[]string{"build", "--sign", "--push", "--key", "ci.key", "--signature-format", "xml", "."}, "legacy or bundle"},
		{[]string{"build", "--sign", "--cache-to", "type=registry,ref=Not A Ref!", "--key", "ci.key", "."}, "--cache-to"},
		{[]string{"build", "--trust-policy", "bad.yaml", "--cache-from", host + "/team/cache:main", "."}, "bad.yaml"},
		{[]string{"build", "--cache-from", "type=registry,ref=a,\"ref=b", "."}, "cache-from"},
	} {
		res := run(t, tc.args...)
		if res.code != ExitUsage || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("%v = %d %q; want %d containing %q", tc.args, res.code, res.stderr, ExitUsage, tc.msg)
		}
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Errorf("docker buildx build ran despite a usage error")
	}
}

// TestBuildUnsignedCacheTypes: cache types registry signatures cannot
// cover are dropped unless the policy's allowUnsignedTypes lists them.
func TestBuildUnsignedCacheTypes(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "allowUnsignedTypes: [local]\n")
	argsFile := fakeDocker(t, dir, 0)
	res := run(t, "build", "--no-ledger", "--cache-from", "type=local,src=/tmp/c", "--cache-from", "type=gha,scope=x",
		"--cache-from", "type=s3,bucket=b", "--cache-from", "type=azblob,name=n", ".")
	if res.code != 0 {
		t.Fatalf("build = %d %s", res.code, res.stderr)
	}
	want := []string{"buildx", "build", "--cache-from", "type=local,src=/tmp/c", "."}
	if diff := cmp.Diff(want, readArgs(t, argsFile)); diff != "" {
		t.Errorf("buildx argv (-want +got):\n%s", diff)
	}
	for _, typ := range []string{"gha", "s3", "azblob"} {
		if !strings.Contains(res.stderr, "dropped cache type="+typ) {
			t.Errorf("no warning for the dropped type=%s cache:\n%s", typ, res.stderr)
		}
	}
}

// TestBuildSignsReportedDigest: an attacker races the trusted builder's
// push and moves the cache tag to their own cache between the export and
// the signing. --sign signs the digest the build reported (buildx's
// metadata file), never the tag re-resolved; a build that reports no
// digest signs nothing.
func TestBuildSignsReportedDigest(t *testing.T) {
	dir := isolate(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "")
	cache := host + "/team/cache:main"
	built := pushRandom(t, cache) // what the build exported
	evil := pushRandom(t, cache)  // the tag, moved by the attacker since
	repo, _ := name.NewRepository(host + "/team/cache")

	// The docker CLI the plugin runs: writes the metadata buildx would.
	script := filepath.Join(dir, "docker")
	writeDocker := func(metadata string) {
		body := "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = --metadata-file ]; then f=\"$2\"; fi; shift; done\n" +
			"printf '%s' '" + metadata + "' > \"$f\"\n"
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", script)
	args := []string{"build", "--no-ledger", "--sign", "--key", "ci.key", "--trust-report", "report.json",
		"--cache-to", "type=registry,ref=" + cache + ",mode=max", "."}

	writeDocker(`{"buildx.build.ref":"x"}`)
	res := run(t, args...)
	if res.code == 0 || !strings.Contains(res.stderr, "not signing by tag") {
		t.Errorf("build --sign without a reported digest = %d %q; want a failure saying it does not sign by tag", res.code, res.stderr)
	}
	for _, d := range []v1.Hash{built, evil} {
		if _, err := remote.Head(signature.SigTag(repo, d)); err == nil {
			t.Fatalf("a build that reported no digest signed %s", d)
		}
	}

	writeDocker(`{"cache.manifest":{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + built.String() + `","size":1}}`)
	res = run(t, args...)
	if res.code != 0 {
		t.Fatalf("build --sign = %d %s", res.code, res.stderr)
	}
	if _, err := remote.Head(signature.SigTag(repo, built)); err != nil {
		t.Errorf("the reported digest %s was not signed: %v", built, err)
	}
	if _, err := remote.Head(signature.SigTag(repo, evil)); err == nil {
		t.Errorf("the digest the tag was moved to (%s) was signed", evil)
	}
	// The tag moved to an unsigned digest: verify uses the tag's last
	// trusted digest, the one the build signed (docs/fallback.md).
	if res := run(t, "verify", cache); res.code != ExitFallback || !strings.Contains(res.stdout, "digest:  "+built.String()) {
		t.Errorf("verify of the moved tag = %d %s; want %d, the built digest", res.code, res.stdout, ExitFallback)
	}

	// With the ledger, the digest the build signed is recorded: this
	// host's next verification of it fetches no signature.
	pinned := repo.Name() + "@" + built.String()
	if res := run(t, append([]string{"build"}, args[2:]...)...); res.code != 0 {
		t.Fatalf("build --sign (ledger) = %d %s", res.code, res.stderr)
	}
	if res := run(t, "verify", pinned); res.code != 0 || !strings.Contains(res.stdout, "verified before on this host (ledger)") {
		t.Errorf("verify of the digest the build signed = %d %q; want it from the ledger", res.code, res.stdout)
	}
}

// TestBuildSignRefusesUnverifiedImports: a signing build must not import a
// cache that was not verified trusted (an audit scope's untrusted cache, a
// skip scope's, an unsigned type the policy allows) and then sign what it
// exported with the trusted key: every strict consumer would trust a cache
// built from the attacker's. The build does not start, nothing is signed,
// and the report says why.
func TestBuildSignRefusesUnverifiedImports(t *testing.T) {
	for _, tc := range []struct {
		name, cacheFrom, why string
	}{
		{"audit scope, unsigned cache", "type=registry,ref=HOST/audit/cache:main", "level audit"},
		{"skip scope", "type=registry,ref=HOST/skip/cache:main", "level skip"},
		{"unsigned type the policy allows", "type=local,src=/tmp/cache", "allows unsigned local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := isolate(t)
			host := newRegistry(t)
			run(t, "keys", "generate", "--name", "ci")
			policy := "version: 1\nbuilders:\n  - name: ci\n    key: ci.pub\nallowUnsignedTypes: [local]\nscopes:\n" +
				"  - repositories: [\"" + host + "/team/*\"]\n    builders: [ci]\n" +
				"  - repositories: [\"" + host + "/audit/*\"]\n    builders: [ci]\n    level: audit\n" +
				"  - repositories: [\"" + host + "/skip/*\"]\n    builders: [ci]\n    level: skip\n"
			if err := os.WriteFile(filepath.Join(dir, ".trustcache.yaml"), []byte(policy), 0o644); err != nil {
				t.Fatal(err)
			}
			pushRandom(t, host+"/audit/cache:main") // the attacker's, unsigned
			pushRandom(t, host+"/skip/cache:main")
			cache := host + "/team/cache:main"
			argsFile := fakeDocker(t, dir, 0)
			res := run(t, "build", "--no-ledger", "--sign", "--key", "ci.key", "--trust-report", "report.json",
				"--cache-from", strings.ReplaceAll(tc.cacheFrom, "HOST", host),
				"--cache-to", "type=registry,ref="+cache+",mode=max", ".")
			if res.code != ExitUntrusted {
				t.Errorf("build --sign importing an unverified cache = exit %d; want %d\n%s", res.code, ExitUntrusted, res.stderr)
			}
			if _, err := os.Stat(argsFile); err == nil {
				t.Errorf("the build ran: %v", readArgs(t, argsFile))
			}
			for _, w := range []string{"not signing", tc.why} {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
				}
			}
			var rep pipeline.Report
			if err := json.Unmarshal(mustRead(t, filepath.Join(dir, "report.json")), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Built || len(rep.Signed) != 0 || !strings.Contains(rep.NotSigned, tc.why) {
				t.Errorf("report: built %v, signed %v, notSigned %q; want not built, nothing signed, and why (%q)", rep.Built, rep.Signed, rep.NotSigned, tc.why)
			}
		})
	}
	// The control: a cache verified trusted does not stop a signing build.
	t.Run("trusted cache", func(t *testing.T) {
		dir := isolate(t)
		host := newRegistry(t)
		run(t, "keys", "generate", "--name", "ci")
		trustPolicy(t, dir, host, "")
		good := host + "/team/cache:main"
		pushRandom(t, good)
		if res := run(t, "sign", "--key", "ci.key", good); res.code != 0 {
			t.Fatal(res.stderr)
		}
		argsFile := fakeDocker(t, dir, 0)
		res := run(t, "build", "--no-ledger", "--sign", "--key", "ci.key", "--cache-from", good,
			"--cache-to", "type=registry,ref="+good+",mode=max", ".")
		if _, err := os.Stat(argsFile); err != nil || strings.Contains(res.stderr, "not signing a build") {
			t.Errorf("a signing build importing only trusted caches did not run: %d %s", res.code, res.stderr)
		}
	})
}
