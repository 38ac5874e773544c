package plugin

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// signAt signs ref with the key file keyFile as builder ci, with the
// signed creation time at (naming tag, when not empty): a signature made long ago, as a restored old
// .sig tag or last month's build leaves it.
func signAt(t *testing.T, keyFile, ref string, at time.Time, format signature.Format, tag string) {
	t.Helper()
	k, err := keys.LoadSigner(keyFile, func(bool) ([]byte, error) { return []byte("test-password"), nil })
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	h, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	s := signature.Signer{Key: k, Builder: "ci", Now: func() time.Time { return at }}
	var ann map[string]string
	if tag != "" { // as sign REPO:TAG signs: naming the tag (docs/fallback.md)
		ann = map[string]string{"tag": tag}
	}
	if _, _, err := s.Attach(context.Background(), format, r.Context(), h.Digest, ann); err != nil {
		t.Fatal(err)
	}
}

// sigLayers is how many layers the .sig tag of ref holds.
func sigLayers(t *testing.T, ref string) int {
	t.Helper()
	r, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	h, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(signature.SigTag(r.Context(), h.Digest))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return len(m.Layers)
}

// noCIEnv clears the CI variables whose values sign writes as signed
// annotations, so that the test's signatures and sign's are equivalent.
func noCIEnv(t *testing.T) {
	for _, v := range []string{"GITHUB_ACTIONS", "GITLAB_CI", "TRUSTCACHE_SOURCE_REPO", "TRUSTCACHE_SOURCE_REF", "TRUSTCACHE_SOURCE_COMMIT", "TRUSTCACHE_SOURCE_RUN"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
}

// TestSignRefreshesAged: `sign` over a digest whose signature by the same
// key has aged out of the scope's maxAge signs again and says so, leaves
// one signature by that key (the aged layer replaced), and the digest
// verifies afterwards; before, it printed "already signed", exited 0 and
// left the digest untrusted.
func TestSignRefreshesAged(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"legacy", "bundle"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			te := newTestEnv(t, nil)
			dir := te.dir
			host := newRegistry(t)
			te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
			trustPolicy(t, dir, host, "    maxAge: 720h\n")
			tag := host + "/team/cache:main"
			ref := host + "/team/cache@" + pushRandom(t, tag).String()
			aged := time.Now().Add(-800 * time.Hour).UTC().Truncate(time.Second)
			signAt(t, filepath.Join(dir, "ci.key"), ref, aged, signature.Format(format), "main")
			if res := te.run("verify", "--no-ledger", tag); res.code != ExitUntrusted || !strings.Contains(res.stdout, "older than maxAge 720h") {
				t.Fatalf("verify before = %d %q; want untrusted, older than maxAge", res.code, res.stdout)
			}

			res := te.run("sign", "--signature-format", format, "--key", te.path("ci.key"), tag)
			want := ref + ": re-signed: the existing signature by this key from " + aged.Format(time.RFC3339) + " is older than maxAge 720h"
			if res.code != 0 || !strings.Contains(res.stderr, want) || strings.Contains(res.stderr, "already signed") {
				t.Fatalf("sign over an aged signature = %d %q; want %q", res.code, res.stderr, want)
			}
			if res := te.run("verify", "--no-ledger", tag); res.code != 0 {
				t.Errorf("verify after re-signing = %d %q; want trusted", res.code, res.stdout)
			}
			if format == "legacy" {
				if n := sigLayers(t, ref); n != 1 {
					t.Errorf("the .sig tag holds %d signatures; want 1 (the aged one replaced)", n)
				}
			}

			res = te.run("sign", "--signature-format", format, "--key", te.path("ci.key"), tag)
			if res.code != 0 || !strings.Contains(res.stderr, "already signed") {
				t.Errorf("sign again = %d %q; want already signed", res.code, res.stderr)
			}
			if format == "legacy" {
				if n := sigLayers(t, ref); n != 1 {
					t.Errorf("after signing again the .sig tag holds %d signatures; want 1", n)
				}
			}
		})
	}
}

