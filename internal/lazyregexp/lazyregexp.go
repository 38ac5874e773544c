// Package lazyregexp is a package-level regular expression compiled when it
// is first used, not when the program starts: every linked package's
// variables are initialised before any command runs, so a pattern that only
// `build` or `builder create` uses would otherwise be compiled by every
// `verify` and every `docker-cli-plugin-metadata` too (docs/performance.md).
// As the Go tool's own internal/lazyregexp, a test binary compiles each
// pattern at once, so a bad one fails its package's tests.
package lazyregexp

import (
	"os"
	"regexp"
	"strings"
	"sync"
)

// Regexp is a regexp.Regexp compiled on first use.
type Regexp struct {
	str  string
	once sync.Once
	rx   *regexp.Regexp
}

// New returns the lazily compiled str; it panics on first use, as
// regexp.MustCompile, when str does not compile.
func New(str string) *Regexp {
	r := &Regexp{str: str}
	if inTest {
		r.re()
	}
	return r
}

var inTest = len(os.Args) > 0 && strings.HasSuffix(strings.TrimSuffix(os.Args[0], ".exe"), ".test")

func (r *Regexp) re() *regexp.Regexp {
	r.once.Do(func() { r.rx = regexp.MustCompile(r.str) })
	return r.rx
}

// MatchString is regexp.Regexp's.
func (r *Regexp) MatchString(s string) bool { return r.re().MatchString(s) }

// Match is regexp.Regexp's.
func (r *Regexp) Match(b []byte) bool { return r.re().Match(b) }

// FindStringSubmatch is regexp.Regexp's.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.re().FindStringSubmatch(s) }

// ReplaceAllString is regexp.Regexp's.
func (r *Regexp) ReplaceAllString(src, repl string) string { return r.re().ReplaceAllString(src, repl) }
