package buildargs

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
)

// This file reads `docker trustcache bake`: its command line, the way
// `docker buildx bake` v0.38.2 reads its own, and the bake definition
// `docker buildx bake --print` writes, as far as trustcache needs it.
//
// The flag set mirrors github.com/docker/buildx@v0.38.2:
//
//   - commands/bake.go bakeCmd: the documented flags and the hidden,
//     deprecated --list-targets and --list-variables;
//   - commands/build.go commonBuildFlags: --no-cache, --progress, --pull,
//     --metadata-file;
//   - commands/root.go rootFlags (persistent): --builder, -D/--debug;
//   - cobra's -h/--help.
//
// Update it with flags.go whenever the buildx trustcache supports changes.

// bakeFlagDefs is the flag set of `docker buildx bake` v0.38.2.
var bakeFlagDefs = []flagDef{
	// commands/bake.go bakeCmd.
	{name: "file", short: 'f', kind: needsValue}, // stringArray
	{name: "load", kind: boolean},
	{name: "push", kind: boolean},
	{name: "sbom", kind: needsValue},
	{name: "provenance", kind: needsValue},
	{name: "policy", kind: needsValue}, // buildx's source policy options, not ours
	{name: "set", kind: needsValue},    // stringArray
	{name: "var", kind: needsValue},    // stringArray
	{name: "call", kind: needsValue},
	{name: "allow", kind: needsValue},
	{name: "jobs", short: 'j', kind: needsValue},
	{name: "check", kind: boolean}, // VarPF with NoOptDefVal "true"
	{name: "print", kind: boolean},
	{name: "list", kind: needsValue},
	{name: "list-targets", kind: boolean},   // hidden, deprecated
	{name: "list-variables", kind: boolean}, // hidden, deprecated

	// commands/build.go commonBuildFlags.
	{name: "no-cache", kind: boolean},
	{name: "progress", kind: needsValue},
	{name: "pull", kind: boolean},
	{name: "metadata-file", kind: needsValue},

	// commands/root.go rootFlags (persistent).
	{name: "builder", kind: needsValue},
	{name: "debug", short: 'D', kind: boolean},

	// cobra's default help flag.
	{name: "help", short: 'h', kind: boolean},
}

// bakeFlags is built on first use, as knownFlags.
var bakeFlags = sync.OnceValue(func() flagTable {
	t := flagTable{long: map[string]flagEntry{}, short: map[byte]flagEntry{}}
	for _, set := range []struct {
		defs  []flagDef
		trust bool
	}{{bakeFlagDefs, false}, {trustFlags, true}} {
		for _, d := range set.defs {
			if _, dup := t.long[d.name]; dup {
				panic("buildargs: duplicate bake flag --" + d.name)
			}
			e := flagEntry{flagDef: d, trust: set.trust}
			t.long[d.name] = e
			if d.short != 0 {
				t.short[d.short] = e
			}
		}
	}
	return t
})

// BakeInvocation is a parsed `docker trustcache bake` command line.
type BakeInvocation struct {
	Tokens []Token   // every argument, in order
	Flags  []FlagUse // every known flag occurrence, in order

	// Args are the positional arguments: targets and groups, the first
	// possibly a remote definition's URL (then perhaps its context).
	Args []string

	Trust Options

	// The buildx flags the wrapper needs to know about, as given. Single
	// values hold the last occurrence; lists hold all.
	Files        []string // -f/--file values
	Builder      string   // --builder
	MetadataFile string   // --metadata-file
	// Print is --print; List is --list, or "targets" or "variables" for
	// the deprecated --list-targets and --list-variables when --list is
	// empty. With either, buildx builds nothing.
	Print bool
	List  string
	Help  bool // -h/--help: buildx prints help and builds nothing
}

// ParseBake reads args, the arguments after `docker trustcache bake`, as
// `docker buildx bake` v0.38.2 reads its own: the rules of Parse, with
// bake's flags, and any number of positional arguments. Every error is a
// *UsageError.
func ParseBake(args []string) (*BakeInvocation, error) {
	inv := &BakeInvocation{}
	var listTargets, listVars bool
	s := scanner{args: args, table: bakeFlags(), tokens: &inv.Tokens, flags: &inv.Flags, trust: &inv.Trust}
	s.apply = func(u FlagUse, b bool) error {
		value := u.Value
		switch u.Name {
		case "file":
			inv.Files = append(inv.Files, value)
		case "builder":
			inv.Builder = value
		case "metadata-file":
			inv.MetadataFile = value
		case "print":
			inv.Print = b
		case "list":
			inv.List = value
		case "list-targets":
			listTargets = b
		case "list-variables":
			listVars = b
		case "help":
			inv.Help = b
		}
		return nil
	}
	if err := s.run(); err != nil {
		return nil, err
	}
	for _, i := range s.positional {
		inv.Args = append(inv.Args, args[i])
	}
	// As bakeCmd's RunE: --list wins over the deprecated flags.
	if inv.List == "" {
		switch {
		case listTargets:
			inv.List = "targets"
		case listVars:
			inv.List = "variables"
		}
	}
	return inv, nil
}

