package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cicontext"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/recordsigned"
	"github.com/docker-trustcache/docker-trustcache/internal/registry"
	"github.com/docker-trustcache/docker-trustcache/internal/signature"
	"github.com/docker-trustcache/docker-trustcache/keys"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

type signOptions struct {
	key         string
	builderName string
	annotations []string
	format      string
	policy      string
	noLedger    bool
	keyless     keylessOptions
}

func newSignCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts signOptions
	cmd := &cobra.Command{
		Use:     "sign (--key KEY | --keyless) [OPTIONS] REF [REF...]",
		Example: signExample,
		Short:   "Sign caches or images as a trusted builder",
		Long: `Sign each REF (a registry cache manifest or an image, by tag or digest) with
the builder's private key. Each tag is resolved to its manifest digest once,
before anything is written; the cosign-compatible signature is attached to
that digest in the sha256-<hex>.sig tag, next to any signatures already
there. Prints each signed REPOSITORY@DIGEST.

A signature by the same key over the same digest, repository and
annotations makes signing a no-op while it still counts: within the maxAge
of the policy's scope for the repository (a scope without maxAge: any
age), else within 24 hours. An older one is signed again ("re-signed: …"
on stderr) and, in the .sig tag, replaced.

With a policy, each signed digest the policy trusts on this signature is
recorded in the ledger (see "docker trustcache ledger"), so this host's next
build imports it without fetching the signature; one it does not trust is
reported on stderr (builds under that policy would drop it).

Signed annotations: builder (--builder-name; default: the name the policy
gives the key, else the key file's name),
created (RFC 3339), the source repo, ref, commit and run that CI variables
tell, every --annotation, and for REF:TAG the tag. Signing REF:TAG also
writes the tag's signed head record (the tag trustcache-head-TAG), which
lets a host that finds the tag forged, deleted or rolled back use its last
trusted digest instead (docs/fallback.md). Signing an unchanged digest
again writes neither.

The key password is read from TRUSTCACHE_PASSWORD, then COSIGN_PASSWORD,
then asked for on a terminal.

With --keyless there is no key: an ephemeral key is certified by Fulcio for
the identity of an OIDC token (--identity-token, else SIGSTORE_ID_TOKEN as
GitLab CI provides it, else the GitHub Actions token requested with
audience sigstore), and every signature is timestamped by the timestamp
authority (RFC 3161). The services are those of --signing-config (the JSON
"cosign signing-config create" writes), else the public-good instance.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(runSign(cmd.Context(), dockerCLI, env, opts, args))
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.key, "key", "", "Private key: a file, env://VAR (default $TRUSTCACHE_KEY)")
	flags.StringVar(&opts.builderName, "builder-name", "", "Builder name to record in the signature (default: the name the policy gives the key, else the key file's base name)")
	flags.StringArrayVarP(&opts.annotations, "annotation", "a", nil, "Extra signed annotation KEY=VALUE (repeatable)")
	flags.StringVar(&opts.format, "signature-format", "", `"legacy" (cosign v2 .sig tag) or "bundle" (sigstore bundle referrer, cosign v3) (default: the policy's signatureFormat, else legacy)`)
	addPolicyFlag(flags, &opts.policy, "Policy file whose signatureFormat is the default (default: as for verify; none needed)")
	flags.BoolVar(&opts.noLedger, "no-ledger", false, "Do not record the signed digests in the local ledger")
	flags.BoolVar(&opts.keyless.keyless, "keyless", false, "Sign with a Fulcio certificate for an OIDC identity instead of a key")
	flags.StringVar(&opts.keyless.identityToken, "identity-token", "", "OIDC token for --keyless: the token or @FILE (default $SIGSTORE_ID_TOKEN, else the GitHub Actions token)")
	flags.StringVar(&opts.keyless.signingConfig, "signing-config", "", "Sigstore signing config (Fulcio and timestamp authority URLs) for --keyless (default: the public-good instance)")
	return cmd
}

func runSign(ctx context.Context, dockerCLI command.Cli, env *Env, opts signOptions, refs []string) error {
	ann, err := parseAnnotations("--annotation", opts.annotations)
	if err != nil {
		return err
	}
	for k, v := range cicontext.Source(env.getenv) {
		if _, ok := ann[k]; !ok {
			ann[k] = v
		}
	}
	p, err := signingPolicy(env, opts.policy, env.workDir(), dockerCLI.Err())
	if err != nil {
		return err
	}
	format, err := signatureFormat(opts.format, p)
	if err != nil {
		return err
	}
	signer, err := loadSignOptionsSigner(dockerCLI, env, opts, p)
	if err != nil {
		return err
	}
	ropts := registry.Options(ctx, nil, 0, remote.WithAuthFromKeychain(dockerKeychain{dockerCLI}))
	// Resolve every ref before writing anything.
	targets, err := resolveSignTargets(refs, ann, ropts)
	if err != nil {
		return err
	}
	var v *verify.Verifier
	if p != nil {
		var done func()
		v, done = newVerifier(dockerCLI, env, p, opts.noLedger)
		defer done()
	}
	for _, t := range targets {
		sig, err := attachFresh(ctx, dockerCLI.Err(), signer, format, p, t.repo, t.digest, t.ann, ropts)
		if err != nil {
			return err
		}
		writeHead(ctx, dockerCLI.Err(), signer, p, t.repo, t.tag, t.digest, ropts)
		ref := t.repo.Name() + "@" + t.digest.String()
		fmt.Fprintf(dockerCLI.Out(), "%s\n", ref)
		if v != nil {
			recordSigned(ctx, dockerCLI.Err(), v, ref, sig)
		}
	}
	return nil
}

// loadSignOptionsSigner returns the signer sign's options ask for: keyless,
// or the key of --key (or TRUSTCACHE_KEY).
func loadSignOptionsSigner(dockerCLI command.Cli, env *Env, opts signOptions, p *trustpolicy.Policy) (signature.Signer, error) {
	if err := opts.keyless.check(opts.key); err != nil {
		return signature.Signer{}, err
	}
	if opts.keyless.keyless {
		return loadKeylessSigner(env, dockerCLI.Err(), opts.keyless, opts.builderName)
	}
	return loadSigner(dockerCLI, env, opts.key, opts.builderName, p)
}

// signTarget is one REF of sign, resolved.
type signTarget struct {
	repo   name.Repository
	digest v1.Hash
	tag    string // REF's tag: signed as the tag annotation, and its head written
	ann    map[string]string
}

// resolveSignTargets resolves every ref to its digest, with the
// annotations ann (and its tag's) to sign it with.
func resolveSignTargets(refs []string, ann map[string]string, ropts []remote.Option) ([]signTarget, error) {
	targets := make([]signTarget, len(refs))
	for i, ref := range refs {
		r, err := name.ParseReference(ref)
		if err != nil {
			return nil, usagef("invalid reference %q: %w", ref, err)
		}
		d, err := resolveDigest(r, ropts)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", ref, err)
		}
		tagAnn, err := withTag(ann, tagOf(r), ref)
		if err != nil {
			return nil, err
		}
		targets[i] = signTarget{r.Context(), d, tagOf(r), tagAnn}
	}
	return targets, nil
}

