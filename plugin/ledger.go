package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/verify"
)

// ledgerPath is the verification ledger's file: trustcache/ledger.db in
// the docker config dir ($DOCKER_CONFIG, default ~/.docker).
func (e *Env) ledgerPath() string {
	return filepath.Join(e.ConfigDir, "trustcache", "ledger.db")
}

// openLedger opens the verification ledger, or returns nil when noLedger
// (--no-ledger) is set.
func openLedger(env *Env, noLedger bool) (*verify.Ledger, error) {
	if noLedger {
		return nil, nil
	}
	return verify.OpenLedger(env.ledgerPath())
}

func newLedgerCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ledger",
		Example: ledgerExample,
		Short:   "List and prune the digests this host verified",
		Long: `The ledger is the list of cache digests this host verified as trusted, or
signed itself (sign, build --sign) and its policy trusts on that signature,
kept in trustcache/ledger.db in the docker config dir. A digest in it is trusted
again without fetching its signatures, under the same policy (any change to
the policy, its keys or revocations invalidates the entries) and until the
entry expires: when its oldest signature passes the scope's maxAge, or a day
after the verification when the scope sets no maxAge. A tag is still
resolved to its digest. It also remembers, for an hour, how each registry
answered the unauthenticated /v2/ ping (status and auth challenge, never
credentials or tokens), so a warm verification of a tag is one request.
--no-ledger bypasses it (verify, build, bake, provenance, serve); sign
--no-ledger does not record what it signed.`,
		Args: noSubcommand,
		RunE: showHelp,
	}
	cmd.AddCommand(newLedgerLsCommand(dockerCLI, env), newLedgerPruneCommand(dockerCLI, env))
	return cmd
}

type ledgerLsOptions struct {
	format string
}

func newLedgerLsCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts ledgerLsOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Example: ledgerLsExample,
		Aliases: []string{"list"},
		Short:   "List the ledger's entries",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.format != "text" && opts.format != "json" {
				return withStatus(usagef("--format: unknown format %q (want text or json)", opts.format))
			}
			return withStatus(runLedgerLs(cmd.Context(), env, dockerCLI.Out(), dockerCLI.Err(), opts, time.Now()))
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "text", `Output format: "text" or "json" (one JSON object per line)`)
	return cmd
}

// ledgerRow is one entry as listed: the entry and whether it is still
// valid.
type ledgerRow struct {
	verify.LedgerEntry
	Status string `json:"status"` // valid or expired
}

func runLedgerLs(ctx context.Context, env *Env, out, errOut io.Writer, opts ledgerLsOptions, now time.Time) error {
	l, err := openLedger(env, false)
	if err != nil {
		return err
	}
	defer l.Close()
	entries, err := ledgerEntries(ctx, errOut, l)
	if err != nil {
		return err
	}
	rows := make([]ledgerRow, len(entries))
	for i, e := range entries {
		rows[i] = ledgerRow{LedgerEntry: e, Status: "valid"}
		if e.Expired(now) {
			rows[i].Status = "expired"
		}
	}
	if opts.format == "json" {
		enc := json.NewEncoder(out)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REFERENCE\tSIGNERS\tEXPIRES\tSTATUS")
	for _, r := range rows {
		signers := make([]string, len(r.Signers))
		for i, s := range r.Signers {
			signers[i] = s.Builder
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(r.Pinned()), printable(strings.Join(signers, ",")), r.Expires.UTC().Format(time.RFC3339), r.Status)
	}
	return tw.Flush()
}

// ledgerEntries reads the entries; a corrupt ledger (which the read moved
// aside and replaced) is a warning and no entries.
func ledgerEntries(ctx context.Context, errOut io.Writer, l *verify.Ledger) ([]verify.LedgerEntry, error) {
	entries, err := l.Entries(ctx)
	var corrupt *verify.LedgerCorruptError
	if errors.As(err, &corrupt) {
		fmt.Fprintf(errOut, "warning: %v\n", err)
		return nil, nil
	}
	return entries, err
}

type ledgerPruneOptions struct {
	all bool
}

func newLedgerPruneCommand(dockerCLI command.Cli, env *Env) *cobra.Command {
	var opts ledgerPruneOptions
	cmd := &cobra.Command{
		Use:     "prune [OPTIONS]",
		Example: ledgerPruneExample,
		Short:   "Remove expired entries from the ledger",
		Long: `Remove the expired entries from the ledger, or every entry with --all: the
next verification of each digest fetches its signatures again. Remembered
registry pings are pruned too (not counted). Prints how many entries were
removed.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(runLedgerPrune(cmd.Context(), env, dockerCLI.Out(), dockerCLI.Err(), opts, time.Now()))
		},
	}
	cmd.Flags().BoolVar(&opts.all, "all", false, "Remove every entry, not only the expired ones")
	return cmd
}

func runLedgerPrune(ctx context.Context, env *Env, out, errOut io.Writer, opts ledgerPruneOptions, now time.Time) error {
	l, err := openLedger(env, false)
	if err != nil {
		return err
	}
	defer l.Close()
	n, err := l.Prune(ctx, now, opts.all)
	var corrupt *verify.LedgerCorruptError
	if errors.As(err, &corrupt) {
		// The corrupt file was moved aside; the new ledger is empty.
		fmt.Fprintf(errOut, "warning: %v\n", err)
		err = nil
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "removed %d %s\n", n, plural(n, "entry", "entries"))
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
