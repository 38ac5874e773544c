package buildargs

import (
	"fmt"
	"strconv"
	"strings"
)

// scanner splits a command line into tokens the way pflag v1.0.10 does,
// with the flags in table. Every known flag occurrence is recorded in
// flags; trustcache's own are applied to trust, the others passed to
// apply (b is a boolean flag's value). Parse (build) and ParseBake (bake)
// both read their lines with it.
type scanner struct {
	args       []string
	table      flagTable
	tokens     *[]Token
	flags      *[]FlagUse
	trust      *Options
	apply      func(u FlagUse, b bool) error
	positional []int
}

// use records one known flag occurrence and applies it.
func (s *scanner) use(e flagEntry, value string, tok int, form Form) error {
	u := FlagUse{Name: e.name, Value: value, Token: tok, Form: form, Trust: e.trust}
	*s.flags = append(*s.flags, u)
	var b bool
	if e.kind == boolean {
		var err error
		if b, err = strconv.ParseBool(value); err != nil {
			return fmt.Errorf("invalid argument %q for \"--%s\" flag: %w", value, e.name, err)
		}
	}
	if e.trust {
		return applyTrust(s.trust, e.name, value, b)
	}
	return s.apply(u, b)
}

func (s *scanner) add(arg string, kind Kind, flag string) int {
	*s.tokens = append(*s.tokens, Token{Arg: arg, Kind: kind, Flag: flag})
	return len(*s.tokens) - 1
}

func (s *scanner) run() error {
	for i := 0; i < len(s.args); i++ {
		a := s.args[i]
		var consumed int
		var err error
		switch {
		case a == "" || a[0] != '-' || a == "-":
			s.positional = append(s.positional, i)
			s.add(a, KindArg, "")
		case a == "--":
			s.add(a, KindDashDash, "")
			for j := i + 1; j < len(s.args); j++ {
				s.positional = append(s.positional, j)
				s.add(s.args[j], KindArg, "")
			}
			return nil
		case a[1] == '-':
			consumed, err = s.long(i)
		default:
			consumed, err = s.short(i)
		}
		if err != nil {
			return err
		}
		i += consumed
	}
	return nil
}

// long parses the "--…" token at args[i] and returns how many following
// tokens it consumed (0 or 1).
func (s *scanner) long(i int) (int, error) {
	a := s.args[i]
	body := a[2:]
	if body[0] == '-' || body[0] == '=' {
		return 0, &UsageError{Arg: i, Flag: a, Err: fmt.Errorf("bad flag syntax: %s", a)}
	}
	name, value, joined := strings.Cut(body, "=")
	e, ok := s.table.long[name]
	if !ok {
		if joined && passesUnknown(name) {
			s.add(a, KindUnknownFlag, name)
			return 0, nil
		}
		return 0, &UsageError{Arg: i, Flag: "--" + name, Err: fmt.Errorf("unknown flag: --%s", name)}
	}
	kind, valueKind := KindFlag, KindValue
	if e.trust {
		kind, valueKind = KindTrustFlag, KindTrustValue
	}
	tok := s.add(a, kind, name)
	form, consumed := FormJoined, 0
	switch {
	case joined:
	case e.kind == boolean:
		value, form = "true", FormBare
	case i+1 < len(s.args):
		value, form, consumed = s.args[i+1], FormSeparate, 1
		s.add(value, valueKind, name)
	default:
		return 0, &UsageError{Arg: i, Flag: a, Err: fmt.Errorf("flag needs an argument: --%s", name)}
	}
	if err := s.use(e, value, tok, form); err != nil {
		return 0, &UsageError{Arg: i, Flag: "--" + name, Err: err}
	}
	return consumed, nil
}

// short parses the "-…" token at args[i] (a group of shorthands) and returns
// how many following tokens it consumed (0 or 1).
func (s *scanner) short(i int) (int, error) {
	a := s.args[i]
	tok := s.add(a, KindFlag, "")
	consumed := 0
	for sh := a[1:]; sh != ""; {
		if strings.HasPrefix(sh, "test.") {
			break // pflag drops the rest of the group: isGotestShorthandFlag
		}
		c := sh[0]
		e, ok := s.table.short[c]
		if !ok {
			return 0, &UsageError{Arg: i, Flag: "-" + string(c), Err: fmt.Errorf("unknown shorthand flag: %q in -%s", c, sh)}
		}
		var value string
		var form Form
		switch {
		case len(sh) > 2 && sh[1] == '=':
			value, form, sh = sh[2:], FormJoined, ""
		case e.kind == boolean:
			value, form, sh = "true", FormBare, sh[1:]
		case len(sh) > 1:
			value, form, sh = sh[1:], FormJoined, ""
		case i+1 < len(s.args):
			value, form, sh, consumed = s.args[i+1], FormSeparate, "", 1
		default:
			return 0, &UsageError{Arg: i, Flag: "-" + string(c), Err: fmt.Errorf("flag needs an argument: %q in -%s", c, sh)}
		}
		(*s.tokens)[tok].Flag = e.name
		if consumed == 1 {
			s.add(value, KindValue, e.name)
		}
		if err := s.use(e, value, tok, form); err != nil {
			return 0, &UsageError{Arg: i, Flag: "-" + string(c), Err: err}
		}
	}
	if (*s.tokens)[tok].Flag == "" {
		(*s.tokens)[tok].Kind = KindIgnored
	}
	return consumed, nil
}

// passesUnknown says whether an unknown "--name=value" may pass through.
func passesUnknown(name string) bool {
	return !strings.Contains(name, "cache") && !strings.HasPrefix(name, "trust-")
}
