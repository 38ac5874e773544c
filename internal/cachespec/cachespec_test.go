package cachespec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func reg(ref string, attrs ...Attr) Spec {
	return Spec{Type: "registry", Attrs: append([]Attr{{"ref", ref}}, attrs...)}
}

// The expectations follow buildx v0.38.2 buildflags.ParseCacheEntry, checked
// against it value by value.
func TestParseFlag(t *testing.T) {
	tests := []struct {
		in   string
		want []Spec
	}{
		{"", nil},
		{"user/app:cache", []Spec{reg("user/app:cache")}},
		{"reg.example.com:5000/team/app:cache", []Spec{reg("reg.example.com:5000/team/app:cache")}},
		{"reg/app@sha256:" + strings.Repeat("a", 64), []Spec{reg("reg/app@sha256:" + strings.Repeat("a", 64))}},
		// A list of references is one entry per field.
		{"a:cache,b:cache", []Spec{reg("a:cache"), reg("b:cache")}},
		{`"a:cache",b`, []Spec{reg("a:cache"), reg("b")}},
		{"type=registry,ref=reg/x:tag", []Spec{reg("reg/x:tag")}},
		{"type=registry,ref=reg/x:tag,mode=max", []Spec{reg("reg/x:tag", Attr{"mode", "max"})}},
		{`type=registry,"ref=reg/x:tag",mode=max`, []Spec{reg("reg/x:tag", Attr{"mode", "max"})}},
		{`"type=registry","ref=reg/x:tag"`, []Spec{reg("reg/x:tag")}},
		// Keys are lower-cased, values are not; type may come anywhere.
		{"REF=Reg/X:Tag,Type=registry", []Spec{reg("Reg/X:Tag")}},
		{"type=Registry,ref=x", []Spec{{Type: "Registry", Attrs: []Attr{{"ref", "x"}}}}},
		// Repeated keys are kept in order; the last one counts.
		{"type=registry,ref=a,ref=b", []Spec{{Type: "registry", Attrs: []Attr{{"ref", "a"}, {"ref", "b"}}}}},
		{"type=local,type=registry,ref=a", []Spec{reg("a")}},
		// Empty values and "=" inside values.
		{"type=registry,ref=", []Spec{reg("")}},
		{"type=s3,region=eu,bucket=b,name=x=y", []Spec{{Type: "s3", Attrs: []Attr{{"region", "eu"}, {"bucket", "b"}, {"name", "x=y"}}}}},
		{"type=local,src=path/to/dir", []Spec{{Type: "local", Attrs: []Attr{{"src", "path/to/dir"}}}}},
		{"type=gha,scope=main", []Spec{{Type: "gha", Attrs: []Attr{{"scope", "main"}}}}},
		{"type=gha", []Spec{{Type: "gha"}}},
		{`type=local,"src=a,b"`, []Spec{{Type: "local", Attrs: []Attr{{"src", "a,b"}}}}},
		{`type=local,"src=a""b"`, []Spec{{Type: "local", Attrs: []Attr{{"src", `a"b`}}}}},
		{"type=local,=x", []Spec{{Type: "local", Attrs: []Attr{{"", "x"}}}}},
		{"type=local, src=x", []Spec{{Type: "local", Attrs: []Attr{{" src", "x"}}}}},
		// One trailing newline is dropped, as go-csvvalue does.
		{"type=registry,ref=x\n", []Spec{reg("x")}},
		{"type=registry,ref=x\r\n", []Spec{reg("x")}},
		{"type=registry,\"ref=x\r\ny\"", []Spec{reg("x\r\ny")}},
		// A quoted reference with no "=" anywhere is still a reference.
		{`" a"`, []Spec{reg(" a")}},
	}
	for _, tt := range tests {
		got, err := ParseFlag(tt.in)
		if err != nil {
			t.Errorf("ParseFlag(%q) error: %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseFlag(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseFlagErrors(t *testing.T) {
	for _, in := range []string{
		"type=",                  // type required
		"ref=x",                  // type required
		"mode=max,ref=x",         // type required
		"type=registry,ref",      // field without =
		"ref,type=registry",      // field without =
		"a,,b",                   // empty reference
		"a,",                     // empty reference
		"\n",                     // empty after the newline
		`a"b`,                    // bare quote
		`"a`,                     // unterminated quote
		`"a"b`,                   // text after a closing quote
		`type=registry,ref="x"y`, // bare quote in an unquoted field
		`"a,b"`,                  // a reference list parsed twice: "a,b" is then two fields, not key=value
		`"a""b"`,                 // parsed twice: a"b has a bare quote
		`""`,                     // parsed twice: the empty field is an empty line
	} {
		if got, err := ParseFlag(in); err == nil {
			t.Errorf("ParseFlag(%q) = %v; want error", in, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "\n", "a,b", "type=", "ref=x", `"`} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v; want error", in, got)
		}
	}
}

func TestParseRefs(t *testing.T) {
	got, err := ParseRefs("a,b:c")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Spec{reg("a"), reg("b:c")}, got); diff != "" {
		t.Errorf("ParseRefs mismatch (-want +got):\n%s", diff)
	}
	if _, err := ParseRefs("type=registry,ref=a"); err == nil {
		t.Errorf("ParseRefs(type=registry,ref=a): want error")
	}
}

func TestSpecString(t *testing.T) {
	tests := []struct {
		spec Spec
		want string
	}{
		{reg("reg/x:tag"), "type=registry,ref=reg/x:tag"},
		{reg("reg/x@sha256:abc", Attr{"mode", "max"}), "type=registry,ref=reg/x@sha256:abc,mode=max"},
		{Spec{Type: "local", Attrs: []Attr{{"src", "a,b"}}}, `type=local,"src=a,b"`},
		{Spec{Type: "local", Attrs: []Attr{{"src", `a"b`}}}, `type=local,"src=a""b"`},
		{Spec{Type: "local", Attrs: []Attr{{"src", "a\nb"}}}, "type=local,\"src=a\nb\""},
		{Spec{Type: "local", Attrs: []Attr{{" src", "x"}}}, `type=local," src=x"`},
		{Spec{Type: "gha"}, "type=gha"},
		{Spec{}, ""},
	}
	for _, tt := range tests {
		if got := tt.spec.String(); got != tt.want {
			t.Errorf("%#v.String() = %q; want %q", tt.spec, got, tt.want)
		}
	}
}

func TestSpecSetGet(t *testing.T) {
	s, err := Parse("type=registry,ref=a,mode=max,ref=b")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Ref(); got != "b" {
		t.Errorf("Ref() = %q; want b (last wins)", got)
	}
	before := s
	s.Set("REF", "reg/x@sha256:1")
	want := Spec{Type: "registry", Attrs: []Attr{{"ref", "reg/x@sha256:1"}, {"mode", "max"}}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("after Set (-want +got):\n%s", diff)
	}
	if got := before.Ref(); got != "b" {
		t.Errorf("Set changed a copy made before it: Ref() = %q", got)
	}
	s.Set("ignore-error", "true")
	s.Set("type", "registry")
	if got, want := s.String(), "type=registry,ref=reg/x@sha256:1,mode=max,ignore-error=true"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	if v, ok := s.Get("type"); !ok || v != "registry" {
		t.Errorf(`Get("type") = %q, %v`, v, ok)
	}
	if _, ok := s.Get("missing"); ok {
		t.Errorf(`Get("missing") found`)
	}
}

func TestSpecEqual(t *testing.T) {
	a, _ := Parse("type=registry,ref=a,mode=max")
	b, _ := Parse("mode=max,ref=x,type=registry,ref=a")
	if !a.Equal(b) {
		t.Errorf("%v.Equal(%v) = false; want true", a, b)
	}
	c, _ := Parse("type=registry,ref=a")
	if a.Equal(c) {
		t.Errorf("%v.Equal(%v) = true; want false", a, c)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"user/app:cache",
		"type=registry,ref=reg/x:tag,mode=max",
		`type=registry,"ref=reg/x:tag",mode=max`,
		`type=local,"src=a,b","dest=a""b"`,
		"REF=x,TYPE=registry,ref=y",
		"type=registry,ref=x\n",
		"type=registry,\"ref=x\r\n\"",
		"type=local, src=x",
		`""`,
		"a,b",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := Parse(s)
		if err != nil {
			return
		}
		if spec.Type == "" {
			t.Fatalf("Parse(%q) = %#v: empty type", s, spec)
		}
		out := spec.String()
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q, which does not parse: %v", s, out, err)
		}
		if diff := cmp.Diff(spec, back); diff != "" {
			t.Fatalf("Parse(%q) round trip through %q (-first +second):\n%s", s, out, diff)
		}
		// ParseFlag reads every value with "=" as Parse does.
		if strings.Contains(s, "=") {
			specs, err := ParseFlag(s)
			if err != nil || len(specs) != 1 || !specs[0].Equal(spec) {
				t.Fatalf("ParseFlag(%q) = %v, %v; want [%v]", s, specs, err, spec)
			}
		}
	})
}

func FuzzParseFlag(f *testing.F) {
	for _, s := range []string{"a,b", `"a",b`, "a,,b", `"a,b"`, "type=gha", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		specs, err := ParseFlag(s)
		if err != nil {
			return
		}
		for _, spec := range specs {
			back, err := Parse(spec.String())
			if err != nil || !back.Equal(spec) {
				t.Fatalf("ParseFlag(%q): spec %#v does not round trip: %v, %v", s, spec, back, err)
			}
		}
	})
}
