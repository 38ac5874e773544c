package plugin

import "github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"

// pemText matches PEM text, from its BEGIN line to its END line or the end
// of the string, as written or quoted.
var pemText = lazyregexp.New(`-----BEGIN [^\n"]*?-----(?s:.*?)(?:-----END [^\n"]*?-----|$)`)

// redactPEM hides the PEM text in an error message: key material given in
// the wrong place (a key as an argument, a flag value) is quoted back by
// the errors about it, and keys are never printed.
func redactPEM(msg string) string {
	return pemText.ReplaceAllString(msg, "[PEM text not shown]")
}
