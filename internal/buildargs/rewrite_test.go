package buildargs

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func pinned(t *testing.T, s cachespec.Spec) cachespec.Spec {
	t.Helper()
	ref := s.Ref()
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	s.Set("ref", ref+"@"+digest)
	return s
}

func TestRewrite(t *testing.T) {
	// Each case says per source: pinned (replaced), kept (passed on as
	// written) or removed (no entry).
	pin := func(i int) func(*testing.T, *Invocation) (cachespec.Spec, bool) {
		return func(t *testing.T, inv *Invocation) (cachespec.Spec, bool) {
			return pinned(t, inv.CacheFrom[i].Spec), true
		}
	}
	keep := func(i int) func(*testing.T, *Invocation) (cachespec.Spec, bool) {
		return func(t *testing.T, inv *Invocation) (cachespec.Spec, bool) { return inv.CacheFrom[i].Spec, true }
	}
	remove := func(*testing.T, *Invocation) (cachespec.Spec, bool) { return cachespec.Spec{}, false }
	tests := []struct {
		name      string
		args      []string
		decisions map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool)
		want      []string
	}{
		{
			name: "pin registry, keep local, drop trustcache flags",
			args: []string{
				"--cache-from", "type=registry,ref=reg/x:tag,mode=max", "--cache-from=type=local,src=/tmp/c",
				"-t", "app", "--push", "--trust-policy", "p.yaml", "--sign", "--key=k.key", ".",
			},
			decisions: map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool){0: pin(0), 1: keep(1)},
			want: []string{
				"--cache-from", "type=registry,ref=reg/x@" + digest + ",mode=max", "--cache-from=type=local,src=/tmp/c",
				"-t", "app", "--push", ".",
			},
		},
		{
			name:      "joined form stays one token",
			args:      []string{"--cache-from=user/app:cache", "."},
			decisions: map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool){0: pin(0)},
			want:      []string{"--cache-from=type=registry,ref=user/app@" + digest, "."},
		},
		{
			name:      "quoted CSV pinned",
			args:      []string{"--cache-from", `type=registry,"ref=reg/x:tag",mode=max`, "."},
			decisions: map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool){0: pin(0)},
			want:      []string{"--cache-from", "type=registry,ref=reg/x@" + digest + ",mode=max", "."},
		},
		{
			name:      "quoted CSV kept byte for byte",
			args:      []string{"--cache-from", `type=registry,"ref=reg/x:tag",mode=max`, "."},
			decisions: map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool){0: keep(0)},
			want:      []string{"--cache-from", `type=registry,"ref=reg/x:tag",mode=max`, "."},
		},
		{
			name:      "removed: both tokens go",
			args:      []string{"--pull", "--cache-from", "user/app:cache", "--cache-from=other/app:cache", "."},
			decisions: map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool){0: remove, 1: remove},
			want:      []string{"--pull", "."},
		},
		{
			name: "no decision means removed",
			args: []string{"--cache-from", "user/app:cache", "--cache-from=type=gha", "--cache-from", "type=local,src=d", "."},
			want: []string{"."},
		},
		{
			name:      "reference list: all kept stays as written",
			args:      []string{"--cache-from", "a:cache,b:cache", "."},
			decisions: map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool){0: keep(0), 1: keep(1)},
			want:      []string{"--cache-from", "a:cache,b:cache", "."},
		},
		{
			name:      "reference list: split when not all kept",
			args:      []string{"--cache-from", "a:cache,b:cache,c:cache", "."},
			decisions: map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool){0: keep(0), 1: remove, 2: pin(2)},
			want: []string{
				"--cache-from", "type=registry,ref=a:cache",
				"--cache-from", "type=registry,ref=c@" + digest, ".",
			},
		},
		{
			name:      "reference list joined: one source left",
			args:      []string{"--cache-from=a:cache,b:cache", "."},
			decisions: map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool){1: pin(1)},
			want:      []string{"--cache-from=type=registry,ref=b@" + digest, "."},
		},
		{
			name: "everything else byte for byte, in order",
			args: []string{
				"--pull", "--build-arg", "K=V", "--secret", "id=x,src=y", "--cache-from", "r/c:1", "--platform", "linux/amd64,linux/arm64",
				"-qt", "app", "--push=false", "--cache-to", "type=registry,ref=r/c:1,mode=max", "--sign-annotation", "ref=main",
				"--no-ledger", "--trust-report=r.json", "--signature-format", "legacy", "--progress=plain", "--", "--sign",
			},
			decisions: map[int]func(*testing.T, *Invocation) (cachespec.Spec, bool){0: pin(0)},
			want: []string{
				"--pull", "--build-arg", "K=V", "--secret", "id=x,src=y", "--cache-from", "type=registry,ref=r/c@" + digest, "--platform", "linux/amd64,linux/arm64",
				"-qt", "app", "--push=false", "--cache-to", "type=registry,ref=r/c:1,mode=max",
				"--progress=plain", "--", "--sign",
			},
		},
		{
			name: "empty cache-from has nothing to decide and is kept",
			args: []string{"--cache-from=", "--cache-from", "", "."},
			want: []string{"--cache-from=", "--cache-from", "", "."},
		},
		{
			name: "a cache-from given as another flag's value is that flag's value",
			args: []string{"--tag", "--cache-from=evil/cache", "--label", "--cache-from", "."},
			want: []string{"--tag", "--cache-from=evil/cache", "--label", "--cache-from", "."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Parse(tt.args)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.args, err)
			}
			pass := map[int]cachespec.Spec{}
			for i, f := range tt.decisions {
				if spec, ok := f(t, inv); ok {
					pass[i] = spec
				}
			}
			got, err := inv.Rewrite(pass)
			if err != nil {
				t.Fatalf("Rewrite error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Rewrite(%q) (-want +got):\n%s", tt.args, diff)
			}
			if _, err := Parse(got); err != nil {
				t.Errorf("Parse(Rewrite(...)) = %v", err)
			}
		})
	}
}