// DefaultResignAge is how old a signature by the same key over the same
// content may be before `sign` (and build/bake --sign) makes a fresh one,
// where the signer's policy sets no maxAge for the repository because there
// is no policy or no scope for it. A day: signing then never leaves a
// signature older than a day, so the digest counts under any verifier
// whose maxAge is a day or more (shorter ones are unusual: every cache
// would need a rebuild each day), and it costs at most one signature per
// digest and key a day — in the .sig tag replacing the last, so the tag
// does not grow. It is also how long the ledger trusts a signature without
// a maxAge (verify.DefaultLedgerTTL).
const DefaultResignAge = 24 * time.Hour

// resignAge is how old an equivalent signature by this signer on repo may
// be and still count, under policy p (nil: none), and how to say it: the
// scope's maxAge; 0 (any age) for a scope without one, which counts any
// age; DefaultResignAge without a policy or scope.
func resignAge(p *trustpolicy.Policy, repo name.Repository) (time.Duration, string) {
	if p != nil {
		if canon, err := trustpolicy.CanonicalRepository(repo.Name()); err == nil {
			if scope, ok := p.Match(canon); ok {
				if scope.MaxAge > 0 {
					return scope.MaxAge, "maxAge " + shortDuration(scope.MaxAge)
				}
				return 0, ""
			}
		}
	}
	return DefaultResignAge, shortDuration(DefaultResignAge) + " (the re-sign age without a policy maxAge)"
}

