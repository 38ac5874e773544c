package plugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/docker-trustcache/docker-trustcache/verify"
)

func ledgerTestEntry(digit string, expires time.Time) verify.LedgerEntry {
	return verify.LedgerEntry{
		Repository: "registry.example/team/cache",
		Digest:     "sha256:" + strings.Repeat(digit, 64),
		Signers: []verify.Signer{
			{Builder: "ci", KeyID: "sha256:" + strings.Repeat("a", 64), Format: "legacy", SignedAt: "2026-11-30T11:00:00Z"},
			{Builder: "release", KeyID: "sha256:" + strings.Repeat("b", 64), Format: "legacy"},
		},
		Policy:     "sha256:" + strings.Repeat("f", 64),
		VerifiedAt: time.Now().UTC().Truncate(time.Second),
		Expires:    expires.UTC().Truncate(time.Second),
	}
}

func TestLedgerPath(t *testing.T) {
	dir := isolate(t)
	if want := filepath.Join(dir, "docker-config", "trustcache", "ledger.db"); ledgerPath() != want {
		t.Errorf("ledgerPath() = %s; want %s", ledgerPath(), want)
	}
	if l, err := openLedger(true); l != nil || err != nil {
		t.Errorf("openLedger(noLedger) = %v, %v; want nil, nil", l, err)
	}
	l, err := openLedger(false)
	if err != nil || l == nil || l.Path() != ledgerPath() {
		t.Fatalf("openLedger = %v, %v; want the ledger at %s", l, err, ledgerPath())
	}
	l.Close()
}

func TestLedgerLsPrune(t *testing.T) {
	isolate(t)
	if res := run(t, "ledger", "ls"); res.code != 0 || res.stdout != "REFERENCE  SIGNERS  EXPIRES  STATUS\n" {
		t.Errorf("ledger ls (empty) = %d %q %q; want the header alone", res.code, res.stdout, res.stderr)
	}

	l, err := openLedger(false)
	if err != nil {
		t.Fatal(err)
	}
	expired := ledgerTestEntry("1", time.Now().Add(-time.Hour))
	expired.VerifiedAt = expired.Expires.Add(-time.Hour) // recorded before it expired
	valid := ledgerTestEntry("2", time.Now().Add(time.Hour))
	for _, e := range []verify.LedgerEntry{valid, expired} {
		if err := l.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}

	res := run(t, "ledger", "ls")
	if res.code != 0 {
		t.Fatalf("ledger ls = %d %q", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	want := [][]string{
		{"REFERENCE", "SIGNERS", "EXPIRES", "STATUS"},
		{expired.Pinned(), "ci,release", expired.Expires.Format(time.RFC3339), "expired"},
		{valid.Pinned(), "ci,release", valid.Expires.Format(time.RFC3339), "valid"},
	}
	var got [][]string
	for _, line := range lines {
		got = append(got, strings.Fields(line))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ledger ls (-want +got):\n%s\n%s", diff, res.stdout)
	}

	res = run(t, "ledger", "ls", "--format", "json")
	if res.code != 0 {
		t.Fatalf("ledger ls --format json = %d %q", res.code, res.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	var rows []ledgerRow
	for dec.More() {
		var r ledgerRow
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("ledger ls --format json: %v\n%s", err, res.stdout)
		}
		rows = append(rows, r)
	}
	wantRows := []ledgerRow{{expired, "expired"}, {valid, "valid"}}
	if diff := cmp.Diff(wantRows, rows); diff != "" {
		t.Errorf("ledger ls --format json (-want +got):\n%s", diff)
	}
	if !strings.Contains(res.stdout, `"status":"expired"`) || !strings.Contains(res.stdout, `"keyId":`) {
		t.Errorf("ledger ls --format json = %s; want status and the signers' key ids", res.stdout)
	}

	if res := run(t, "ledger", "ls", "--format", "yaml"); res.code != ExitUsage {
		t.Errorf("ledger ls --format yaml = %d; want %d", res.code, ExitUsage)
	}
	if res := run(t, "ledger", "ls", "extra"); res.code != ExitUsage {
		t.Errorf("ledger ls extra = %d; want %d", res.code, ExitUsage)
	}

	if res := run(t, "ledger", "prune"); res.code != 0 || res.stdout != "removed 1 entry\n" {
		t.Errorf("ledger prune = %d %q %q; want removed 1 entry", res.code, res.stdout, res.stderr)
	}
	if res := run(t, "ledger", "ls"); strings.Contains(res.stdout, expired.Pinned()) || !strings.Contains(res.stdout, valid.Pinned()) {
		t.Errorf("ledger ls after prune = %q; want the valid entry alone", res.stdout)
	}
	if res := run(t, "ledger", "prune", "--all"); res.code != 0 || res.stdout != "removed 1 entry\n" {
		t.Errorf("ledger prune --all = %d %q %q; want removed 1 entry", res.code, res.stdout, res.stderr)
	}
	if res := run(t, "ledger", "prune", "--all"); res.code != 0 || res.stdout != "removed 0 entries\n" {
		t.Errorf("ledger prune --all (empty) = %d %q %q", res.code, res.stdout, res.stderr)
	}
}

func TestLedgerLsCorrupt(t *testing.T) {
	isolate(t)
	if _, err := openLedger(false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ledgerPath(), []byte("not a ledger"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := run(t, "ledger", "ls")
	if res.code != 0 || !strings.Contains(res.stderr, "warning: ledger") || !strings.Contains(res.stderr, "moved aside") {
		t.Errorf("ledger ls on a corrupt ledger = %d %q %q; want 0 and a warning", res.code, res.stdout, res.stderr)
	}
	if aside, _ := filepath.Glob(ledgerPath() + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("moved aside: %v; want one file", aside)
	}
	if res := run(t, "ledger", "ls"); res.code != 0 || res.stderr != "" {
		t.Errorf("ledger ls on the rebuilt ledger = %d %q", res.code, res.stderr)
	}
}