// TestSignRefreshesWithoutPolicy: without a policy (or a scope), sign
// refreshes a signature older than 24 hours, the default re-sign age; a
// policy scope without maxAge counts any age, and sign keeps it.
func TestSignRefreshesWithoutPolicy(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	host := newRegistry(t)
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	tag := host + "/team/cache:main"
	ref := host + "/team/cache@" + pushRandom(t, tag).String()
	signAt(t, filepath.Join(dir, "ci.key"), ref, time.Now().Add(-23*time.Hour), signature.FormatLegacy, "main")
	if res := te.run("sign", "--key", te.path("ci.key"), tag); res.code != 0 || !strings.Contains(res.stderr, "already signed") {
		t.Errorf("sign over a 23h-old signature = %d %q; want already signed", res.code, res.stderr)
	}
	old := time.Now().Add(-25 * time.Hour).UTC().Truncate(time.Second)
	ref2 := host + "/team/cache@" + pushRandom(t, host+"/team/cache:old").String()
	signAt(t, filepath.Join(dir, "ci.key"), ref2, old, signature.FormatLegacy, "")
	want := "is older than 24h (the re-sign age without a policy maxAge)"
	if res := te.run("sign", "--key", te.path("ci.key"), ref2); res.code != 0 || !strings.Contains(res.stderr, want) {
		t.Errorf("sign over a 25h-old signature = %d %q; want %q", res.code, res.stderr, want)
	}
	if n := sigLayers(t, ref2); n != 1 {
		t.Errorf("the .sig tag holds %d signatures; want 1", n)
	}

	trustPolicy(t, dir, host, "") // no maxAge: any age counts
	ref3 := host + "/team/cache@" + pushRandom(t, host+"/team/cache:kept").String()
	signAt(t, filepath.Join(dir, "ci.key"), ref3, old.Add(-1000*time.Hour), signature.FormatLegacy, "")
	if res := te.run("sign", "--key", te.path("ci.key"), ref3); res.code != 0 || !strings.Contains(res.stderr, "already signed") {
		t.Errorf("sign under a scope without maxAge = %d %q; want already signed", res.code, res.stderr)
	}
}

// TestBuildSignRefreshesAged: build --sign over an export whose digest
// already carries an aged signature by the same key (a fully cached
// rebuild exports the very digest it imported) signs it again.
func TestBuildSignRefreshesAged(t *testing.T) {
	dir := isolate(t)
	noCIEnv(t)
	host := newRegistry(t)
	run(t, "keys", "generate", "--name", "ci")
	trustPolicy(t, dir, host, "    maxAge: 720h\n")
	d := pushRandom(t, host+"/team/cache:main")
	ref := host + "/team/cache@" + d.String()
	aged := time.Now().Add(-721 * time.Hour).UTC().Truncate(time.Second)
	signAt(t, filepath.Join(dir, "ci.key"), ref, aged, signature.FormatLegacy, "")

	p, err := trustpolicy.Load(filepath.Join(dir, ".trustcache.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	cli, err := command.NewDockerCli(command.WithInputStream(io.NopCloser(strings.NewReader(""))), command.WithOutputStream(io.Discard), command.WithErrorStream(&errOut))
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := name.NewRepository(host + "/team/cache")
	s, err := loadSigner(cli, isolatedEnv(), "ci.key", "", p)
	if err != nil {
		t.Fatal(err)
	}
	es := &exportSigner{cli: cli, signer: s, format: signature.FormatLegacy, policy: p, v: verify.New(p)}
	if err := es.Sign(context.Background(), pipeline.Export{Repo: repo, Digest: d, Kind: "cache"}, []string{""}, nil); err != nil {
		t.Fatal(err)
	}
	if want := "re-signed: the existing signature by this key from " + aged.Format(time.RFC3339); !strings.Contains(errOut.String(), want) {
		t.Errorf("build --sign said %q; want %q", errOut.String(), want)
	}
	if res := run(t, "verify", "--no-ledger", ref); res.code != 0 {
		t.Errorf("verify after build --sign = %d %q; want trusted", res.code, res.stdout)
	}
}