// BuildxArgs returns the argv for `docker buildx bake`: the arguments given
// to ParseBake with trustcache's flags taken out, every other token byte
// for byte and in order, and extra inserted after the last flag (before
// "--" when there is one), so that buildx reads extra after every flag the
// user gave: for a repeated flag (--set), extra comes last.
func (inv *BakeInvocation) BuildxArgs(extra ...string) []string {
	out := make([]string, 0, len(inv.Tokens)+len(extra))
	inserted := false
	for _, tok := range inv.Tokens {
		switch tok.Kind {
		case KindTrustFlag, KindTrustValue:
			continue
		case KindDashDash:
			if !inserted {
				out = append(out, extra...)
				inserted = true
			}
		}
		out = append(out, tok.Arg)
	}
	if !inserted {
		out = append(out, extra...)
	}
	return out
}

// BakeTarget is one target of a bake definition, as far as trustcache
// reads it.
type BakeTarget struct {
	Name      string
	CacheFrom []cachespec.Spec // in the order buildx printed them
	CacheTo   []cachespec.Spec
	// Pushes says whether an output pushes to a registry: type registry,
	// or type image or moby with push=true (as Invocation.Pushes).
	Pushes bool
}

// bakeTargetName is the target name grammar of buildx v0.38.2
// (bake/bake.go targetNamePattern). A name outside it could not be
// addressed by --set NAME.key=value.
var bakeTargetName = lazyregexp.New(`^[a-zA-Z0-9_-]+$`)

// ParseBakeDefinition reads the JSON `docker buildx bake --print` v0.38.2
// writes ({"group": {…}, "target": {NAME: {…}}}) and returns its targets,
// sorted by name. A cache or output entry is an object of strings with its
// type under "type" (buildflags.CacheOptionsEntry.MarshalJSON; the
// attribute names kept as written), or, as older buildx wrote them, a
// string in the --cache-from grammar (cachespec.ParseFlag). Anything else is an
// error, as is a target name buildx would not accept.
func ParseBakeDefinition(data []byte) ([]BakeTarget, error) {
	var def struct {
		Target map[string]*struct {
			CacheFrom []json.RawMessage `json:"cache-from"`
			CacheTo   []json.RawMessage `json:"cache-to"`
			Output    []json.RawMessage `json:"output"`
		} `json:"target"`
	}
	if err := json.Unmarshal(data, &def); err != nil {
		return nil, fmt.Errorf("parsing the bake definition: %w", err)
	}
	names := make([]string, 0, len(def.Target))
	for n := range def.Target {
		names = append(names, n)
	}
	sort.Strings(names)
	targets := make([]BakeTarget, 0, len(names))
	for _, n := range names {
		if !bakeTargetName.MatchString(n) {
			return nil, fmt.Errorf("bake definition: target name %q: only [a-zA-Z0-9_-] are allowed", n)
		}
		t := BakeTarget{Name: n}
		raw := def.Target[n]
		if raw == nil {
			targets = append(targets, t)
			continue
		}
		var err error
		if t.CacheFrom, err = bakeCacheEntries(raw.CacheFrom); err != nil {
			return nil, fmt.Errorf("bake definition: target %q: cache-from: %w", n, err)
		}
		if t.CacheTo, err = bakeCacheEntries(raw.CacheTo); err != nil {
			return nil, fmt.Errorf("bake definition: target %q: cache-to: %w", n, err)
		}
		for _, o := range raw.Output {
			attrs, err := bakeOutputAttrs(o)
			if err != nil {
				return nil, fmt.Errorf("bake definition: target %q: output: %w", n, err)
			}
			if outputPushes(attrs) {
				t.Pushes = true
			}
		}
		targets = append(targets, t)
	}
	return targets, nil
}

func bakeCacheEntries(raws []json.RawMessage) ([]cachespec.Spec, error) {
	var specs []cachespec.Spec
	for _, raw := range raws {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			more, err := cachespec.ParseFlag(s)
			if err != nil {
				return nil, err
			}
			specs = append(specs, more...)
			continue
		}
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("entry %s: want an object of strings or a string", raw)
		}
		spec := cachespec.Spec{Type: m["type"]}
		if spec.Type == "" {
			return nil, fmt.Errorf("entry %s: type required", raw)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "type" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			spec.Attrs = append(spec.Attrs, cachespec.Attr{Key: k, Value: m[k]})
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// bakeOutputAttrs reads one output entry: an object of strings (buildx
// v0.38.2), or a string in the --output grammar.
func bakeOutputAttrs(raw json.RawMessage) (map[string]string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return outputAttrs(s), nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("entry %s: want an object of strings or a string", raw)
	}
	return m, nil
}

// outputAttrs reads an --output value with buildx's grammar
// (util/buildflags/export.go); nil for a value that names no type (a local
// directory, "-") or that buildx would refuse.
func outputAttrs(o string) map[string]string {
	if o == "" {
		return nil
	}
	fields, err := splitCSV(o)
	if err != nil {
		return nil
	}
	if len(fields) == 1 && fields[0] == o && !strings.HasPrefix(o, "type=") {
		return nil
	}
	attrs := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil
		}
		attrs[strings.TrimSpace(strings.ToLower(k))] = v
	}
	return attrs
}

// outputPushes says whether an output with attrs pushes to a registry.
func outputPushes(attrs map[string]string) bool {
	switch attrs["type"] {
	case "registry":
		return true
	case "image", "moby":
		push, _ := strconv.ParseBool(attrs["push"])
		return push
	}
	return false
}
