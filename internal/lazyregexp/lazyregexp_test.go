package lazyregexp

import (
	"regexp"
	"testing"
)

func TestLazyMatchesRegexp(t *testing.T) {
	const expr = `^(\d+)d(.*)$`
	lazy, eager := New(expr), regexp.MustCompile(expr)
	for _, s := range []string{"7d", "30d12h", "d", "", "x7d"} {
		if got, want := lazy.MatchString(s), eager.MatchString(s); got != want {
			t.Errorf("MatchString(%q) = %v; want %v", s, got, want)
		}
		if got, want := lazy.Match([]byte(s)), eager.Match([]byte(s)); got != want {
			t.Errorf("Match(%q) = %v; want %v", s, got, want)
		}
		if got, want := lazy.FindStringSubmatch(s), eager.FindStringSubmatch(s); len(got) != len(want) || (len(got) > 0 && got[1] != want[1]) {
			t.Errorf("FindStringSubmatch(%q) = %q; want %q", s, got, want)
		}
		if got, want := lazy.ReplaceAllString(s, "$2"), eager.ReplaceAllString(s, "$2"); got != want {
			t.Errorf("ReplaceAllString(%q) = %q; want %q", s, got, want)
		}
	}
}

// Not compiled before first use outside tests.
func TestNotCompiledAtNew(t *testing.T) {
	defer func(v bool) { inTest = v }(inTest)
	inTest = false
	r := New(`(`) // does not compile: no panic until used
	if r.rx != nil {
		t.Fatal("compiled at New")
	}
	defer func() {
		if recover() == nil {
			t.Error("MatchString on a bad pattern did not panic")
		}
	}()
	r.MatchString("x")
}