// shortDuration is d as a policy writes it: 720h, not 720h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func orAny(limit string) string {
	if limit == "" {
		return "any age"
	}
	return limit
}

// attachFresh signs digest in repo as Signer.AttachFresh does, with the
// re-sign age policy p sets for repo: an equivalent signature by this key
// that would no longer count is signed again (and says so on errOut), one
// that counts makes it a no-op. It returns the signature that stands for
// this signer, and an error — never success — when even that one would not
// count under p's maxAge (a clock far off, a registry that did not keep
// the new one).
func attachFresh(ctx context.Context, errOut io.Writer, signer signature.Signer, format signature.Format, p *trustpolicy.Policy, repo name.Repository, digest v1.Hash, ann map[string]string, ropts []remote.Option) (signature.Signature, error) {
	ref := repo.Name() + "@" + digest.String()
	age, limit := resignAge(p, repo)
	signer.MaxAge = age
	a, err := signer.AttachFresh(ctx, format, repo, digest, ann, ropts...)
	if err != nil {
		return a.Signature, err
	}
	switch {
	case a.Refreshed:
		why := "has no signed creation time"
		if !a.Aged.IsZero() {
			why = "from " + a.Aged.UTC().Format(time.RFC3339) + " is older than " + limit
			if a.Aged.After(time.Now().Add(signature.ClockSkew)) {
				why = "from " + a.Aged.UTC().Format(time.RFC3339) + " is dated in the future"
			}
		}
		fmt.Fprintf(errOut, "%s: re-signed: the existing signature by this key %s\n", ref, why)
	case !a.Added:
		fmt.Fprintf(errOut, "%s: already signed by this key with these annotations\n", ref)
	}
	if ok, at := signer.Fresh(a.Signature); !ok {
		return a.Signature, fmt.Errorf("%s: the signature by this key there (created %s) would not count (re-sign age %s, clock skew %s): not signed", ref, at.UTC().Format(time.RFC3339), orAny(limit), signature.ClockSkew)
	}
	return a.Signature, nil
}

// recordSigned records a digest this host has just signed in the ledger when
// the policy trusts it on that signature (internal/recordsigned), so
// that the next build here imports it without fetching the signature. When
// the policy does not, it says so: a build under that policy would not use
// what was signed.
func recordSigned(ctx context.Context, errOut io.Writer, v *verify.Verifier, ref string, sig signature.Signature) {
	out, err := recordsigned.Func(ctx, v, ref, []signature.Signature{sig})
	res, _ := out.(*verify.Result)
	if err != nil || res == nil || res.Trusted || res.Verdict == verify.VerdictSkipped {
		return
	}
	fmt.Fprintf(errOut, "note: %s is not trusted by %s on this signature: %s\n", printable(ref), v.Policy().File, printable(strings.Join(res.Reasons, "; ")))
}

