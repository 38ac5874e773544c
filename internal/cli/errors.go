// Package cli holds what a failed command of the plugin carries back to the
// process: a StatusError, the exit status and message the plugin exits
// with. It mirrors github.com/docker/cli/cli's StatusError without linking
// that package, which initialises the whole docker CLI (its API client,
// gRPC, OpenTelemetry) in every process that imports it (docs/performance.md).
package cli

// StatusError is a command's failure with the exit status the plugin exits
// with. Status, when set, is the whole message; otherwise Cause's message
// is used (an empty message prints as an empty line, as the docker CLI's
// plugins do).
type StatusError struct {
	Cause      error
	Status     string
	StatusCode int
}

// Error returns Status, else Cause's message, else "".
func (e StatusError) Error() string {
	switch {
	case e.Status != "":
		return e.Status
	case e.Cause != nil:
		return e.Cause.Error()
	}
	return ""
}

// Unwrap returns Cause.
func (e StatusError) Unwrap() error { return e.Cause }
