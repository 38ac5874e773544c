// Package termtext makes text that came from elsewhere (a registry, a
// signature, a flag value, an error message quoting one) fit to write to a
// terminal: control and invisible formatting characters escaped, PEM key
// material hidden. The plugin's commands and the build pipeline write
// through it.
package termtext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
)

// Line returns s fit for one line of text output: every control
// character (carriage return, newline, escape, the C1 controls), every
// invisible formatting character (bidirectional overrides and the like)
// and every invalid UTF-8 byte is written as a Go escape (\r, \n, \x1b,
// \u202e). Strings that came from a registry, or from signed but not yet
// verified content, go through it before they reach a terminal, so that a
// hostile registry can neither erase a line nor print one of its own (a
// forged "used … signed by ci-main"). JSON output needs no such care: its
// encoder escapes what it must and keeps the text exact.
func Line(s string) string {
	clean := true
	for _, r := range s {
		if needsEscape(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case needsEscape(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// Lines is Line for a message of several lines of our own (joined
// errors): the newlines stay, everything else is escaped.
func Lines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Line(l)
	}
	return strings.Join(lines, "\n")
}

// pemText matches PEM text, from its BEGIN line to its END line or the end
// of the string, as written or quoted. Compiled on first use: a command
// that redacts nothing pays nothing for it at start-up.
var pemText = lazyregexp.New(`-----BEGIN [^\n"]*?-----(?s:.*?)(?:-----END [^\n"]*?-----|$)`)

// RedactPEM hides the PEM text in an error message: key material given in
// the wrong place (a key as an argument, a flag value) is quoted back by
// the errors about it, and keys are never printed.
func RedactPEM(msg string) string {
	return pemText.ReplaceAllString(msg, "[PEM text not shown]")
}