func TestRewriteErrors(t *testing.T) {
	inv, err := Parse([]string{"--cache-from", "r/c", "."})
	if err != nil {
		t.Fatal(err)
	}
	src := inv.CacheFrom[0].Spec
	tests := map[string]map[int]cachespec.Spec{
		"index past the end":        {1: src},
		"negative index":            {-1: src},
		"replacement no type":       {0: {Attrs: []cachespec.Attr{{Key: "ref", Value: "x"}}}},
		"replacement type in attrs": {0: {Type: "registry", Attrs: []cachespec.Attr{{Key: "type", Value: "local"}}}},
		"replacement upper key":     {0: {Type: "registry", Attrs: []cachespec.Attr{{Key: "REF", Value: "x"}}}},
	}
	for name, d := range tests {
		if got, err := inv.Rewrite(d); err == nil {
			t.Errorf("%s: Rewrite = %q; want error", name, got)
		}
	}
}

// Rewrite works from Parse's own copy: changing the exported fields cannot
// smuggle a cache source past the decisions (a source left out of the
// exported list is still removed; a token changed is not what is written).
func TestRewriteIgnoresExportedChanges(t *testing.T) {
	inv, err := Parse([]string{"--cache-from", "trusted/c", "--cache-from=untrusted/c", "."})
	if err != nil {
		t.Fatal(err)
	}
	trusted := inv.CacheFrom[0].Spec.Clone()
	inv.Tokens[3].Arg = "--cache-from=evil/c"
	inv.Tokens[1].Arg = "evil/c"
	inv.CacheFrom = inv.CacheFrom[:1]
	got, err := inv.Rewrite(map[int]cachespec.Spec{0: trusted})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--cache-from", "trusted/c", "."}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Rewrite (-want +got):\n%s", diff)
	}
}

// passedThrough returns the arguments that Rewrite must keep as they are: all
// but trustcache flags and the --cache-from flags that have sources.
func passedThrough(inv *Invocation) []string {
	hasSources := map[int]bool{}
	for _, s := range inv.CacheFrom {
		hasSources[s.Token] = true
		if s.Form == FormSeparate {
			hasSources[s.Token+1] = true
		}
	}
	var out []string
	for i, tok := range inv.Tokens {
		if tok.Kind == KindTrustFlag || tok.Kind == KindTrustValue || hasSources[i] {
			continue
		}
		out = append(out, tok.Arg)
	}
	return out
}

