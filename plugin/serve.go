package plugin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/docker-trustcache/docker-trustcache/internal/app/gateway"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/endpoint"
	"github.com/docker-trustcache/docker-trustcache/verify"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

type serveOptions struct {
	buildkit     string
	listen       string
	policy       string
	logFormat    string
	drainTimeout time.Duration
	noLedger     bool
	// Mutual TLS on --listen tcp://, and to a buildkitd on tcp://.
	tlsCert, tlsKey, tlsCA                        string
	bkTLSCert, bkTLSKey, bkTLSCA, bkTLSServerName string
	// Who may build: unix socket peers, TLS certificate subjects.
	allowUIDs, allowGIDs, allowSubjects []string
}

func newServeCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts serveOptions
	cmd := &cobra.Command{
		Use:   "serve --buildkit ADDR [OPTIONS]",
		Short: "Run a gateway in front of buildkitd that verifies every cache import",
		Long: `Serve BuildKit's API on --listen and forward every call to the buildkitd at
--buildkit, verifying every cache import of every build against the policy,
whichever client builds (buildx with the remote driver, buildctl, bake,
compose). Trusted registry caches are imported through the verified content
endpoint, pinned to the verified digest; untrusted or inconclusive ones are
removed from the build, or fail it (policy onUntrusted: fail); other cache
types are removed unless the policy's allowUnsignedTypes lists them.

Builds belong to the client that opened them: a client is its uid on a
unix socket (SO_PEERCRED), its certificate over TLS. A build's frontend
calls, status, history and session, and every session a request names,
are forwarded only for that client; other calls naming them, and methods
the gateway does not list, are refused and logged. Who may connect at
all: --allow-uid and --allow-gid on a unix socket (default: the user
running serve, and root), --allow-subject over TLS (default: every
certificate the CA signed); others are refused at connection. One
builder serves one trust level: never let a pull-request job use the
builder protected jobs use (its local cache, secrets and cache mounts are
shared with every client); caches cross levels through the signed
registry cache.

A frontend image runs inside buildkitd, out of the gateway's sight: a
"# syntax=" line is not followed (the built-in Dockerfile frontend
builds), and an image named with BUILDKIT_SYNTAX or --frontend gateway.v0
runs only when the policy's frontends list names it pinned by digest.

buildkitd must run on this host (unix:// or a loopback tcp:// address): it
imports verified caches from 127.0.0.1. On tcp:// the gateway serves only
with mutual TLS (--tls-cert, --tls-key, --tls-cacert: every client presents
a certificate the CA signed), and reaches a buildkitd that requires TLS with
--buildkit-tls-cacert/-cert/-key. Decisions are logged to stderr, one
line per import. SIGHUP reloads the policy (a policy that does not load
keeps the old one); SIGTERM and SIGINT stop accepting calls and let running
builds finish for up to --drain-timeout.

Exit status: 0 after a graceful stop; 2 when it cannot start (bad flag,
policy that does not load, buildkitd unreachable, socket in use); 1 when
serving fails.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sigs)
			return withStatus(runServe(cmd.Context(), dockerCLI, env, dockerCLI.Err(), opts, sigs))
		},
	}
	cmd.Example = serveExample
	addServeFlags(cmd.Flags(), &opts)
	return cmd
}

// addServeFlags registers serve's flags into opts.
func addServeFlags(flags *pflag.FlagSet, opts *serveOptions) {
	flags.StringVar(&opts.buildkit, "buildkit", "", "buildkitd address: unix://PATH or tcp://127.0.0.1:PORT (required)")
	flags.StringVar(&opts.listen, "listen", gateway.DefaultListen, "Address to serve on: unix://PATH (socket mode 0660), or tcp://HOST:PORT with --tls-cert, --tls-key and --tls-cacert")
	addPolicyFlag(flags, &opts.policy, "Policy file (default: $TRUSTCACHE_POLICY, the docker config dir)")
	flags.StringVar(&opts.logFormat, "log-format", "text", `Log format: "text" or "json"`)
	flags.DurationVar(&opts.drainTimeout, "drain-timeout", 5*time.Minute, "On SIGTERM or SIGINT, how long running builds may take to finish")
	flags.BoolVar(&opts.noLedger, "no-ledger", false, "Verify without the local ledger of digests verified before")
	flags.StringVar(&opts.tlsCert, "tls-cert", "", "The gateway's TLS certificate (PEM), for --listen tcp://")
	flags.StringVar(&opts.tlsKey, "tls-key", "", "The key of --tls-cert (PEM)")
	flags.StringVar(&opts.tlsCA, "tls-cacert", "", "CA certificates (PEM) that sign the clients' certificates: every client must present one")
	flags.StringVar(&opts.bkTLSCA, "buildkit-tls-cacert", "", "CA certificate (PEM) that signed buildkitd's certificate, for --buildkit tcp:// with TLS")
	flags.StringVar(&opts.bkTLSCert, "buildkit-tls-cert", "", "The gateway's client certificate (PEM) for buildkitd")
	flags.StringVar(&opts.bkTLSKey, "buildkit-tls-key", "", "The key of --buildkit-tls-cert (PEM)")
	flags.StringVar(&opts.bkTLSServerName, "buildkit-tls-servername", "", "Name buildkitd's certificate must carry (default: the host of --buildkit)")
	flags.StringSliceVar(&opts.allowUIDs, "allow-uid", nil, "Users (uid or name) who may build on a unix:// --listen, besides the user running serve and root")
	flags.StringSliceVar(&opts.allowGIDs, "allow-gid", nil, "Groups (gid or name) whose members (primary or supplementary) may build on a unix:// --listen")
	flags.StringSliceVar(&opts.allowSubjects, "allow-subject", nil, "Glob patterns of the client certificates' subject CN or SANs that may build on a tcp:// --listen (default: any certificate --tls-cacert signed)")
}

// newLogger returns the decision logger: text for people, JSON for
// collectors.
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, usagef("--log-format: unknown format %q (want text or json)", format)
}

// admission is who may connect: on a unix socket the user running serve,
// root, and --allow-uid/--allow-gid; over TLS the certificates
// --allow-subject matches (all the CA signed when none is given).
func admission(opts serveOptions) (gateway.Admission, error) {
	a := gateway.DefaultAdmission()
	tcp := strings.HasPrefix(opts.listen, "tcp://")
	if tcp && (len(opts.allowUIDs) > 0 || len(opts.allowGIDs) > 0) {
		return a, usagef("--allow-uid and --allow-gid admit unix socket clients; on --listen %s admit certificates with --allow-subject", opts.listen)
	}
	if !tcp && len(opts.allowSubjects) > 0 {
		return a, usagef("--allow-subject admits TLS client certificates, on a tcp:// --listen; on a unix socket use --allow-uid and --allow-gid")
	}
	for _, u := range opts.allowUIDs {
		id, err := lookupID(u, "--allow-uid", func(n string) (string, error) {
			usr, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return usr.Uid, nil
		})
		if err != nil {
			return a, err
		}
		if !slices.Contains(a.UIDs, id) {
			a.UIDs = append(a.UIDs, id)
		}
	}
	for _, g := range opts.allowGIDs {
		id, err := lookupID(g, "--allow-gid", func(n string) (string, error) {
			grp, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return grp.Gid, nil
		})
		if err != nil {
			return a, err
		}
		a.GIDs = append(a.GIDs, id)
	}
	a.Subjects = opts.allowSubjects
	if err := a.Validate(); err != nil {
		return a, usagef("--allow-subject: %w", err)
	}
	return a, nil
}

// lookupID reads a numeric id, or looks a name up.
func lookupID(v, flag string, lookup func(string) (string, error)) (uint32, error) {
	if v == "" {
		return 0, usagef("%s: empty entry", flag)
	}
	s := v
	if _, err := strconv.ParseUint(v, 10, 32); err != nil {
		if s, err = lookup(v); err != nil {
			return 0, usagef("%s %s: not a number, and %v", flag, v, err)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, usagef("%s %s: %v", flag, v, err)
	}
	return uint32(n), nil
}

// runServe serves until a signal on sigs (SIGTERM, SIGINT: stop; SIGHUP:
// reload the policy) or the end of ctx.
func runServe(ctx context.Context, dockerCLI command.Cli, env *Env, errOut io.Writer, opts serveOptions, sigs <-chan os.Signal) error {
	if opts.buildkit == "" {
		return usagef("--buildkit is required: the address of the buildkitd to serve (unix://PATH)")
	}
	log, err := newLogger(errOut, opts.logFormat)
	if err != nil {
		return err
	}
	// A server reads no policy from the working directory: --policy,
	// $TRUSTCACHE_POLICY or the docker config dir's.
	path, err := findPolicy(env, opts.policy, "", errOut)
	if err != nil {
		return err
	}
	p, err := trustpolicy.Load(path)
	if err != nil {
		return usagef("policy: %w", err)
	}
	verifiers := &serveVerifiers{dockerCLI: dockerCLI, env: env, noLedger: opts.noLedger}
	defer verifiers.release()
	sec, err := newServeSecurity(opts)
	if err != nil {
		return err
	}
	cc, err := gateway.DialTLS(opts.buildkit, sec.buildkitTLS)
	if err != nil {
		return asUsage(err)
	}
	defer cc.Close()
	ep := endpoint.New(endpoint.WithKeychain(dockerKeychain{dockerCLI}), endpoint.WithLogger(log.With("component", "endpoint")))
	if err := ep.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer ep.Close()
	srv := gateway.New(cc, gateway.NewDecider(verifiers.new(p), endpointScopes(ep), log), log, sec.options...)
	if err := srv.Probe(ctx); err != nil {
		return usagef("buildkitd at %s is unreachable: %w", opts.buildkit, err)
	}
	l, err := gateway.Listen(opts.listen)
	if err != nil {
		return asUsage(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	log.Info("serving", "listen", opts.listen, "address", l.Addr().String(), "tls", sec.tls, "buildkit", opts.buildkit, "policy", p.File,
		"allowUIDs", sec.admit.UIDs, "allowGIDs", sec.admit.GIDs, "allowSubjects", sec.admit.Subjects)
	reload := func() {
		np, err := trustpolicy.Load(path)
		if err != nil {
			log.Error("policy not reloaded: keeping the policy in use", "policy", path, "error", err.Error())
			return
		}
		srv.Decider().SetVerifier(verifiers.new(np))
		log.Info("policy reloaded", "policy", np.File)
	}
	return serveUntilStopped(ctx, log, srv, opts, sigs, served, reload)
}

// serveVerifiers makes the gateway's verifiers (one at start, one at each
// reload) and releases their ledgers when serving ends.
type serveVerifiers struct {
	dockerCLI command.Cli
	env       *Env
	noLedger  bool
	releases  []func()
}

func (sv *serveVerifiers) new(p *trustpolicy.Policy) *verify.Verifier {
	v, release := newVerifier(sv.dockerCLI, sv.env, p, sv.noLedger)
	sv.releases = append(sv.releases, release)
	return v
}

func (sv *serveVerifiers) release() {
	for _, r := range sv.releases {
		r()
	}
}

// serveSecurity is who may connect to the gateway and how it talks TLS.
type serveSecurity struct {
	admit       gateway.Admission
	options     []gateway.Option // admission, and TLS on --listen
	tls         bool             // --listen serves mutual TLS
	buildkitTLS *tls.Config      // to buildkitd; nil: none
}

// newServeSecurity returns who may connect, then TLS: a tcp listener only
// with client certificates.
func newServeSecurity(opts serveOptions) (serveSecurity, error) {
	admit, err := admission(opts)
	if err != nil {
		return serveSecurity{}, err
	}
	sec := serveSecurity{admit: admit, options: []gateway.Option{gateway.WithAdmission(admit)}}
	serverFiles := gateway.TLSFiles{Cert: opts.tlsCert, Key: opts.tlsKey, CA: opts.tlsCA, CertFlag: "--tls-cert", KeyFlag: "--tls-key", CAFlag: "--tls-cacert"}
	if serverFiles.Set() {
		cfg, err := gateway.ServerTLS(serverFiles)
		if err != nil {
			return serveSecurity{}, asUsage(err)
		}
		sec.options, sec.tls = append(sec.options, gateway.WithTLS(cfg)), true
	} else if strings.HasPrefix(opts.listen, "tcp://") {
		return serveSecurity{}, usagef("--listen %s: tcp:// needs mutual TLS: --tls-cert, --tls-key and --tls-cacert (the CA that signs the clients' certificates); or listen on a unix:// socket", opts.listen)
	}
	bkFiles := gateway.TLSFiles{Cert: opts.bkTLSCert, Key: opts.bkTLSKey, CA: opts.bkTLSCA, ServerName: opts.bkTLSServerName,
		CertFlag: "--buildkit-tls-cert", KeyFlag: "--buildkit-tls-key", CAFlag: "--buildkit-tls-cacert"}
	if bkFiles.Set() || opts.bkTLSServerName != "" {
		if sec.buildkitTLS, err = gateway.ClientTLS(bkFiles); err != nil {
			return serveSecurity{}, asUsage(err)
		}
	}
	return sec, nil
}

// endpointScopes gives each build a scope of the verified content
// endpoint ep of its own, closed when the build's calls end.
func endpointScopes(ep *endpoint.Server) gateway.EndpointFunc {
	return func() (gateway.Scope, error) {
		sc, err := ep.NewScope()
		if err != nil {
			return nil, err
		}
		return sc, nil
	}
}

// serveUntilStopped waits for the end of serving: SIGTERM or SIGINT on
// sigs, or the end of ctx, drains srv; SIGHUP calls reload; a failure of
// Serve (on served) is returned.
func serveUntilStopped(ctx context.Context, log *slog.Logger, srv *gateway.Server, opts serveOptions, sigs <-chan os.Signal, served <-chan error, reload func()) error {
	for {
		select {
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				drain(log, srv, opts.drainTimeout, sig.String())
				return nil
			}
			reload()
		case <-ctx.Done():
			// The docker CLI that ran the plugin went away.
			drain(log, srv, opts.drainTimeout, "the docker CLI ended")
			return nil
		case err := <-served:
			if err == nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("serving on %s: %w", opts.listen, err)
		}
	}
}

// drain stops srv accepting calls and waits up to timeout for the running
// ones.
func drain(log *slog.Logger, srv *gateway.Server, timeout time.Duration, why string) {
	log.Info("stopping: waiting for running calls", "reason", why, "drainTimeout", timeout.String())
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	srv.Shutdown(dctx)
	if dctx.Err() != nil {
		log.Warn("stopped: calls still running after the drain timeout were ended")
	} else {
		log.Info("stopped")
	}
}
