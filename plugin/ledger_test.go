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
	t.Parallel()
	te := newTestEnv(t, nil)
	env := te.env
	if want := te.path("docker-config/trustcache/ledger.db"); env.ledgerPath() != want {
		t.Errorf("isolatedEnv().ledgerPath() = %s; want %s", env.ledgerPath(), want)
	}
	if l, err := openLedger(env, true); l != nil || err != nil {
		t.Errorf("openLedger(noLedger) = %v, %v; want nil, nil", l, err)
	}
	l, err := openLedger(env, false)
	if err != nil || l == nil || l.Path() != env.ledgerPath() {
		t.Fatalf("openLedger = %v, %v; want the ledger at %s", l, err, env.ledgerPath())
	}
	l.Close()
}

func TestLedgerLsPrune(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	if res := te.run("ledger", "ls"); res.code != 0 || res.stdout != "REFERENCE  SIGNERS  EXPIRES  STATUS\n" {
		t.Errorf("ledger ls (empty) = %d %q %q; want the header alone", res.code, res.stdout, res.stderr)
	}

	l, err := openLedger(te.env, false)
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

	res := te.run("ledger", "ls")
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

	res = te.run("ledger", "ls", "--format", "json")
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

	if res := te.run("ledger", "ls", "--format", "yaml"); res.code != ExitUsage {
		t.Errorf("ledger ls --format yaml = %d; want %d", res.code, ExitUsage)
	}
	if res := te.run("ledger", "ls", "extra"); res.code != ExitUsage {
		t.Errorf("ledger ls extra = %d; want %d", res.code, ExitUsage)
	}

	if res := te.run("ledger", "prune"); res.code != 0 || res.stdout != "removed 1 entry\n" {
		t.Errorf("ledger prune = %d %q %q; want removed 1 entry", res.code, res.stdout, res.stderr)
	}
	if res := te.run("ledger", "ls"); strings.Contains(res.stdout, expired.Pinned()) || !strings.Contains(res.stdout, valid.Pinned()) {
		t.Errorf("ledger ls after prune = %q; want the valid entry alone", res.stdout)
	}
	if res := te.run("ledger", "prune", "--all"); res.code != 0 || res.stdout != "removed 1 entry\n" {
		t.Errorf("ledger prune --all = %d %q %q; want removed 1 entry", res.code, res.stdout, res.stderr)
	}
	if res := te.run("ledger", "prune", "--all"); res.code != 0 || res.stdout != "removed 0 entries\n" {
		t.Errorf("ledger prune --all (empty) = %d %q %q", res.code, res.stdout, res.stderr)
	}
}

func TestLedgerLsCorrupt(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	if _, err := openLedger(te.env, false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(te.env.ledgerPath(), []byte("not a ledger"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := te.run("ledger", "ls")
	if res.code != 0 || !strings.Contains(res.stderr, "warning: ledger") || !strings.Contains(res.stderr, "moved aside") {
		t.Errorf("ledger ls on a corrupt ledger = %d %q %q; want 0 and a warning", res.code, res.stdout, res.stderr)
	}
	if aside, _ := filepath.Glob(te.env.ledgerPath() + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("moved aside: %v; want one file", aside)
	}
	if res := te.run("ledger", "ls"); res.code != 0 || res.stderr != "" {
		t.Errorf("ledger ls on the rebuilt ledger = %d %q", res.code, res.stderr)
	}
}

// TestSignRecordsInLedger: "sign" records the digests it signed in the
// ledger when the policy trusts them on that signature (then this host's
// next verification fetches no signature), says so when the policy does
// not, and records nothing with --no-ledger or without a policy.
func TestSignRecordsInLedger(t *testing.T) {
	t.Parallel()
	te := newTestEnv(t, nil)
	dir := te.dir
	host := newRegistry(t)
	te.run("keys", "generate", "--name", "ci", "--dir", te.dir)
	te.run("keys", "generate", "--name", "attacker", "--dir", te.dir)
	trustPolicy(t, dir, host, "")
	refs := map[string]string{}
	for _, tag := range []string{"main", "pr", "unrecorded", "nopolicy"} {
		ref := host + "/team/cache:" + tag
		refs[tag] = host + "/team/cache@" + pushRandom(t, ref).String()
	}
	ledgerHas := func(pinned string) bool {
		t.Helper()
		res := te.run("ledger", "ls")
		return strings.Contains(res.stdout, pinned+" ")
	}

	if res := te.run("sign", "--key", te.path("ci.key"), host+"/team/cache:main"); res.code != 0 || res.stderr != "" {
		t.Fatalf("sign = %d %q %q", res.code, res.stdout, res.stderr)
	}
	if !ledgerHas(refs["main"]) {
		t.Errorf("the digest signed with an allowed key is not in the ledger")
	}
	if res := te.run("verify", host+"/team/cache:main"); res.code != 0 || !strings.Contains(res.stdout, "verified before on this host (ledger)") {
		t.Errorf("verify after sign = %d %q; want it from the ledger", res.code, res.stdout)
	}

	res := te.run("sign", "--key", te.path("attacker.key"), host+"/team/cache:pr")
	if want := "note: " + refs["pr"] + " is not trusted by "; res.code != 0 || !strings.Contains(res.stderr, want) || !strings.Contains(res.stderr, "not signed by any key in the policy") {
		t.Errorf("sign with a key the policy does not allow = %d %q; want %q and why", res.code, res.stderr, want)
	}
	if ledgerHas(refs["pr"]) {
		t.Errorf("a digest the policy does not trust was recorded")
	}

	if res := te.run("sign", "--no-ledger", "--key", te.path("ci.key"), host+"/team/cache:unrecorded"); res.code != 0 || ledgerHas(refs["unrecorded"]) {
		t.Errorf("sign --no-ledger = %d %q; recorded %v", res.code, res.stderr, ledgerHas(refs["unrecorded"]))
	}

	if err := os.Remove(filepath.Join(dir, ".trustcache.yaml")); err != nil {
		t.Fatal(err)
	}
	if res := te.run("sign", "--key", te.path("ci.key"), host+"/team/cache:nopolicy"); res.code != 0 || res.stderr != "" || ledgerHas(refs["nopolicy"]) {
		t.Errorf("sign without a policy = %d %q; recorded %v", res.code, res.stderr, ledgerHas(refs["nopolicy"]))
	}
}
