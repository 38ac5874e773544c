package keys

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// Environment variables a PasswordFunc made by Password reads, in this order.
const (
	PasswordEnv       = "TRUSTCACHE_PASSWORD"
	CosignPasswordEnv = "COSIGN_PASSWORD"
)

// ErrNoPassword is returned (wrapped) when a password is needed, no password
// variable is set and there is no terminal to ask on.
var ErrNoPassword = errors.New("no password: set " + PasswordEnv + " or run in a terminal")

// ErrPasswordMismatch is returned when the two passwords typed to confirm a
// new password differ.
var ErrPasswordMismatch = errors.New("passwords do not match")

// PasswordFunc returns the password of a private key. confirm is true when the
// password protects a new key: an interactive prompt then asks twice.
type PasswordFunc func(confirm bool) ([]byte, error)

// Password returns the PasswordFunc the CLI uses. It takes the password from
// the first of these that gives one:
//
//  1. the environment variable TRUSTCACHE_PASSWORD;
//  2. the environment variable COSIGN_PASSWORD;
//  3. a prompt written to out, and a line read from in, when isTerminal(in)
//     reports a terminal; when in is an *os.File on a terminal, echo is off.
//
// A variable set to the empty string counts as set (the empty password, as
// in cosign), which is why lookupEnv has the signature of os.LookupEnv. With
// no variable and no terminal the PasswordFunc returns ErrNoPassword.
//
// The CLI calls Password(os.LookupEnv, os.Stdin, os.Stderr, keys.IsTerminal).
func Password(lookupEnv func(string) (string, bool), in io.Reader, out io.Writer, isTerminal func(io.Reader) bool) PasswordFunc {
	return func(confirm bool) ([]byte, error) {
		for _, name := range []string{PasswordEnv, CosignPasswordEnv} {
			if v, ok := lookupEnv(name); ok {
				return []byte(v), nil
			}
		}
		if in == nil || isTerminal == nil || !isTerminal(in) {
			return nil, ErrNoPassword
		}
		pw, err := prompt(in, out, "Enter password for private key: ")
		if err != nil {
			return nil, err
		}
		if !confirm {
			return pw, nil
		}
		again, err := prompt(in, out, "Enter password for private key again: ")
		defer clear(again)
		if err != nil {
			clear(pw)
			return nil, err
		}
		if !bytes.Equal(pw, again) {
			clear(pw)
			return nil, ErrPasswordMismatch
		}
		return pw, nil
	}
}

// IsTerminal reports whether r is an *os.File connected to a terminal.
func IsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// prompt writes msg to out and reads one line from in, with echo off when in
// is a terminal.
func prompt(in io.Reader, out io.Writer, msg string) ([]byte, error) {
	if out != nil {
		fmt.Fprint(out, msg)
	}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pw, err := term.ReadPassword(int(f.Fd()))
		if out != nil {
			fmt.Fprintln(out) // the user's Enter was not echoed
		}
		if err != nil {
			return nil, fmt.Errorf("reading password: %w", err)
		}
		return pw, nil
	}
	return readLine(in)
}

// readLine reads up to a newline, one byte at a time so that nothing after it
// is consumed, and drops the line ending.
func readLine(in io.Reader) ([]byte, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := in.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
		}
		if err == io.EOF {
			if len(line) == 0 {
				return nil, errors.New("reading password: no input")
			}
			break
		}
		if err != nil {
			clear(line)
			return nil, fmt.Errorf("reading password: %w", err)
		}
	}
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