func withoutTrust(inv *Invocation) []string {
	var out []string
	for _, tok := range inv.Tokens {
		if tok.Kind != KindTrustFlag && tok.Kind != KindTrustValue {
			out = append(out, tok.Arg)
		}
	}
	return out
}

func FuzzRewrite(f *testing.F) {
	seeds := [][]string{
		{"--cache-from", "type=registry,ref=reg/x:tag,mode=max", "--cache-from=type=local,src=/tmp/c", "-t", "a", "-t", "b", "--push", "."},
		{"--cache-from", `type=registry,"ref=reg/x:tag",mode=max`, "--trust-policy", "p.yaml", "--sign", "--key=k", "."},
		{"--cache-from", "a:cache,b:cache", "--cache-from=c", "-", "--push=false", "--sign-annotation", "k=v"},
		{".", "--build-arg", "K=V", "--secret", "id=x,src=y", "--platform", "linux/amd64,linux/arm64", "--cache-from", "r/c"},
		{"--cache-from=", "--", "--cache-from", "x"},
		{"-qt", "app", "-f-", "--cache-to", "r/c", "--no-ledger", "--signature-format", "bundle", "--trust-report=r", "."},
		{"--tag", "--cache-from=x", "--cache-from", "--cache-from", "."},
		{"--help"},
	}
	for i, s := range seeds {
		f.Add(strings.Join(s, "\x00"), uint64(i))
	}
	f.Fuzz(func(t *testing.T, argv string, seed uint64) {
		args := strings.Split(argv, "\x00")
		inv, err := Parse(args)
		if err != nil {
			return
		}

		// All kept: exactly the input minus trustcache's flags.
		all := map[int]cachespec.Spec{}
		for i, s := range inv.CacheFrom {
			all[i] = s.Spec
		}
		got, err := inv.Rewrite(all)
		if err != nil {
			t.Fatalf("Rewrite(all keep) of %q: %v", args, err)
		}
		if diff := cmp.Diff(withoutTrust(inv), got); diff != "" {
			t.Fatalf("Rewrite(all keep) of %q (-want +got):\n%s", args, diff)
		}

		// Random decisions: everything but --cache-from passes through in
		// order, and the cache sources are exactly the kept and replaced ones.
		rng := rand.New(rand.NewPCG(seed, seed>>1))
		pass := map[int]cachespec.Spec{}
		var want []cachespec.Spec
		for i, s := range inv.CacheFrom {
			switch rng.IntN(3) {
			case 0: // removed
			case 1:
				pass[i] = s.Spec
				want = append(want, s.Spec)
			case 2:
				r := s.Spec.Clone()
				r.Type = "registry"
				r.Set("ref", fmt.Sprintf("pinned.example/r%d@%s", i, digest))
				pass[i] = r
				want = append(want, r)
			}
		}
		got, err = inv.Rewrite(pass)
		if err != nil {
			t.Fatalf("Rewrite of %q: %v", args, err)
		}
		out, err := Parse(got)
		if err != nil {
			t.Fatalf("Rewrite of %q = %q, which does not parse: %v", args, got, err)
		}
		if diff := cmp.Diff(passedThrough(inv), passedThrough(out)); diff != "" {
			t.Fatalf("Rewrite of %q = %q changed other arguments (-want +got):\n%s", args, got, diff)
		}
		if len(out.CacheFrom) != len(want) {
			t.Fatalf("Rewrite of %q = %q: %d cache sources, want %d", args, got, len(out.CacheFrom), len(want))
		}
		for i, s := range out.CacheFrom {
			if !s.Spec.Equal(want[i]) {
				t.Fatalf("Rewrite of %q = %q: cache source %d is %v, want %v", args, got, i, s.Spec, want[i])
			}
		}
		for _, tok := range out.Tokens {
			if tok.Kind == KindTrustFlag || tok.Kind == KindTrustValue {
				t.Fatalf("Rewrite of %q = %q kept trustcache flag %q", args, got, tok.Arg)
			}
		}
	})
}
