package buildargs

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
)

// kinds renders the tokens as "kind" or "kind:flag", for compact expectations.

// reg is the spec of a registry cache: type=registry,ref=REF,ATTRS….
func reg(ref string, attrs ...cachespec.Attr) cachespec.Spec {
	return cachespec.Spec{Type: "registry", Attrs: append([]cachespec.Attr{{Key: "ref", Value: ref}}, attrs...)}
}

func kinds(toks []Token) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = t.Kind.String()
		if t.Flag != "" {
			out[i] += ":" + t.Flag
		}
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		tokens []string    // kinds(inv.Tokens); nil to skip
		want   *Invocation // compared without Tokens, Flags and CacheFrom[].Spec details checked separately
	}{
		{
			name:   "shorthand ref cache-from and tag",
			args:   []string{"-t", "app:1", "--cache-from=user/app:cache", "."},
			tokens: []string{"flag:tag", "value:tag", "flag:cache-from", "arg"},
			want: &Invocation{
				Context: ".", ContextToken: 3, Tags: []string{"app:1"},
				CacheFrom: []CacheSource{{Spec: reg("user/app:cache"), Token: 2, Form: FormJoined, Value: "user/app:cache"}},
			},
		},
		{
			name: "both forms, repeated, push, several tags",
			args: []string{
				"--cache-from", "type=registry,ref=reg/x:tag,mode=max",
				"--cache-from=type=local,src=/tmp/c",
				"--cache-to", "type=registry,ref=reg/x:tag,mode=max",
				"--push", "-t", "a", "-t", "b", ".",
			},
			tokens: []string{"flag:cache-from", "value:cache-from", "flag:cache-from", "flag:cache-to", "value:cache-to", "flag:push", "flag:tag", "value:tag", "flag:tag", "value:tag", "arg"},
			want: &Invocation{
				Context: ".", ContextToken: 10, Push: true, Tags: []string{"a", "b"},
				CacheFrom: []CacheSource{
					{Spec: reg("reg/x:tag", cachespec.Attr{Key: "mode", Value: "max"}), Token: 0, Form: FormSeparate, Value: "type=registry,ref=reg/x:tag,mode=max"},
					{Spec: cachespec.Spec{Type: "local", Attrs: []cachespec.Attr{{Key: "src", Value: "/tmp/c"}}}, Token: 2, Form: FormJoined, Value: "type=local,src=/tmp/c"},
				},
				CacheTo: []cachespec.Spec{reg("reg/x:tag", cachespec.Attr{Key: "mode", Value: "max"})},
			},
		},
		{
			// the shell turns 'type=registry,"ref=reg/x:tag",mode=max' into this argument
			name: "quoted CSV",
			args: []string{"--cache-from", `type=registry,"ref=reg/x:tag",mode=max`, "."},
			want: &Invocation{
				Context: ".", ContextToken: 2,
				CacheFrom: []CacheSource{{Spec: reg("reg/x:tag", cachespec.Attr{Key: "mode", Value: "max"}), Token: 0, Form: FormSeparate, Value: `type=registry,"ref=reg/x:tag",mode=max`}},
			},
		},
		{
			name:   "reference list is one source per reference",
			args:   []string{"--cache-from", "a:cache,b:cache", "."},
			tokens: []string{"flag:cache-from", "value:cache-from", "arg"},
			want: &Invocation{
				Context: ".", ContextToken: 2,
				CacheFrom: []CacheSource{
					{Spec: reg("a:cache"), Token: 0, Form: FormSeparate, Value: "a:cache,b:cache", Part: 0},
					{Spec: reg("b:cache"), Token: 0, Form: FormSeparate, Value: "a:cache,b:cache", Part: 1},
				},
			},
		},
		{
			name:   "empty cache-from imports nothing",
			args:   []string{"--cache-from=", "."},
			tokens: []string{"flag:cache-from", "arg"},
			want:   &Invocation{Context: ".", ContextToken: 1},
		},
		{
			name:   "dash dash",
			args:   []string{"--push", "--", "-weird-dir"},
			tokens: []string{"flag:push", "dashdash", "arg"},
			want:   &Invocation{Context: "-weird-dir", ContextToken: 2, Push: true},
		},
		{
			name:   "context on stdin and Dockerfile joined to -f",
			args:   []string{"-t", "x", "-f-", "-"},
			tokens: []string{"flag:tag", "value:tag", "flag:file", "arg"},
			want:   &Invocation{Context: "-", ContextToken: 3, Tags: []string{"x"}},
		},
		{
			name:   "flags after the context",
			args:   []string{".", "--push", "--tag", "x", "--cache-from", "r/c"},
			tokens: []string{"arg", "flag:push", "flag:tag", "value:tag", "flag:cache-from", "value:cache-from"},
			want: &Invocation{
				Context: ".", ContextToken: 0, Push: true, Tags: []string{"x"},
				CacheFrom: []CacheSource{{Spec: reg("r/c"), Token: 4, Form: FormSeparate, Value: "r/c"}},
			},
		},
		{
			name:   "booleans with values",
			args:   []string{"--push=false", "--load", "--pull=1", "--no-cache=FALSE", "-q=true", "."},
			tokens: []string{"flag:push", "flag:load", "flag:pull", "flag:no-cache", "flag:quiet", "arg"},
			want:   &Invocation{Context: ".", ContextToken: 5, Load: true},
		},
		{
			name:   "last boolean wins",
			args:   []string{"--push", ".", "--push=false"},
			tokens: []string{"flag:push", "arg", "flag:push"},
			want:   &Invocation{Context: ".", ContextToken: 1},
		},
		{
			name: "build args, secrets, ssh, multi-platform",
			args: []string{
				"--build-arg", "K=V", "--build-arg=K2=V2", "--secret", "id=x,src=y", "--ssh", "default",
				"--platform", "linux/amd64,linux/arm64", "--platform=linux/riscv64", "--label", "a=b", "https://github.com/o/r.git#main",
			},
			tokens: []string{
				"flag:build-arg", "value:build-arg", "flag:build-arg", "flag:secret", "value:secret", "flag:ssh", "value:ssh",
				"flag:platform", "value:platform", "flag:platform", "flag:label", "value:label", "arg",
			},
			want: &Invocation{
				Context: "https://github.com/o/r.git#main", ContextToken: 12,
				Platforms: []string{"linux/amd64,linux/arm64", "linux/riscv64"},
			},
		},
		{
			name: "trustcache flags",
			args: []string{
				"--trust-policy", "p.yaml", "--sign", "--key=k.key", "--sign-annotation", "ref=refs/heads/main",
				"--sign-annotation=commit=abc=d", ".", "--trust-report", "r.json", "--no-ledger", "--signature-format=bundle",
			},
			tokens: []string{
				"trust-flag:trust-policy", "trust-value:trust-policy", "trust-flag:sign", "trust-flag:key",
				"trust-flag:sign-annotation", "trust-value:sign-annotation", "trust-flag:sign-annotation", "arg",
				"trust-flag:trust-report", "trust-value:trust-report", "trust-flag:no-ledger", "trust-flag:signature-format",
			},
			want: &Invocation{
				Context: ".", ContextToken: 7,
				Trust: Options{
					Policy: "p.yaml", Sign: true, Key: "k.key",
					SignAnnotations: map[string]string{"ref": "refs/heads/main", "commit": "abc=d"},
					Report:          "r.json", NoLedger: true, SignatureFormat: "bundle",
				},
			},
		},
		{
			name:   "trustcache booleans with values, last wins",
			args:   []string{"--sign=true", "--sign=false", "--no-ledger=0", "--trust-policy=a", "--trust-policy=b", "."},
			tokens: []string{"trust-flag:sign", "trust-flag:sign", "trust-flag:no-ledger", "trust-flag:trust-policy", "trust-flag:trust-policy", "arg"},
			want:   &Invocation{Context: ".", ContextToken: 5, Trust: Options{Policy: "b"}},
		},
		{
			name:   "buildx's own --policy is not ours",
			args:   []string{"--policy", "filename=policy.rego", "."},
			tokens: []string{"flag:policy", "value:policy", "arg"},
			want:   &Invocation{Context: ".", ContextToken: 2},
		},
		{
			name:   "shorthand groups",
			args:   []string{"-qt", "app", "-tapp2", "-t=app3", "-qDo", "type=registry", "."},
			tokens: []string{"flag:tag", "value:tag", "flag:tag", "flag:tag", "flag:output", "value:output", "arg"},
			want: &Invocation{
				Context: ".", ContextToken: 6, Tags: []string{"app", "app2", "app3"}, Outputs: []string{"type=registry"},
			},
		},
		{
			name:   "a value flag takes the next token whatever it is",
			args:   []string{"--tag", "--push", "-o", "--", "."},
			tokens: []string{"flag:tag", "value:tag", "flag:output", "value:output", "arg"},
			want:   &Invocation{Context: ".", ContextToken: 4, Tags: []string{"--push"}, Outputs: []string{"--"}},
		},
		{
			name:   "call and check",
			args:   []string{"--call=outline", "--check", "."},
			tokens: []string{"flag:call", "flag:check", "arg"},
			want:   &Invocation{Context: ".", ContextToken: 2, Call: "check"},
		},
		{
			name:   "check=false leaves call",
			args:   []string{"--call", "targets", "--check=false", "."},
			tokens: []string{"flag:call", "value:call", "flag:check", "arg"},
			want:   &Invocation{Context: ".", ContextToken: 3, Call: "targets"},
		},
		{
			name:   "help needs no context",
			args:   []string{"--help"},
			tokens: []string{"flag:help"},
			want:   &Invocation{ContextToken: -1, Help: true},
		},
		{
			name: "legacy docker build flags buildx accepts",
			args: []string{
				"--compress", "--force-rm", "--rm=false", "--isolation=default", "--security-opt", "seccomp=unconfined",
				"--squash", "-m", "1g", "--memory-swap=-1", "-c", "512", "--cpu-period", "100000", "--cpu-quota=50000",
				"--cpuset-cpus", "0-1", "--cpuset-mems=0", "--shm-size", "64m", "--ulimit", "nofile=1024:1024", ".",
			},
			want: &Invocation{Context: ".", ContextToken: 22},
		},
		{
			name:   "builder, debug, metadata, progress, outputs",
			args:   []string{"-D", "--builder", "ci", "--metadata-file=m.json", "--progress", "plain", "-o", "type=image,push=true", "--load", "."},
			tokens: []string{"flag:debug", "flag:builder", "value:builder", "flag:metadata-file", "flag:progress", "value:progress", "flag:output", "value:output", "flag:load", "arg"},
			want: &Invocation{
				Context: ".", ContextToken: 9, Builder: "ci", MetadataFile: "m.json", Progress: "plain",
				Outputs: []string{"type=image,push=true"}, Load: true,
			},
		},
		{
			name:   "unknown --name=value passes through",
			args:   []string{"--future-flag=x", "."},
			tokens: []string{"unknown-flag:future-flag", "arg"},
			want:   &Invocation{Context: ".", ContextToken: 1},
		},
		{
			name:   "-test. shorthand groups are ignored, as pflag does",
			args:   []string{"-test.v", "-qtest.x", "."},
			tokens: []string{"ignored", "flag:quiet", "arg"},
			want:   &Invocation{Context: ".", ContextToken: 2},
		},
		{
			name:   "empty context",
			args:   []string{""},
			tokens: []string{"arg"},
			want:   &Invocation{Context: "", ContextToken: 0},
		},
	}
	ignore := cmpopts.IgnoreFields(Invocation{}, "Tokens", "Flags")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Parse(tt.args)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.args, err)
			}
			if len(inv.Tokens) != len(tt.args) {
				t.Errorf("Parse(%q): %d tokens for %d args", tt.args, len(inv.Tokens), len(tt.args))
			}
			for i, tok := range inv.Tokens {
				if i < len(tt.args) && tok.Arg != tt.args[i] {
					t.Errorf("Tokens[%d].Arg = %q; want %q", i, tok.Arg, tt.args[i])
				}
			}
			if tt.tokens != nil {
				if diff := cmp.Diff(tt.tokens, kinds(inv.Tokens)); diff != "" {
					t.Errorf("Parse(%q) tokens (-want +got):\n%s", tt.args, diff)
				}
			}
			if diff := cmp.Diff(tt.want, inv, ignore, cmpopts.IgnoreUnexported(Invocation{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	inv, err := Parse([]string{"-qt", "app", "--push", "--cache-from=r/c", "--key", "k", "--build-arg", "A=1", "."})
	if err != nil {
		t.Fatal(err)
	}
	want := []FlagUse{
		{Name: "quiet", Value: "true", Token: 0, Form: FormBare},
		{Name: "tag", Value: "app", Token: 0, Form: FormSeparate},
		{Name: "push", Value: "true", Token: 2, Form: FormBare},
		{Name: "cache-from", Value: "r/c", Token: 3, Form: FormJoined},
		{Name: "key", Value: "k", Token: 4, Form: FormSeparate, Trust: true},
		{Name: "build-arg", Value: "A=1", Token: 6, Form: FormSeparate},
	}
	if diff := cmp.Diff(want, inv.Flags); diff != "" {
		t.Errorf("Flags (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // substring of the error
		arg  int    // UsageError.Arg
	}{
		{nil, "requires exactly 1 argument", -1},
		{[]string{"--push"}, "requires exactly 1 argument", -1},
		{[]string{".", "ctx2"}, "got 2", -1},
		{[]string{"--", ".", "x"}, "got 2", -1},
		{[]string{"--sign", "false", "."}, "got 2", -1},            // a boolean takes no separate value
		{[]string{"--check", "false", "."}, "got 2", -1},           // nor does --check
		{[]string{"--unknown", "."}, "unknown flag: --unknown", 0}, // we cannot tell whether it takes a value
		{[]string{".", "--unknown", "x"}, "unknown flag: --unknown", 1},
		{[]string{"-x", "."}, `unknown shorthand flag: 'x' in -x`, 0},
		{[]string{"-qx", "."}, `unknown shorthand flag: 'x' in -x`, 0},
		{[]string{"-q=", "."}, `unknown shorthand flag: '=' in -=`, 0},
		{[]string{"--disable-content-trust", "."}, "unknown flag: --disable-content-trust", 0},
		{[]string{"--stream", "."}, "unknown flag: --stream", 0},
		{[]string{"--cache-extra=x", "."}, "unknown flag: --cache-extra", 0}, // could be a cache import
		{[]string{"--trust-polcy=x", "."}, "unknown flag: --trust-polcy", 0}, // our namespace
		{[]string{"---x", "."}, "bad flag syntax: ---x", 0},
		{[]string{"--=x", "."}, "bad flag syntax: --=x", 0},
		{[]string{".", "--tag"}, "flag needs an argument: --tag", 1},
		{[]string{".", "-t"}, `flag needs an argument: 't' in -t`, 1},
		{[]string{".", "--sbom"}, "flag needs an argument: --sbom", 1},
		{[]string{".", "--key"}, "flag needs an argument: --key", 1},
		{[]string{"--push=maybe", "."}, `invalid argument "maybe" for "--push" flag`, 0},
		{[]string{"--push=", "."}, `invalid argument "" for "--push" flag`, 0},
		{[]string{"--check=x", "."}, `invalid argument "x" for "--check" flag`, 0},
		{[]string{"-q=no", "."}, `invalid argument "no" for "--quiet" flag`, 0},
		{[]string{"--sign=yes", "."}, `invalid argument "yes" for "--sign" flag`, 0},
		{[]string{"--cache-from=type=", "."}, "type required", 0},
		{[]string{"--cache-from", "ref=x", "."}, "type required", 0},
		{[]string{"--cache-from", "a,,b", "."}, `"--cache-from"`, 0},
		{[]string{"--cache-from", `type=registry,ref="x"y`, "."}, "bare", 0},
		{[]string{"--cache-to", "mode=max", "."}, "type required", 0},
		{[]string{"--signature-format", "x", "."}, "want legacy or bundle", 0},
		{[]string{"--sign-annotation", "novalue", "."}, "want key=value", 0},
		{[]string{"--sign-annotation", "=v", "."}, "want key=value", 0},
		{[]string{"--key=", "."}, "non-empty", 0},
		{[]string{"--trust-policy=", "."}, "non-empty", 0},
		{[]string{"--trust-report", "", "."}, "non-empty", 0},
	}
	for _, tt := range tests {
		inv, err := Parse(tt.args)
		if err == nil {
			t.Errorf("Parse(%q) = %+v; want error containing %q", tt.args, inv, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %q; want it to contain %q", tt.args, err, tt.want)
		}
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("Parse(%q) error %T is not a *UsageError", tt.args, err)
		} else if ue.Arg != tt.arg {
			t.Errorf("Parse(%q) UsageError.Arg = %d; want %d", tt.args, ue.Arg, tt.arg)
		}
	}
}

func TestPushes(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"."}, false},
		{[]string{"--push", "."}, true},
		{[]string{"--push", "--push=false", "."}, false},
		{[]string{"--load", "."}, false},
		{[]string{"-o", "type=registry", "."}, true},
		{[]string{"--output=type=image,name=r/x,push=true", "."}, true},
		{[]string{"--output=type=image,name=r/x,PUSH=1", "."}, true},
		{[]string{"--output=type=image,name=r/x,push=false", "."}, false},
		{[]string{"--output=type=image,name=r/x", "."}, false},
		{[]string{"--output", "type=docker", "."}, false},
		{[]string{"-o", "out/dir", "."}, false},
		{[]string{"-o", "-", "."}, false},
		{[]string{"-o", "type=local,dest=out", "-o", "type=registry,name=r/x", "."}, true},
		{[]string{"-o", "", "."}, false},
	}
	for _, tt := range tests {
		inv, err := Parse(tt.args)
		if err != nil {
			t.Fatalf("Parse(%q) error: %v", tt.args, err)
		}
		if got := inv.Pushes(); got != tt.want {
			t.Errorf("Parse(%q).Pushes() = %v; want %v", tt.args, got, tt.want)
		}
	}
}

