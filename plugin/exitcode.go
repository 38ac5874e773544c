package plugin

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/app/pipeline"
	"github.com/docker-trustcache/docker-trustcache/internal/cli"
)

// Exit codes of docker trustcache, listed in the README. A build's own exit
// code passes through unchanged.
const (
	ExitOK           = 0
	ExitFailure      = 1 // any other failure (a registry write failed, a build failed …)
	ExitUsage        = 2 // usage or configuration error: bad flag, argument, policy, key or config file
	ExitUntrusted    = 3 // verdict: a reference is not trusted (no, bad or too few signatures)
	ExitInconclusive = 4 // no verdict: a registry or network failure
	ExitMissing      = 5 // verify: a tag does not exist in the registry (no cache there yet); none untrusted or inconclusive
	ExitFallback     = 6 // verify: every REF passes, at least one only through its tag's last trusted digest (docs/fallback.md)
)

// usageError marks an error as a usage or configuration error.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error.
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// asUsage marks err (if not nil) as a usage or configuration error.
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// withStatus returns err as a cli.StatusError carrying its exit code, so
// the plugin framework exits with it. Errors that already carry a status
// keep it.
func withStatus(err error) error {
	if err == nil {
		return nil
	}
	var st cli.StatusError
	if errors.As(err, &st) {
		return err
	}
	code := ExitFailure
	var ue usageError
	var pue *pipeline.UsageError
	var stopped *pipeline.StoppedError
	switch {
	case errors.As(err, &ue), errors.As(err, &pue):
		code = ExitUsage
	case errors.As(err, &stopped):
		code = exitFor(stopped.Status)
	}
	st = cli.StatusError{Cause: err, StatusCode: code}
	// Errors may quote a registry's answer: shown escaped, key material
	// never.
	if msg := err.Error(); strings.Contains(msg, "-----BEGIN") || printableLines(msg) != msg {
		st.Status = printableLines(redactPEM(msg))
	}
	return st
}

// flagError turns a flag parsing error into a usage error.
func flagError(cmd *cobra.Command, err error) error {
	return cli.StatusError{
		Status:     fmt.Sprintf("%s\n\nUsage:  %s\n\nRun '%s --help' for more information", redactPEM(err.Error()), cmd.UseLine(), cmd.CommandPath()),
		StatusCode: ExitUsage,
	}
}
