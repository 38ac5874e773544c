package buildargs

import "sync"

// This file mirrors the flag set of `docker buildx build` in buildx v0.38.2
// (github.com/docker/buildx@v0.38.2):
//
//   - commands/build.go buildCmd: the documented flags, the hidden legacy
//     resource flags (-m/--memory, --memory-swap, -c/--cpu-shares,
//     --cpu-period, --cpu-quota, --cpuset-cpus, --cpuset-mems) and the classic
//     `docker build` flags that buildx accepts and ignores (--compress,
//     --isolation, --security-opt, --squash, --rm, --force-rm), plus the
//     hidden experimental --print;
//   - commands/build.go commonBuildFlags: --no-cache, --progress, --pull,
//     --metadata-file;
//   - commands/root.go rootFlags: the persistent --builder and -D/--debug,
//     which every buildx subcommand inherits;
//   - cobra's -h/--help.
//
// Classic `docker build` flags that buildx v0.38.2 does NOT define are not
// here, so Parse rejects them as buildx does: --disable-content-trust, --stream.
// (`docker build` forwards its argv to buildx untouched when buildx is the
// builder, so these fail there too.)
//
// Update this table, and the version above, whenever the buildx that
// trustcache supports changes: a value flag missing here makes `--flag value`
// an error, and a value flag mistaken for a boolean would shift every later
// token.

// valueKind says how a flag takes its value, as pflag sees it.
type valueKind int

const (
	// needsValue: `--f=v`, `--f v`, `-fv`, `-f=v`, `-f v`. The next token is
	// taken as the value whatever it looks like ("--", "-x", "").
	needsValue valueKind = iota + 1
	// boolean: pflag NoOptDefVal "true". `--f` and `-f` mean true; a value
	// can only be given joined (`--f=false`, `-f=false`) and must parse with
	// strconv.ParseBool. `--f false` is the flag followed by a positional.
	boolean
)

type flagDef struct {
	name  string    // long name, without "--"
	short byte      // shorthand letter, 0 if none
	kind  valueKind // how it takes a value
}

// buildxFlags is the flag set of `docker buildx build` v0.38.2.
var buildxFlags = []flagDef{
	// commands/build.go buildCmd, documented.
	{name: "add-host", kind: needsValue}, // stringSlice
	{name: "allow", kind: needsValue},
	{name: "annotation", kind: needsValue},
	{name: "build-arg", kind: needsValue},
	{name: "cache-from", kind: needsValue},
	{name: "cache-to", kind: needsValue},
	{name: "cgroup-parent", kind: needsValue},
	{name: "build-context", kind: needsValue},
	{name: "file", short: 'f', kind: needsValue},
	{name: "iidfile", kind: needsValue},
	{name: "label", kind: needsValue},
	{name: "load", kind: boolean},
	{name: "network", kind: needsValue},
	{name: "no-cache-filter", kind: needsValue},
	{name: "output", short: 'o', kind: needsValue},
	{name: "platform", kind: needsValue},
	{name: "policy", kind: needsValue}, // buildx's source policy, not ours: see trustFlags
	{name: "push", kind: boolean},
	{name: "quiet", short: 'q', kind: boolean},
	{name: "secret", kind: needsValue},
	{name: "shm-size", kind: needsValue}, // bytes
	{name: "ssh", kind: needsValue},
	{name: "tag", short: 't', kind: needsValue},
	{name: "target", kind: needsValue},
	{name: "ulimit", kind: needsValue},
	{name: "resource", kind: needsValue},
	{name: "attest", kind: needsValue},
	{name: "sbom", kind: needsValue},       // a string: `--sbom` alone is an error
	{name: "provenance", kind: needsValue}, // a string: `--provenance` alone is an error
	{name: "call", kind: needsValue},
	{name: "check", kind: boolean}, // VarPF with NoOptDefVal "true"; value parsed by strconv.ParseBool

	// commands/build.go buildCmd, hidden.
	{name: "print", kind: needsValue}, // experimental, writes --call
	{name: "memory", short: 'm', kind: needsValue},
	{name: "memory-swap", kind: needsValue},
	{name: "cpu-shares", short: 'c', kind: needsValue},
	{name: "cpu-period", kind: needsValue},
	{name: "cpu-quota", kind: needsValue},
	{name: "cpuset-cpus", kind: needsValue},
	{name: "cpuset-mems", kind: needsValue},
	{name: "compress", kind: boolean},
	{name: "isolation", kind: needsValue},
	{name: "security-opt", kind: needsValue}, // stringSlice
	{name: "squash", kind: boolean},
	{name: "rm", kind: boolean},
	{name: "force-rm", kind: boolean},

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

// Trustcache's own flag names. They are taken out of the argv and never
// reach buildx. None has a shorthand, so each is always a whole token.
//
// buildx v0.38.2 has --policy (source policy files, "filename=path,…"), so
// trustcache's policy flag is --trust-policy; --policy passes through to
// buildx. --sign, --key, --sign-annotation (buildx has --annotation),
// --trust-report, --no-ledger, --signature-format, --keyless,
// --identity-token and --signing-config do not exist in buildx
// v0.38.2 and keep their names.
const (
	FlagPolicy          = "trust-policy"
	FlagSign            = "sign"
	FlagKey             = "key"
	FlagSignAnnotation  = "sign-annotation"
	FlagReport          = "trust-report"
	FlagNoLedger        = "no-ledger"
	FlagSignatureFormat = "signature-format"
	FlagKeyless         = "keyless"
	FlagIdentityToken   = "identity-token"
	FlagSigningConfig   = "signing-config"
)

var trustFlags = []flagDef{
	{name: FlagPolicy, kind: needsValue},
	{name: FlagSign, kind: boolean},
	{name: FlagKey, kind: needsValue},
	{name: FlagSignAnnotation, kind: needsValue},
	{name: FlagReport, kind: needsValue},
	{name: FlagNoLedger, kind: boolean},
	{name: FlagSignatureFormat, kind: needsValue},
	{name: FlagKeyless, kind: boolean},
	{name: FlagIdentityToken, kind: needsValue},
	{name: FlagSigningConfig, kind: needsValue},
}

// flagTable indexes the flags Parse knows. It is built once and never
// changed.
type flagTable struct {
	long  map[string]flagEntry
	short map[byte]flagEntry
}

type flagEntry struct {
	flagDef
	trust bool // a trustcache flag, removed from the buildx argv
}

// knownFlags is built on first use, not at start-up (every command pays
// package initialisation; only build parses its arguments).
var knownFlags = sync.OnceValue(newFlagTable)

func newFlagTable() flagTable {
	t := flagTable{long: map[string]flagEntry{}, short: map[byte]flagEntry{}}
	add := func(defs []flagDef, trust bool) {
		for _, d := range defs {
			if _, dup := t.long[d.name]; dup {
				panic("buildargs: duplicate flag --" + d.name)
			}
			e := flagEntry{flagDef: d, trust: trust}
			t.long[d.name] = e
			if d.short != 0 {
				if _, dup := t.short[d.short]; dup {
					panic("buildargs: duplicate shorthand -" + string(d.short))
				}
				t.short[d.short] = e
			}
		}
	}
	add(buildxFlags, false)
	add(trustFlags, true)
	return t
}