// Every flag in the table parses in each of its forms, so a typo in the table
// (a boolean marked as a value flag or the reverse) shows up here.
func TestFlagTable(t *testing.T) {
	for _, d := range append(append([]flagDef(nil), buildxFlags...), trustFlags...) {
		value := "v"
		if d.name == "cache-from" || d.name == "cache-to" {
			value = "r/c"
		}
		if d.name == "signature-format" {
			value = "legacy"
		}
		if d.name == "sign-annotation" {
			value = "k=v"
		}
		var forms [][]string
		switch d.kind {
		case boolean:
			forms = [][]string{{"--" + d.name, "."}, {"--" + d.name + "=false", "."}, {".", "--" + d.name + "=true"}}
			if d.short != 0 {
				forms = append(forms, []string{"-" + string(d.short), "."}, []string{"-" + string(d.short) + "=0", "."})
			}
		case needsValue:
			forms = [][]string{{"--" + d.name, value, "."}, {"--" + d.name + "=" + value, "."}}
			if d.short != 0 {
				forms = append(forms, []string{"-" + string(d.short), value, "."}, []string{"-" + string(d.short) + value, "."})
			}
		default:
			t.Fatalf("flag --%s has no kind", d.name)
		}
		for _, args := range forms {
			inv, err := Parse(args)
			if err != nil {
				t.Errorf("Parse(%q) error: %v", args, err)
				continue
			}
			if inv.Context != "." {
				t.Errorf("Parse(%q).Context = %q; want .", args, inv.Context)
			}
		}
	}
}
