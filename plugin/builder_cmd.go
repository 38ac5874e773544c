package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/app/trustedbuilder"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
)

// newBuilderCommand is "docker trustcache builder": trusted builders, a
// BuildKit with the gateway in front of it, registered with buildx
// (docs/builder.md).
func newBuilderCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "builder",
		Short:   "Create and manage trusted builders: BuildKit behind the gateway, for every client",
		Example: builderExample,
		Args:    noSubcommand,
		RunE:    showHelp,
	}
	cmd.AddCommand(
		newBuilderCreateCommand(dockerCLI, env),
		newBuilderRmCommand(dockerCLI, env),
		newBuilderLsCommand(dockerCLI, env),
		newBuilderInspectCommand(dockerCLI, env),
		newBuilderLogsCommand(dockerCLI, env),
		newBuilderReloadCommand(dockerCLI, env),
	)
	return cmd
}

// builderDocker is the docker CLI the builder commands run: the one that
// ran the plugin, with its global options (context, host, config).
func builderDocker(env *Env) trustedbuilder.Docker {
	bin, globals := dockerCommand(env, pluginName)
	return trustedbuilder.Docker{Bin: bin, Globals: globals}
}

// dockerConfigDir is the docker config dir the builders are recorded in,
// the one buildx keeps its builders beside.
func dockerConfigDir(dockerCLI command.Cli) string {
	return filepath.Dir(dockerCLI.ConfigFile().Filename)
}

type builderCreateOptions struct {
	name          string
	use           bool
	policy        string
	buildkitImage string
	gatewayImage  string
	buildkit      string
	allow         []string
	registryAuth  bool
	timeout       time.Duration
}

func newBuilderCreateCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts builderCreateOptions
	cmd := &cobra.Command{
		Use:     "create [OPTIONS]",
		Example: builderCreateExample,
		Short:   "Start a BuildKit with the gateway in front of it and register it as a buildx builder",
		Long: `Start a BuildKit container of the local docker engine and the trustcache gateway
beside it (a container of --gateway-image, see make image), and register a
buildx builder NAME that points at the gateway's unix socket. Every client of
that builder (docker build, docker buildx build and bake, docker compose
build, CI actions) then imports only caches the policy trusts, with no change
to its command line; with --use it is buildx's current builder.

The policy (--trust-policy, else $TRUSTCACHE_POLICY, .trustcache.yaml,
the docker config dir's) is checked and copied with the key files it names
into the builder's directory: the builder enforces the policy as it was at
create. Both containers restart with the docker engine (--restart
unless-stopped). BuildKit keeps its state in a volume of its own: create one
builder per trust level (docs/builder.md).

Clients: the builder's creator and root; --allow admits more (uid:N or
N, user:NAME, gid:N, group:NAME; repeatable). A failed create removes what it
made. The builder's name is printed on stdout.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(runBuilderCreate(cmd.Context(), dockerCLI, env, opts))
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.name, "name", trustedbuilder.DefaultName, "Builder name (also the buildx builder's)")
	flags.BoolVar(&opts.use, "use", false, "Make it buildx's current builder")
	flags.StringVar(&opts.policy, "trust-policy", "", "Policy file the gateway enforces (copied at create)")
	flags.StringVar(&opts.buildkitImage, "buildkit-image", trustedbuilder.DefaultBuildkitImage, "BuildKit image (pin it by digest)")
	flags.StringVar(&opts.gatewayImage, "gateway-image", trustedbuilder.DefaultGatewayImage, "Gateway image (make image builds it)")
	flags.StringVar(&opts.buildkit, "buildkit", "", "Reuse the buildkitd at unix://PATH or tcp://127.0.0.1:PORT: start only the gateway")
	flags.StringArrayVar(&opts.allow, "allow", nil, "Also admit these clients: uid:N (or N), user:NAME, gid:N, group:NAME")
	flags.BoolVar(&opts.registryAuth, "registry-auth", false, "Give the gateway the registry credentials of this docker config (auths entries, not credential helpers)")
	flags.DurationVar(&opts.timeout, "timeout", time.Minute, "How long to wait for BuildKit and the gateway to be ready")
	return cmd
}

func runBuilderCreate(ctx context.Context, dockerCLI command.Cli, env *Env, opts builderCreateOptions) error {
	uids, gids, err := parseAllow(opts.allow)
	if err != nil {
		return asUsage(err)
	}
	path, err := findPolicy(env, opts.policy, env.workDir(), dockerCLI.Err())
	if err != nil {
		return err
	}
	start := time.Now()
	rec, err := trustedbuilder.Create(ctx, builderDocker(env), trustedbuilder.Options{
		Name:          opts.name,
		ConfigDir:     dockerConfigDir(dockerCLI),
		PolicyFile:    path,
		BuildkitImage: opts.buildkitImage,
		GatewayImage:  opts.gatewayImage,
		BuildkitAddr:  opts.buildkit,
		AllowUIDs:     uids,
		AllowGIDs:     gids,
		Use:           opts.use,
		RegistryAuth:  opts.registryAuth,
		Timeout:       opts.timeout,
	}, dockerCLI.Err())
	if err != nil {
		return err
	}
	use := ""
	if opts.use {
		use = ", now buildx's current builder"
	}
	fmt.Fprintf(dockerCLI.Err(), "builder %s ready in %s%s: docker buildx build --builder %s …\n", rec.Name, time.Since(start).Round(time.Millisecond), use, rec.Name)
	fmt.Fprintln(dockerCLI.Out(), rec.Name)
	return nil
}

// parseAllow reads --allow values: uid:N, N, user:NAME, gid:N, group:NAME.
func parseAllow(values []string) (uids, gids []uint32, err error) {
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			kind, val, ok := strings.Cut(item, ":")
			if !ok {
				kind, val = "uid", item
			}
			id, err := allowID(kind, val)
			if err != nil {
				return nil, nil, fmt.Errorf("--allow %q: %w", item, err)
			}
			if kind == "uid" || kind == "user" {
				uids = append(uids, id)
			} else {
				gids = append(gids, id)
			}
		}
	}
	return uids, gids, nil
}

func allowID(kind, val string) (uint32, error) {
	var s string
	switch kind {
	case "uid", "gid":
		s = val
	case "user":
		u, err := user.Lookup(val)
		if err != nil {
			return 0, err
		}
		s = u.Uid
	case "group":
		g, err := user.LookupGroup(val)
		if err != nil {
			return 0, err
		}
		s = g.Gid
	default:
		return 0, fmt.Errorf("want uid:N, user:NAME, gid:N or group:NAME")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a numeric id", s)
	}
	return uint32(n), nil
}

func newBuilderRmCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Example: builderRmExample,
		Short:   "Remove a trusted builder: its containers, volumes, socket directory and buildx builder",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := trustedbuilder.Remove(cmd.Context(), builderDocker(env), dockerConfigDir(dockerCLI), args[0], dockerCLI.Err())
			return withStatus(err)
		},
	}
}

func newBuilderLsCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Example: builderLsExample,
		Short:   "List the trusted builders of this docker config",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := trustedbuilder.List(dockerConfigDir(dockerCLI))
			if err != nil {
				return withStatus(err)
			}
			d := builderDocker(env)
			tw := tabwriter.NewWriter(dockerCLI.Out(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tGATEWAY\tBUILDKIT\tPOLICY\tSOCKET")
			for _, r := range recs {
				s := trustedbuilder.Inspect(cmd.Context(), d, r, false, 0)
				bk := r.BuildkitAddr + " (reused)"
				if s.Buildkit != nil {
					bk = s.Buildkit.Status
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, s.Gateway.Status, bk, r.Policy.Source, r.Socket)
			}
			return tw.Flush()
		},
	}
}

func newBuilderInspectCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var format string
	var decisions int
	cmd := &cobra.Command{
		Use:     "inspect NAME",
		Example: builderInspectExample,
		Short:   "Show a trusted builder: containers, policy and its fingerprint, BuildKit version, last decisions",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return withStatus(usagef("--format: unknown format %q (want text or json)", format))
			}
			rec, err := trustedbuilder.Load(dockerConfigDir(dockerCLI), args[0])
			if err != nil {
				return withStatus(err)
			}
			s := trustedbuilder.Inspect(cmd.Context(), builderDocker(env), rec, true, decisions)
			if format == "json" {
				enc := json.NewEncoder(dockerCLI.Out())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printBuilderStatus(dockerCLI, s)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", `Output format: "text" or "json"`)
	cmd.Flags().IntVar(&decisions, "decisions", 5, "How many of the gateway's last decisions to show")
	return cmd
}

func printBuilderStatus(dockerCLI command.Cli, s *trustedbuilder.Status) {
	w := tabwriter.NewWriter(dockerCLI.Out(), 0, 4, 1, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	row("Name", s.Name)
	row("Created", s.Created.Format(time.RFC3339))
	row("Socket", "unix://"+s.Socket)
	row("Gateway", fmt.Sprintf("%s %s (image %s, user %s, restarts %s)", s.Gateway.Name, s.Gateway.Status, s.GatewayImage, s.GatewayUser, s.Gateway.Restarts))
	if s.Buildkit != nil {
		row("BuildKit", fmt.Sprintf("%s %s (image %s, volumes %s)", s.Buildkit.Name, s.Buildkit.Status, s.BuildkitImage, strings.Join(s.Volumes, ", ")))
	} else {
		row("BuildKit", s.BuildkitAddr+" (reused, not managed by this builder)")
	}
	if s.BuildkitVersion != "" {
		row("BuildKit version", s.BuildkitVersion)
	} else {
		row("BuildKit version", "unknown: "+s.BuildkitError)
	}
	row("Policy", fmt.Sprintf("%s (copied from %s)", s.Policy.File, s.Policy.Source))
	row("Policy digest", s.Policy.Digest)
	row("Policy fingerprint", s.Policy.Fingerprint)
	var allowed []string
	for _, u := range s.AllowUIDs {
		allowed = append(allowed, "uid:"+strconv.FormatUint(uint64(u), 10))
	}
	for _, g := range s.AllowGIDs {
		allowed = append(allowed, "gid:"+strconv.FormatUint(uint64(g), 10))
	}
	row("Clients", strings.Join(append([]string{"its creator", "root"}, allowed...), ", "))
	_ = w.Flush()
	if len(s.Decisions) > 0 {
		fmt.Fprintln(dockerCLI.Out(), "Last decisions:")
		for _, d := range s.Decisions {
			fmt.Fprintf(dockerCLI.Out(), "  %s\n", d)
		}
	}
}

func newBuilderLogsCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var follow bool
	var tail string
	cmd := &cobra.Command{
		Use:     "logs NAME",
		Example: builderLogsExample,
		Short:   "Show the gateway's log: one line per decision (JSON)",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := trustedbuilder.Load(dockerConfigDir(dockerCLI), args[0])
			if err != nil {
				return withStatus(err)
			}
			d := builderDocker(env)
			return withStatus(runDocker(cmd.Context(), d.Bin, append(d.Globals, trustedbuilder.LogsArgs(rec, follow, tail)...), cliStreams(dockerCLI)))
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "Follow the log")
	cmd.Flags().StringVar(&tail, "tail", "", "Show only the last N lines")
	return cmd
}

func newBuilderReloadCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var policy string
	cmd := &cobra.Command{
		Use:     "reload [--trust-policy FILE] NAME",
		Example: builderReloadExample,
		Short:   "Copy the policy again and have the gateway load it, without stopping builds",
		Long: `Copy the policy again (from --trust-policy, default the file the builder was
created from) with the key files it names, and have the builder's gateway load
it (SIGHUP): running builds go on. A policy that does not load changes
nothing: the gateway keeps the one it has, and the error says why.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := trustedbuilder.Reload(cmd.Context(), builderDocker(env), dockerConfigDir(dockerCLI), args[0], policy, 0, dockerCLI.Err())
			if err != nil {
				return withStatus(err)
			}
			fmt.Fprintln(dockerCLI.Out(), rec.Policy.Digest)
			return nil
		},
	}
	cmd.Flags().StringVar(&policy, "trust-policy", "", "Policy file to copy (default: the one the builder was created from)")
	return cmd
}
