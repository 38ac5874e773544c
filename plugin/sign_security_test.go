package plugin

// Attack tests for docs/SECURITY.md against docker trustcache sign: bad
// input that must write nothing, the signed repository binding.

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/docker-trustcache/docker-trustcache/internal/signature"
)

// TestSignBadInputWritesNothing: bad annotations, refs, flags and keys
// each fail with a clear error and the documented exit code, before
// anything is written: no signature appears for the good ref given
// alongside.
func TestSignBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	host := newRegistry(t)
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	good := host + "/team/cache:main"
	d := pushRandom(t, good)
	for _, tc := range []struct {
		flags []string
		refs  []string // given after the good ref
		code  int
		msg   string
	}{
		{flags: []string{"-a", "=x"}, code: ExitUsage, msg: "want KEY=VALUE"},
		{flags: []string{"-a", " =x"}, code: ExitUsage, msg: "want KEY=VALUE"},
		{flags: []string{"-a", "novalue"}, code: ExitUsage, msg: "want KEY=VALUE"},
		{flags: []string{"-a", "builder=me"}, code: ExitUsage, msg: "set by docker trustcache"},
		{flags: []string{"-a", " created =2020-01-01T00:00:00Z"}, code: ExitUsage, msg: "set by docker trustcache"},
		{flags: []string{"-a", "ref=a", "-a", "ref=b"}, code: ExitUsage, msg: "given twice"},
		{flags: []string{"--signature-format", "xml"}, code: ExitUsage, msg: "--signature-format"},
		{flags: []string{"--policy", "missing.yaml"}, code: ExitUsage, msg: "missing.yaml"},
		{flags: []string{"--key", te.path("missing.key")}, code: ExitUsage, msg: "missing.key"},
		{flags: []string{"--key", te.path("ci.pub")}, code: ExitUsage, msg: "public key"},
		{refs: []string{"Not A Ref!"}, code: ExitUsage, msg: "invalid reference"},
		{refs: []string{host + "/team/cache@sha256:1234"}, code: ExitUsage, msg: "invalid reference"},
		{refs: []string{host + "/team/cache:missing"}, code: ExitFailure, msg: "does not exist"},
		{refs: []string{host + "/team/other:main"}, code: ExitFailure, msg: "does not exist"},
	} {
		args := []string{"sign"}
		if !slices.Contains(tc.flags, "--key") {
			args = append(args, "--key", te.path("ci.key"))
		}
		args = append(append(append(args, tc.flags...), good), tc.refs...)
		res := te.run(args...)
		if res.code != tc.code || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("%q = exit %d, %q; want exit %d containing %q", args, res.code, res.stderr, tc.code, tc.msg)
		}
		if res.stdout != "" {
			t.Errorf("%q printed %q on stdout; want nothing", args, res.stdout)
		}
	}
	repo, _ := name.NewRepository(host + "/team/cache")
	if _, err := remote.Head(signature.SigTag(repo, d)); err == nil {
		t.Errorf("a failed sign wrote %s", signature.SigTag(repo, d))
	}
	if idx, err := remote.Referrers(repo.Digest(d.String())); err == nil {
		if im, _ := idx.IndexManifest(); im != nil && len(im.Manifests) > 0 {
			t.Errorf("a failed sign attached %d referrers", len(im.Manifests))
		}
	}
}

// TestSignIdentityAnnotation: a bundle's repository binding is the signed
// "identity" annotation, which trustcache sets itself: -a identity=OTHER
// cannot make a bundle name another repository.
func TestSignIdentityAnnotation(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	host := newRegistry(t)
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	trustPolicy(t, dir, host, "")
	ref := host + "/team/cache:main"
	d := pushRandom(t, ref)
	res := te.run("sign", "--key", te.path("ci.key"), "--signature-format", "bundle", "-a", "identity="+host+"/team/other", ref)
	if res.code != 0 {
		t.Fatalf("sign = %d %s", res.code, res.stderr)
	}
	repo, _ := name.NewRepository(host + "/team/cache")
	sigs, err := signature.ReadBundles(context.Background(), repo, d)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("ReadBundles = %v, %v; want one bundle", sigs, err)
	}
	st, err := signature.ParseStatement(sigs[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := st.Identity(); id != repo.Name() {
		t.Errorf("signed identity = %q; want the signed repository %q", id, repo.Name())
	}
	if res := te.run("verify", ref); res.code != 0 {
		t.Errorf("verify = %d %s", res.code, res.stdout)
	}
}
