// Package buildargs reads the command lines of `docker trustcache build` and
// `bake` the way `docker buildx build` and `bake` v0.38.2 read them, takes
// out trustcache's own flags, and writes the argv for the real build with
// each --cache-from kept, pinned or removed.
//
// It mirrors buildx without importing it: the flag tables are in flags.go,
// the parsing rules are pflag v1.0.10's (the version buildx v0.38.2 builds
// with) in scan.go, build's line in parse.go, bake's line and definition in
// bake.go, and the --cache-from grammar is buildx's util/buildflags/cache.go.
package buildargs

import (
	"errors"
	"fmt"
	"github.com/tonistiigi/go-csvvalue"
	"strconv"
	"strings"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
)

// Kind says what a token of the command line is.
type Kind int

const (
	// KindFlag names one or more buildx flags with any value joined to it:
	// "--push", "--tag=x", "-t", "-qtx".
	KindFlag Kind = iota + 1
	// KindValue is the separate value of the buildx flag named by the token
	// before it ("--tag" "x").
	KindValue
	// KindArg is a positional argument: the build context. Every token after
	// "--" is one.
	KindArg
	// KindDashDash is "--", after which every token is an argument.
	KindDashDash
	// KindTrustFlag names a trustcache flag ("--sign", "--key=k", "--key").
	// It is not passed to buildx.
	KindTrustFlag
	// KindTrustValue is the separate value of a trustcache flag. It is not
	// passed to buildx.
	KindTrustValue
	// KindUnknownFlag is "--name=value" with a name buildx v0.38.2 does not
	// define. Being one token it cannot change how the other tokens parse,
	// so it is passed through and left to the installed buildx (which may be
	// newer) to accept or reject. The same flag without "=", an unknown
	// shorthand, and unknown names containing "cache" or starting with
	// "trust-" are errors instead: the first two would leave it unknown
	// whether the next token is a value, and the last two could be a cache
	// import we cannot verify or a misspelt trustcache flag.
	KindUnknownFlag
	// KindIgnored is a token pflag skips without a word: a shorthand group
	// starting "-test." (go test's flags). Passed through; buildx skips it too.
	KindIgnored
)

