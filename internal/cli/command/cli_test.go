package command

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/cli/cli/config"
)

// The config file is read on first use, from the directory set by then:
// the plugin runner applies --config after the Cli exists and before any
// command asks for credentials.
func TestConfigFileReadOnFirstUse(t *testing.T) {
	prev := config.Dir()
	t.Cleanup(func() { config.SetDir(prev) })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths": {"r.example": {"auth": "dTpw"}}, "cliPluginsExtraDirs": ["/x"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	c := NewDockerCli(io.NopCloser(strings.NewReader("")), io.Discard, &errOut)
	config.SetDir(dir) // as --config does, after the Cli was made
	cfg := c.ConfigFile()
	if got := cfg.CLIPluginsExtraDirs; len(got) != 1 || got[0] != "/x" {
		t.Errorf("CLIPluginsExtraDirs = %v; want the file in the --config directory read", got)
	}
	if a, err := cfg.GetAuthConfig("r.example"); err != nil || a.Username != "u" || a.Password != "p" {
		t.Errorf("credentials for r.example = %+v, %v; want u/p", a, err)
	}
	if c.ConfigFile() != cfg {
		t.Error("ConfigFile read the file again")
	}
	if errOut.Len() != 0 {
		t.Errorf("warnings: %s", errOut.String())
	}
}

func TestConfigFileBrokenWarns(t *testing.T) {
	prev := config.Dir()
	t.Cleanup(func() { config.SetDir(prev) })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{`), 0o600); err != nil {
		t.Fatal(err)
	}
	config.SetDir(dir)
	var errOut bytes.Buffer
	c := NewDockerCli(nil, io.Discard, &errOut)
	if c.ConfigFile() == nil {
		t.Fatal("no config for a broken file; want an empty one, as the docker CLI")
	}
	if !strings.Contains(errOut.String(), "WARNING") || !strings.Contains(errOut.String(), "config.json") {
		t.Errorf("stderr %q; want the docker CLI's warning naming the file", errOut.String())
	}
}
