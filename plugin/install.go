package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	"github.com/spf13/cobra"
)

// The docker CLI config keys install and uninstall touch: "aliases" is an
// object of command aliases, and "builder" the one alias the docker CLI
// allows. With "aliases": {"builder": "trustcache"}, "docker build",
// "docker image build", "docker bake" and "docker builder …" run
// "docker trustcache …".
const (
	aliasesKey      = "aliases"
	builderAliasKey = "builder"
)

type installOptions struct {
	aliasBuilder bool
	force        bool
}

func newInstallCommand(dockerCLI command.Cli) *cobra.Command {
	var opts installOptions
	cmd := &cobra.Command{
		Use:   "install --alias-builder [--force]",
		Short: `Route "docker build" through docker trustcache`,
		Long: `Set "aliases": {"builder": "trustcache"} in the docker CLI config file
($DOCKER_CONFIG/config.json, default ~/.docker/config.json), so that
"docker build", "docker image build" and "docker builder build" run
"docker trustcache build", and the other "docker builder" commands
(prune, ls, du …) run "docker buildx" through it. "docker buildx build"
is not routed: it still runs buildx directly.

Every other setting in the file is kept. A builder alias set to something
else (e.g. "buildx", which "docker buildx install" sets) is refused unless
--force replaces it; uninstall does not put it back.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(runInstall(dockerCLI.Err(), dockerConfigFile(), pluginName, opts))
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&opts.aliasBuilder, "alias-builder", false, `Set the docker CLI's builder alias to trustcache (required)`)
	flags.BoolVar(&opts.force, "force", false, "Replace a builder alias set to something else")
	return cmd
}

type uninstallOptions struct {
	aliasBuilder bool
}

func newUninstallCommand(dockerCLI command.Cli) *cobra.Command {
	var opts uninstallOptions
	cmd := &cobra.Command{
		Use:   "uninstall --alias-builder",
		Short: `Stop routing "docker build" through docker trustcache`,
		Long: `Remove "aliases": {"builder": "trustcache"} from the docker CLI config file,
and the "aliases" object when that leaves it empty (an empty "aliases" means
the same to the docker CLI as none). A builder alias set to something else
is left alone. Every other setting in the file is kept.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStatus(runUninstall(dockerCLI.Err(), dockerConfigFile(), pluginName, opts))
		},
	}
	cmd.Flags().BoolVar(&opts.aliasBuilder, "alias-builder", false, "Remove the docker CLI's builder alias to trustcache (required)")
	return cmd
}

// dockerConfigFile is the docker CLI config file: config.json in the config
// dir, which --config, then DOCKER_CONFIG, then ~/.docker name.
func dockerConfigFile() string {
	return filepath.Join(config.Dir(), config.ConfigFileName)
}

// runInstall sets the builder alias to name in the docker config file at
// path. errOut gets what was done.
func runInstall(errOut io.Writer, path, name string, opts installOptions) error {
	if !opts.aliasBuilder {
		return usagef("nothing to install: pass --alias-builder to route docker build through docker %s", name)
	}
	cfg, err := readDockerConfig(path)
	if err != nil {
		return err
	}
	prev, set := cfg.builder()
	ours := set && isJSONString(prev, name)
	switch {
	case ours:
		fmt.Fprintf(errOut, "%s: the builder alias is already %q; nothing to do\n", path, name)
		return nil
	case set && !opts.force:
		why := ""
		if isJSONString(prev, "buildx") {
			why = " (docker buildx install sets it)"
		}
		return usagef("%s: %q is %s%s, not %q; pass --force to replace it", path, aliasesKey+"."+builderAliasKey, prev, why, name)
	}
	cfg.setBuilder(name)
	if err := cfg.write(); err != nil {
		return err
	}
	if set {
		fmt.Fprintf(errOut, "%s: replaced the builder alias %s with %q (uninstall will not restore %s)\n", path, prev, name, prev)
	} else {
		fmt.Fprintf(errOut, "%s: set %q to %q\n", path, aliasesKey+"."+builderAliasKey, name)
	}
	fmt.Fprintf(errOut, "docker build, docker image build and docker builder build now run docker %s build\n", name)
	return nil
}

// runUninstall removes the builder alias from the docker config file at
// path if it is name, and the aliases object if that leaves it empty.
func runUninstall(errOut io.Writer, path, name string, opts uninstallOptions) error {
	if !opts.aliasBuilder {
		return usagef("nothing to uninstall: pass --alias-builder to stop routing docker build through docker %s", name)
	}
	cfg, err := readDockerConfig(path)
	if err != nil {
		return err
	}
	prev, set := cfg.builder()
	switch {
	case !cfg.exists:
		fmt.Fprintf(errOut, "%s does not exist: no builder alias to remove\n", path)
		return nil
	case !set:
		fmt.Fprintf(errOut, "%s: no builder alias; nothing to do\n", path)
		return nil
	case !isJSONString(prev, name):
		fmt.Fprintf(errOut, "%s: the builder alias is %s, not %q; left as it is\n", path, prev, name)
		return nil
	}
	emptied := cfg.removeBuilder()
	if err := cfg.write(); err != nil {
		return err
	}
	if emptied {
		fmt.Fprintf(errOut, "%s: removed the builder alias %q and the %q object it leaves empty\n", path, name, aliasesKey)
	} else {
		fmt.Fprintf(errOut, "%s: removed the builder alias %q\n", path, name)
	}
	return nil
}

// dockerConfig is the docker CLI config file, decoded only as far as the
// builder alias needs: every other key keeps its value exactly, whether this
// plugin (or this version of the docker CLI) knows it or not.
type dockerConfig struct {
	path    string      // as named, for messages
	target  string      // path with symbolic links followed: where it is written
	exists  bool        // false: the file is created
	mode    os.FileMode // the file's permissions, kept on write
	top     map[string]json.RawMessage
	aliases map[string]json.RawMessage // nil: no "aliases" object (or null)
}

// readDockerConfig reads the docker config file at path. A missing file is
// an empty config (written with mode 0600); an empty one too, as for the
// docker CLI. Contents the builder alias cannot be edited in safely are
// configuration errors naming the file.
func readDockerConfig(path string) (*dockerConfig, error) {
	target, err := followLinks(path)
	if err != nil {
		return nil, err
	}
	cfg := &dockerConfig{path: path, target: target, mode: 0o600, top: map[string]json.RawMessage{}}
	data, err := os.ReadFile(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return cfg, nil
	case err != nil:
		return nil, fmt.Errorf("reading docker config: %w", err)
	}
	cfg.exists = true
	if fi, err := os.Stat(target); err == nil {
		cfg.mode = fi.Mode().Perm()
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return cfg, nil
	}
	if trimmed[0] != '{' {
		return nil, usagef("%s: the docker config is not a JSON object", path)
	}
	if err := json.Unmarshal(data, &cfg.top); err != nil {
		return nil, usagef("%s: invalid JSON: %s", jsonErrorPos(path, data, err), err)
	}
	raw, ok := cfg.top[aliasesKey]
	if !ok || string(raw) == "null" {
		return cfg, nil
	}
	if raw[0] != '{' {
		return nil, usagef("%s: %q is %s, not a JSON object", path, aliasesKey, abbrev(raw))
	}
	if err := json.Unmarshal(raw, &cfg.aliases); err != nil {
		return nil, usagef("%s: %q: %w", path, aliasesKey, err) // unreachable: raw is valid JSON
	}
	return cfg, nil
}

// builder returns the builder alias as it is in the file (JSON text), and
// whether it is set.
func (c *dockerConfig) builder() (string, bool) {
	raw, ok := c.aliases[builderAliasKey]
	if !ok {
		return "", false
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw), true
	}
	return abbrev(b.Bytes()), true
}

// setBuilder sets the builder alias to name, adding the aliases object if
// there is none. Nothing else is recorded: uninstall removes an aliases
// object it leaves empty, whoever created it.
func (c *dockerConfig) setBuilder(name string) {
	if c.aliases == nil {
		c.aliases = map[string]json.RawMessage{}
	}
	c.aliases[builderAliasKey], _ = json.Marshal(name)
}

// removeBuilder removes the builder alias, and the aliases object if that
// leaves it empty; it reports the latter.
func (c *dockerConfig) removeBuilder() (emptied bool) {
	delete(c.aliases, builderAliasKey)
	if len(c.aliases) == 0 {
		c.aliases = nil
		delete(c.top, aliasesKey)
		return true
	}
	return false
}

// write writes the config back atomically to the symbolic link's target,
// indented with tabs as the docker CLI does, keeping the file's mode. Keys
// come out sorted.
func (c *dockerConfig) write() error {
	if c.aliases != nil {
		raw, err := encodeJSON(c.aliases, "")
		if err != nil {
			return err
		}
		c.top[aliasesKey] = raw
	}
	data, err := encodeJSON(c.top, "\t")
	if err != nil {
		return err
	}
	if !c.exists {
		if err := os.MkdirAll(filepath.Dir(c.target), 0o700); err != nil {
			return fmt.Errorf("writing docker config: %w", err)
		}
	}
	return writeFileAtomic(c.target, data, c.mode)
}

// encodeJSON encodes v without escaping <, > and & (values are copied, not
// rewritten), ending with a newline.
func encodeJSON(v any, indent string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding docker config: %w", err)
	}
	return b.Bytes(), nil
}

// followLinks returns path with symbolic links followed, as far as they
// lead: the last one may point at a file that does not exist yet.
func followLinks(path string) (string, error) {
	p := path
	for range 40 {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil // a file, or nothing yet: either way, p is the target
		}
		link, err := os.Readlink(p)
		if err != nil {
			return "", fmt.Errorf("reading docker config: %w", err)
		}
		if !filepath.IsAbs(link) {
			dir := filepath.Dir(p)
			if real, err := filepath.EvalSymlinks(dir); err == nil {
				dir = real // so that ".." in link is taken from the real directory
			}
			link = filepath.Join(dir, link)
		}
		p = link
	}
	return "", usagef("%s: too many levels of symbolic links", path)
}

// isJSONString reports whether the JSON text raw is the string s.
func isJSONString(raw, s string) bool {
	var v string
	return json.Unmarshal([]byte(raw), &v) == nil && v == s
}

// abbrev shortens JSON text for a message.
func abbrev(raw []byte) string {
	const limit = 60
	if len(raw) > limit {
		return strings.ToValidUTF8(string(raw[:limit]), "") + "…"
	}
	return string(raw)
}

// jsonErrorPos returns path:line:column for a JSON syntax error, or path
// (for the end of the input too).
func jsonErrorPos(path string, data []byte, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) || se.Offset <= 0 || se.Offset >= int64(len(data)) {
		return path
	}
	before := data[:se.Offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("%s:%d:%d", path, line, col-1)
}