var kindNames = map[Kind]string{
	KindFlag:        "flag",
	KindValue:       "value",
	KindArg:         "arg",
	KindDashDash:    "dashdash",
	KindTrustFlag:   "trust-flag",
	KindTrustValue:  "trust-value",
	KindUnknownFlag: "unknown-flag",
	KindIgnored:     "ignored",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Form says how a flag and its value were written.
type Form int

const (
	// FormJoined is one token: "--cache-from=V", "-tV", "-t=V".
	FormJoined Form = iota + 1
	// FormSeparate is two tokens: "--cache-from" "V", "-t" "V".
	FormSeparate
	// FormBare is a boolean without a value: "--push", "-q".
	FormBare
)

var formNames = map[Form]string{FormJoined: "joined", FormSeparate: "separate", FormBare: "bare"}

func (f Form) String() string {
	if s, ok := formNames[f]; ok {
		return s
	}
	return "Form(" + strconv.Itoa(int(f)) + ")"
}

// Token is one element of the command line: Invocation.Tokens[i] is the
// i-th argument given to Parse.
type Token struct {
	Arg  string // exactly as given
	Kind Kind
	// Flag is the long name (no dashes) of the flag the token names or is
	// the value of; for a group of shorthands ("-qt") the last one. It is
	// empty for KindArg, KindDashDash and KindIgnored.
	Flag string
}

// FlagUse is one occurrence of a known flag, buildx's or trustcache's.
type FlagUse struct {
	Name  string // long name without dashes: "tag", also for "-t"
	Value string // the value the flag receives; "true" for a bare boolean
	Token int    // index in Tokens of the token that names the flag; the value is at Token+1 for FormSeparate
	Form  Form
	Trust bool // a trustcache flag
}

// CacheSource is one cache source of a --cache-from flag. A flag usually
// holds one; the reference-list form ("--cache-from a,b") holds several,
// which share Token, Form and Value and differ in Part.
type CacheSource struct {
	Spec  cachespec.Spec
	Token int    // index in Tokens of the "--cache-from" token
	Form  Form   // FormJoined or FormSeparate
	Value string // the flag value as written
	Part  int    // index of this source among those of the same flag
}

// Options are trustcache's own flags, as given ("" or false when absent).
// When a flag is repeated the last one wins, but every --sign-annotation
// counts (the last value for a repeated key).
type Options struct {
	Policy          string            // --trust-policy FILE
	Sign            bool              // --sign
	Key             string            // --key KEY
	SignAnnotations map[string]string // --sign-annotation k=v; nil when none
	Report          string            // --trust-report FILE
	NoLedger        bool              // --no-ledger
	SignatureFormat string            // --signature-format legacy|bundle
	Keyless         bool              // --keyless
	IdentityToken   string            // --identity-token TOKEN|@FILE
	SigningConfig   string            // --signing-config FILE
}

// Invocation is a parsed `docker trustcache build` command line. Its exported
// fields are for reading: Rewrite works from a private copy taken by Parse,
// so changing them cannot change what Rewrite emits.
type Invocation struct {
	Tokens []Token   // every argument, in order
	Flags  []FlagUse // every known flag occurrence, in order

	Context      string // the one positional argument: a path, a URL, or "-" for stdin
	ContextToken int    // its index in Tokens; -1 only when Help is set and no context was given

	Trust Options

	CacheFrom []CacheSource    // every cache source, in order; Rewrite's decisions are keyed by index here
	CacheTo   []cachespec.Spec // every --cache-to spec, in order

	// The buildx flags the wrapper needs to know about, as given. Booleans
	// and single-valued strings hold the last occurrence; lists hold all.
	Push         bool     // --push
	Load         bool     // --load
	Outputs      []string // -o/--output values, unparsed
	Tags         []string // -t/--tag values
	Platforms    []string // --platform values (each may list several, comma separated)
	Builder      string   // --builder
	MetadataFile string   // --metadata-file
	Progress     string   // --progress
	Call         string   // --call, --print, or "check" for --check; "" means build
	Help         bool     // -h/--help: buildx prints help and builds nothing

	toks []Token       // private copy for Rewrite
	srcs []CacheSource // private copy for Rewrite
}

// UsageError is a command line that Parse refuses: docker buildx build
// v0.38.2 would refuse it too, or a trustcache flag is wrong. Nothing may be
// built from it.
type UsageError struct {
	Arg  int    // index in the arguments of the offending token, -1 for the line as a whole
	Flag string // the flag as written ("--tag", "-t"), "" when the error is not about a flag
	Err  error
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Parse reads args, the arguments after `docker trustcache build`, as
// `docker buildx build` v0.38.2 reads its own (pflag v1.0.10, flags and
// arguments interspersed):
//
//   - "--name=value", "--name value"; a boolean is "--name" or
//     "--name=BOOL" (strconv.ParseBool), and "--name false" is the flag
//     followed by an argument;
//   - shorthands "-t value", "-tvalue", "-t=value", and groups "-qt value"
//     in which every letter but the last is a boolean;
//   - a flag that needs a value takes the next token whatever it is
//     ("--tag --push" tags "--push");
//   - "--" ends the flags; "-" alone is an argument (the context on stdin);
//   - exactly one argument, the build context, unless --help is given.
//
// Unknown flags are errors, except "--name=value": see KindUnknownFlag.
// Every --cache-from and --cache-to value is parsed (cachespec.ParseFlag); a value
// buildx would refuse is an error. Every error is a *UsageError.
func Parse(args []string) (*Invocation, error) {
	p := parser{inv: &Invocation{ContextToken: -1}}
	s := scanner{args: args, table: knownFlags(), tokens: &p.inv.Tokens, flags: &p.inv.Flags, trust: &p.inv.Trust, apply: p.apply}
	if err := s.run(); err != nil {
		return nil, err
	}
	inv := p.inv
	if len(s.positional) != 1 && !inv.Help {
		return nil, &UsageError{Arg: -1, Err: fmt.Errorf(
			"\"docker trustcache build\" requires exactly 1 argument, the build context, got %d", len(s.positional))}
	}
	if len(s.positional) > 0 {
		inv.ContextToken = s.positional[0]
		inv.Context = args[inv.ContextToken]
	}
	inv.toks = append([]Token(nil), inv.Tokens...)
	inv.srcs = make([]CacheSource, len(inv.CacheFrom))
	for i, s := range inv.CacheFrom {
		s.Spec = s.Spec.Clone()
		inv.srcs[i] = s
	}
	return inv, nil
}

// parser applies build's flags to an Invocation; scanner (scan.go) splits
// the line.
type parser struct {
	inv *Invocation
}

// apply applies one occurrence of one of build's own flags (scanner
// records it and applies trustcache's).
func (p *parser) apply(u FlagUse, b bool) error {
	inv := p.inv
	value, tok, form := u.Value, u.Token, u.Form
	switch u.Name {
	case "cache-from":
		specs, err := cachespec.ParseFlag(value)
		if err != nil {
			return fmt.Errorf("invalid argument %q for \"--cache-from\" flag: %w", value, err)
		}
		for i, s := range specs {
			inv.CacheFrom = append(inv.CacheFrom, CacheSource{Spec: s, Token: tok, Form: form, Value: value, Part: i})
		}
	case "cache-to":
		specs, err := cachespec.ParseFlag(value)
		if err != nil {
			return fmt.Errorf("invalid argument %q for \"--cache-to\" flag: %w", value, err)
		}
		inv.CacheTo = append(inv.CacheTo, specs...)
	case "push":
		inv.Push = b
	case "load":
		inv.Load = b
	case "help":
		inv.Help = b
	case "check":
		if b {
			inv.Call = "check"
		}
	case "call", "print":
		inv.Call = value
	case "output":
		inv.Outputs = append(inv.Outputs, value)
	case "tag":
		inv.Tags = append(inv.Tags, value)
	case "platform":
		inv.Platforms = append(inv.Platforms, value)
	case "builder":
		inv.Builder = value
	case "metadata-file":
		inv.MetadataFile = value
	case "progress":
		inv.Progress = value
	}
	return nil
}

func applyTrust(o *Options, name, value string, b bool) error {
	nonEmpty := func() error {
		if value == "" {
			return fmt.Errorf("--%s needs a non-empty value", name)
		}
		return nil
	}
	switch name {
	case FlagPolicy:
		o.Policy = value
		return nonEmpty()
	case FlagSign:
		o.Sign = b
	case FlagKey:
		o.Key = value
		return nonEmpty()
	case FlagSignAnnotation:
		k, v, ok := strings.Cut(value, "=")
		if !ok || k == "" {
			return fmt.Errorf("invalid argument %q for \"--%s\" flag: want key=value", value, name)
		}
		if o.SignAnnotations == nil {
			o.SignAnnotations = map[string]string{}
		}
		o.SignAnnotations[k] = v
	case FlagReport:
		o.Report = value
		return nonEmpty()
	case FlagNoLedger:
		o.NoLedger = b
	case FlagSignatureFormat:
		if value != "legacy" && value != "bundle" {
			return fmt.Errorf("invalid argument %q for \"--%s\" flag: want legacy or bundle", value, name)
		}
		o.SignatureFormat = value
	case FlagKeyless:
		o.Keyless = b
	case FlagIdentityToken:
		o.IdentityToken = value
		return nonEmpty()
	case FlagSigningConfig:
		o.SigningConfig = value
		return nonEmpty()
	default:
		return errors.New("unhandled trustcache flag --" + name) // a flag added to trustFlags but not here
	}
	return nil
}

// Pushes reports whether the build pushes images to a registry: --push, or
// an --output of type registry, or of type image or moby with push=true, read
// with buildx's output grammar (util/buildflags/export.go). An output buildx
// would refuse counts as not pushing; buildx fails the build on it anyway.
func (inv *Invocation) Pushes() bool {
	if inv.Push {
		return true
	}
	for _, o := range inv.Outputs {
		if o == "" {
			continue
		}
		fields, err := splitCSV(o)
		if err != nil {
			continue
		}
		if len(fields) == 1 && fields[0] == o && !strings.HasPrefix(o, "type=") {
			continue // a local directory, or "-" for a tarball on stdout
		}
		attrs := map[string]string{}
		for _, f := range fields {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				attrs = nil
				break
			}
			attrs[strings.TrimSpace(strings.ToLower(k))] = v
		}
		switch attrs["type"] {
		case "registry":
			return true
		case "image", "moby":
			if push, _ := strconv.ParseBool(attrs["push"]); push {
				return true
			}
		}
	}
	return false
}

// splitCSV splits one CSV line as buildx does, with
// github.com/tonistiigi/go-csvvalue's default parser: the comma-separated
// flag values (--output, --attest …).
func splitCSV(line string) ([]string, error) { return csvvalue.Fields(line, nil) }
