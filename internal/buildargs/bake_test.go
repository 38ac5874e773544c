package buildargs

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
)

func TestParseBake(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		tokens []string // kinds(inv.Tokens)
		want   *BakeInvocation
		buildx []string // BuildxArgs("X")
	}{
		{
			name:   "no arguments",
			args:   nil,
			tokens: []string{},
			want:   &BakeInvocation{},
			buildx: []string{"X"},
		},
		{
			name: "files, sets, targets, trust flags",
			args: []string{"-f", "docker-bake.hcl", "--file=extra.hcl", "--set", "*.platform=linux/amd64",
				"--trust-policy", "p.yaml", "--sign", "--key=k.key", "app", "--push", "db"},
			tokens: []string{"flag:file", "value:file", "flag:file", "flag:set", "value:set",
				"trust-flag:trust-policy", "trust-value:trust-policy", "trust-flag:sign", "trust-flag:key", "arg", "flag:push", "arg"},
			want: &BakeInvocation{
				Args:  []string{"app", "db"},
				Files: []string{"docker-bake.hcl", "extra.hcl"},
				Trust: Options{Policy: "p.yaml", Sign: true, Key: "k.key"},
			},
			buildx: []string{"-f", "docker-bake.hcl", "--file=extra.hcl", "--set", "*.platform=linux/amd64", "app", "--push", "db", "X"},
		},
		{
			name:   "extra goes before --",
			args:   []string{"--builder", "b1", "--metadata-file", "md.json", "--", "--print"},
			tokens: []string{"flag:builder", "value:builder", "flag:metadata-file", "value:metadata-file", "dashdash", "arg"},
			want:   &BakeInvocation{Args: []string{"--print"}, Builder: "b1", MetadataFile: "md.json"},
			buildx: []string{"--builder", "b1", "--metadata-file", "md.json", "X", "--", "--print"},
		},
		{
			name:   "shorthand group and joined value",
			args:   []string{"-Dj2", "-fbake.json", "--check", "--print=false"},
			tokens: []string{"flag:jobs", "flag:file", "flag:check", "flag:print"},
			want:   &BakeInvocation{Files: []string{"bake.json"}},
			buildx: []string{"-Dj2", "-fbake.json", "--check", "--print=false", "X"},
		},
		{
			name:   "print",
			args:   []string{"--print", "app"},
			tokens: []string{"flag:print", "arg"},
			want:   &BakeInvocation{Args: []string{"app"}, Print: true},
			buildx: []string{"--print", "app", "X"},
		},
		{
			name:   "deprecated list flags, and --list winning over them",
			args:   []string{"--list-variables"},
			tokens: []string{"flag:list-variables"},
			want:   &BakeInvocation{List: "variables"},
			buildx: []string{"--list-variables", "X"},
		},
		{
			name:   "--list wins",
			args:   []string{"--list-targets", "--list", "type=variables,format=json"},
			tokens: []string{"flag:list-targets", "flag:list", "value:list"},
			want:   &BakeInvocation{List: "type=variables,format=json"},
			buildx: []string{"--list-targets", "--list", "type=variables,format=json", "X"},
		},
		{
			name:   "a value flag takes the next token whatever it is",
			args:   []string{"--set", "--push", "--var", "--", "app"},
			tokens: []string{"flag:set", "value:set", "flag:var", "value:var", "arg"},
			want:   &BakeInvocation{Args: []string{"app"}},
			buildx: []string{"--set", "--push", "--var", "--", "app", "X"},
		},
		{
			name:   "unknown --name=value passes through",
			args:   []string{"--future=1", "-h"},
			tokens: []string{"unknown-flag:future", "flag:help"},
			want:   &BakeInvocation{Help: true},
			buildx: []string{"--future=1", "-h", "X"},
		},
		{
			name:   "sign options",
			args:   []string{"--sign-annotation", "team=a", "--sign-annotation=env=ci", "--no-ledger", "--trust-report", "r.json", "--signature-format", "bundle"},
			tokens: []string{"trust-flag:sign-annotation", "trust-value:sign-annotation", "trust-flag:sign-annotation", "trust-flag:no-ledger", "trust-flag:trust-report", "trust-value:trust-report", "trust-flag:signature-format", "trust-value:signature-format"},
			want: &BakeInvocation{Trust: Options{
				SignAnnotations: map[string]string{"team": "a", "env": "ci"}, NoLedger: true, Report: "r.json", SignatureFormat: "bundle",
			}},
			buildx: []string{"X"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := ParseBake(tc.args)
			if err != nil {
				t.Fatalf("ParseBake(%q) = %v", tc.args, err)
			}
			if diff := cmp.Diff(tc.tokens, kinds(inv.Tokens), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseBake(%q) tokens (-want +got):\n%s", tc.args, diff)
			}
			if diff := cmp.Diff(tc.want, inv, cmpopts.IgnoreFields(BakeInvocation{}, "Tokens", "Flags"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseBake(%q) (-want +got):\n%s", tc.args, diff)
			}
			if diff := cmp.Diff(tc.buildx, inv.BuildxArgs("X"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseBake(%q).BuildxArgs (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

func TestParseBakeErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
		msg  string
	}{
		{[]string{"--nope"}, "--nope", "unknown flag"},
		{[]string{"--cache-from=x"}, "--cache-from", "unknown flag"}, // not a bake flag, and may import a cache
		{[]string{"--trust-polcy=p"}, "--trust-polcy", "unknown flag"},
		{[]string{"-t", "x"}, "-t", "unknown shorthand"},
		{[]string{"--set"}, "--set", "needs an argument"},
		{[]string{"-f"}, "-f", "needs an argument"},
		{[]string{"--push=maybe"}, "--push", "invalid argument"},
		{[]string{"---x"}, "---x", "bad flag syntax"},
		{[]string{"--sign-annotation", "novalue"}, "--sign-annotation", "key=value"},
		{[]string{"--signature-format", "pgp"}, "--signature-format", "legacy or bundle"},
		{[]string{"--trust-policy="}, "--trust-policy", "non-empty"},
	} {
		_, err := ParseBake(tc.args)
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Flag != tc.flag || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseBake(%q) = %v; want a *UsageError for %s containing %q", tc.args, err, tc.flag, tc.msg)
		}
	}
}

// TestBakeFlagsKnown: every bake flag is in the table with the kind buildx
// v0.38.2 gives it, so a value is never mistaken for a target.
func TestBakeFlagsKnown(t *testing.T) {
	values := []string{"file", "sbom", "provenance", "policy", "set", "var", "call", "allow", "jobs", "list", "progress", "metadata-file", "builder"}
	bools := []string{"load", "push", "check", "print", "list-targets", "list-variables", "no-cache", "pull", "debug", "help"}
	for _, n := range values {
		if e, ok := bakeFlags().long[n]; !ok || e.kind != needsValue || e.trust {
			t.Errorf("bake flag --%s: %+v, %v; want a buildx flag taking a value", n, e, ok)
		}
	}
	for _, n := range bools {
		if e, ok := bakeFlags().long[n]; !ok || e.kind != boolean || e.trust {
			t.Errorf("bake flag --%s: %+v, %v; want a buildx boolean", n, e, ok)
		}
	}
	if got, want := len(bakeFlagDefs), len(values)+len(bools); got != want {
		t.Errorf("%d bake flags; want %d", got, want)
	}
	for c, want := range map[byte]string{'f': "file", 'j': "jobs", 'D': "debug", 'h': "help"} {
		if e := bakeFlags().short[c]; e.name != want {
			t.Errorf("-%c is --%s; want --%s", c, e.name, want)
		}
	}
}

func TestParseBakeDefinition(t *testing.T) {
	def := `{
  "group": {"default": {"targets": ["b", "a"]}},
  "target": {
    "b": {
      "context": ".",
      "cache-from": [{"ref": "r/b:cache", "type": "registry"}, {"src": "/tmp/c", "type": "local"}],
      "cache-to": [{"mode": "max", "ref": "r/b:cache", "type": "registry"}],
      "output": [{"push": "true", "type": "image"}]
    },
    "a": {
      "cache-from": ["r/a:cache,r/a2:cache", "type=gha,scope=x"],
      "output": ["type=local,dest=out"]
    },
    "c": {"output": [{"type": "registry"}]},
    "d": {"output": [{"type": "image", "push": "false"}, {"type": "cacheonly"}]}
  }
}`
	got, err := ParseBakeDefinition([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	want := []BakeTarget{
		{Name: "a", CacheFrom: []cachespec.Spec{reg("r/a:cache"), reg("r/a2:cache"), {Type: "gha", Attrs: []cachespec.Attr{{Key: "scope", Value: "x"}}}}},
		{Name: "b",
			CacheFrom: []cachespec.Spec{reg("r/b:cache"), {Type: "local", Attrs: []cachespec.Attr{{Key: "src", Value: "/tmp/c"}}}},
			CacheTo:   []cachespec.Spec{{Type: "registry", Attrs: []cachespec.Attr{{Key: "mode", Value: "max"}, {Key: "ref", Value: "r/b:cache"}}}},
			Pushes:    true},
		{Name: "c", Pushes: true},
		{Name: "d"},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ParseBakeDefinition (-want +got):\n%s", diff)
	}

	for _, bad := range []string{
		`[]`,
		`{"target": {"a.b": {}}}`,
		`{"target": {"*": {}}}`,
		`{"target": {"a": {"cache-from": [{"ref": "x"}]}}}`,
		`{"target": {"a": {"cache-from": [{"type": "registry", "ref": 1}]}}}`,
		`{"target": {"a": {"cache-from": [1]}}}`,
		`{"target": {"a": {"cache-from": ["type=registry,\"ref"]}}}`,
		`{"target": {"a": {"output": [true]}}}`,
	} {
		if _, err := ParseBakeDefinition([]byte(bad)); err == nil {
			t.Errorf("ParseBakeDefinition(%s) = nil error; want one", bad)
		}
	}
}

func FuzzParseBake(f *testing.F) {
	for _, s := range [][]string{
		{"-f", "docker-bake.hcl", "--set", "*.cache-from=x", "app"},
		{"--trust-policy", "p.yaml", "--sign", "--key=k", "--", "--print"},
		{"-Dj2", "-fbake.json", "--check", "--print=false", "--list-targets"},
		{"--future=1", "-h", "--sign-annotation", "k=v"},
	} {
		f.Add(strings.Join(s, "\x00"))
	}
	f.Fuzz(func(t *testing.T, argv string) {
		args := strings.Split(argv, "\x00")
		inv, err := ParseBake(args)
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("ParseBake(%q) = %v; want a *UsageError", args, err)
			}
			return
		}
		if len(inv.Tokens) != len(args) {
			t.Fatalf("ParseBake(%q): %d tokens for %d arguments", args, len(inv.Tokens), len(args))
		}
		// Without trust flags and extra, buildx gets the arguments unchanged.
		var kept []string
		for i, tok := range inv.Tokens {
			if tok.Arg != args[i] {
				t.Fatalf("ParseBake(%q): token %d is %q", args, i, tok.Arg)
			}
			if tok.Kind != KindTrustFlag && tok.Kind != KindTrustValue {
				kept = append(kept, tok.Arg)
			}
		}
		if diff := cmp.Diff(kept, inv.BuildxArgs(), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("ParseBake(%q).BuildxArgs() (-want +got):\n%s", args, diff)
		}
		// Extra arguments are read by buildx after every flag given: they
		// parse back as flags, not as targets.
		again, err := ParseBake(inv.BuildxArgs("--set", "*.cache-from="))
		if err != nil {
			t.Fatalf("ParseBake(BuildxArgs) = %v", err)
		}
		if diff := cmp.Diff(inv.Args, again.Args, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("ParseBake(%q): extra changed the targets (-want +got):\n%s", args, diff)
		}
		last := again.Flags[len(again.Flags)-1]
		if last.Name != "set" || last.Value != "*.cache-from=" {
			t.Fatalf("ParseBake(%q): the last flag buildx reads is %+v; want the extra --set", args, last)
		}
	})
}

func FuzzParseBakeDefinition(f *testing.F) {
	for _, s := range []string{
		`{"target": {"a": {"cache-from": [{"type": "registry", "ref": "r/a:c"}], "output": [{"type": "registry"}]}}}`,
		`{"target": {"a": {"cache-from": ["r/a:c,r/b:c"], "cache-to": ["type=registry,ref=r/a:c"]}}}`,
		`{"group": {}, "target": {}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		targets, err := ParseBakeDefinition(data)
		if err != nil {
			return
		}
		for i, tg := range targets {
			if !bakeTargetName.MatchString(tg.Name) || i > 0 && targets[i-1].Name >= tg.Name {
				t.Fatalf("ParseBakeDefinition(%q): target %q out of grammar or order", data, tg.Name)
			}
			for _, s := range tg.CacheFrom {
				if s.Type == "" {
					t.Fatalf("ParseBakeDefinition(%q): target %q: cache without type", data, tg.Name)
				}
			}
		}
	})
}