// signingPolicy returns the policy signing takes its defaults from (the
// signature format, the builder name of the key), or nil when none is
// found: signing needs none. A policy named by --policy must exist, and a
// policy found must be valid.
func signingPolicy(env *Env, flag, startDir string, warn io.Writer) (*trustpolicy.Policy, error) {
	path, err := findPolicy(env, flag, startDir, warn)
	if err != nil {
		var none *noPolicyError
		if flag != "" || !errors.As(err, &none) {
			return nil, err
		}
		return nil, nil
	}
	p, err := trustpolicy.Load(path)
	if err != nil {
		return nil, asUsage(fmt.Errorf("policy: %w", err))
	}
	return p, nil
}

// signatureFormat is the format to sign in: the flag, else the policy's
// signatureFormat, else legacy.
func signatureFormat(flag string, p *trustpolicy.Policy) (signature.Format, error) {
	switch flag {
	case "legacy", "bundle":
		return signature.Format(flag), nil
	case "":
	default:
		return "", usagef("--signature-format %q: want legacy or bundle", flag)
	}
	if p == nil || p.SignatureFormat == "" {
		return signature.FormatLegacy, nil
	}
	return signature.Format(p.SignatureFormat), nil
}

// resolveDigest returns the manifest digest of r: r's own digest, or the
// digest the registry reports for the tag.
func resolveDigest(r name.Reference, ropts []remote.Option) (v1.Hash, error) {
	d, err := registry.Digest(r, ropts...)
	if registry.IsNotFound(err) {
		return v1.Hash{}, fmt.Errorf("%s does not exist in the registry", r)
	}
	return d, err
}

// loadSigner loads the private key named by the flag (or TRUSTCACHE_KEY);
// every failure is a configuration error.
//
// The builder name recorded in signatures is builderName, else the name
// policy p gives the key, else the key file's base name.
func loadSigner(dockerCLI command.Cli, env *Env, keyRef, builderName string, p *trustpolicy.Policy) (signature.Signer, error) {
	if keyRef == "" {
		keyRef = env.getenv(envKey)
	}
	if keyRef == "" {
		return signature.Signer{}, usagef("--key is required (or set %s)", envKey)
	}
	pass := keys.Password(env.lookupEnv, os.Stdin, dockerCLI.Err(), keys.IsTerminal)
	key, err := keys.LoadSigner(keyRef, pass, keys.WithWarnings(func(msg string) {
		fmt.Fprintln(dockerCLI.Err(), "WARNING:", msg)
	}))
	if err != nil {
		return signature.Signer{}, asUsage(err)
	}
	if builderName == "" && p != nil {
		if id, err := keys.ID(key.Public()); err == nil {
			if b, _, ok := p.KeyOwner(id); ok {
				builderName = b.Name
			}
		}
	}
	if builderName == "" {
		builderName = defaultBuilderName(keyRef)
	}
	return signature.Signer{Key: key, Builder: builderName}, nil
}

// defaultBuilderName is the key file's base name without extension
// ("keys/ci-main.key" → "ci-main"), or the variable's name for env://.
func defaultBuilderName(keyRef string) string {
	if v, ok := strings.CutPrefix(keyRef, keys.EnvScheme); ok {
		return strings.ToLower(v)
	}
	base := filepath.Base(keyRef)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// parseAnnotations parses KEY=VALUE flag values; flag names the flag in
// errors.
func parseAnnotations(flag string, kvs []string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, usagef("%s %q: want KEY=VALUE", flag, kv)
		}
		if signature.Reserved(k) {
			return nil, usagef("%s %q: %q is set by docker trustcache itself", flag, kv, k)
		}
		if _, dup := out[k]; dup {
			return nil, usagef("%s %q: annotation %q given twice", flag, kv, k)
		}
		out[k] = v
	}
	return out, nil
}

// signedContext renders the source context of signed annotations for text
// output: "repo=… ref=… commit=…" and any user annotations, sorted.
func signedContext(ann map[string]string) string {
	var parts []string
	for k, v := range ann {
		if signature.Reserved(k) {
			continue
		}
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
