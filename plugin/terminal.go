package plugin

import "github.com/docker-trustcache/docker-trustcache/internal/termtext"

// printable is termtext.Line: text from a registry, a signature or a flag
// made fit for one line of a terminal.
func printable(s string) string { return termtext.Line(s) }

// printableLines is termtext.Lines, for a message of several lines of our
// own.
func printableLines(s string) string { return termtext.Lines(s) }

// redactPEM is termtext.RedactPEM: key material quoted back by an error is
// never printed.
func redactPEM(msg string) string { return termtext.RedactPEM(msg) }
