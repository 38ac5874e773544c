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

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/spf13/cobra"

	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
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
	check        bool
}

func newInstallCommand(dockerCLI command.Cli) *cobra.Command {
	var opts installOptions
	cmd := &cobra.Command{
		Use:   "install (--alias-builder [--force] | --check)",
		Short: `Route "docker build" through docker trustcache`,
		Long: `Set "aliases": {"builder": "trustcache"} in the docker CLI config file
($DOCKER_CONFIG/config.json, default ~/.docker/config.json), so that
"docker build", "docker image build" and "docker builder build" run
"docker trustcache build", and the other "docker builder" commands
(prune, ls, du …) run "docker buildx" through it. "docker buildx build"
is not routed: it still runs buildx directly.

Every other setting in the file is kept. A builder alias set to something
else (e.g. "buildx", which "docker buildx install" sets) is refused unless
--force replaces it; uninstall does not put it back. The file keeps its
owner, group and mode (run as root on another user's config, it stays
theirs); a symbolic link is followed to its target.

The docker CLI reads DOCKER_BUILDKIT before the alias: where DOCKER_BUILDKIT=0
(or false) is set, docker build runs the legacy builder, docker trustcache
does not run, and --cache-from images are used unverified. install warns
when it runs with such a value.

--check changes nothing. It exits 0 when a docker build run in the same
environment runs docker trustcache build — the builder alias is trustcache,
DOCKER_BUILDKIT does not turn BuildKit off, the docker-buildx plugin is
there — and 2, naming every problem and its fix, when not. Run it in CI in
the job (and with the environment) that runs docker build.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.check {
				return withStatus(runInstallCheck(dockerCLI.Out(), dockerConfigFile(), pluginName, opts))
			}
			return withStatus(runInstall(dockerCLI.Err(), dockerConfigFile(), pluginName, opts))
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&opts.aliasBuilder, "alias-builder", false, `Set the docker CLI's builder alias to trustcache (required, unless --check)`)
	flags.BoolVar(&opts.force, "force", false, "Replace a builder alias set to something else")
	flags.BoolVar(&opts.check, "check", false, "Change nothing; exit 2 unless docker build here runs docker trustcache build")
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
		return usagef("nothing to install: pass --alias-builder to route docker build through docker %s (--check checks that it is)", name)
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
		installNotes(errOut, name)
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
	fmt.Fprintf(errOut, "note: a build that imports no cache (no --cache-from) needs no policy: in a project without one, docker build works exactly as docker buildx build\n")
	installNotes(errOut, name)
	return nil
}

// installNotes tells what the alias does not cover, and warns when
// DOCKER_BUILDKIT here makes docker build skip it.
func installNotes(errOut io.Writer, name string) {
	fmt.Fprintf(errOut, "note: where DOCKER_BUILDKIT=0 (or false) is set, docker build runs the legacy builder instead, "+
		"which ignores the alias and uses --cache-from images unverified; docker %s install --check tells whether docker build is routed\n", name)
	if problem := buildKitProblem(name); problem != "" {
		fmt.Fprintf(errOut, "WARNING: %s\n", problem)
	}
}

// buildKitProblem says what DOCKER_BUILDKIT, as the docker CLI reads it
// (see envBuildKit), does to the builder alias to name here, and how to fix
// it; "" when nothing.
func buildKitProblem(name string) string {
	v, off, err := buildKitEnv()
	switch {
	case err != nil:
		return fmt.Sprintf("%s=%q is not a boolean: the docker CLI refuses to run docker build. Fix: unset %s or set %s=1",
			envBuildKit, v, envBuildKit, envBuildKit)
	case off:
		return fmt.Sprintf("%s=%s is set: docker build runs the legacy builder, which ignores the builder alias: "+
			"docker %s does not run and --cache-from images are used unverified. Fix: unset %s or set %s=1",
			envBuildKit, v, name, envBuildKit, envBuildKit)
	}
	return ""
}

// runInstallCheck checks, changing nothing, that a docker build run in this
// environment with the docker config file at path runs docker name build:
// the builder alias is name, DOCKER_BUILDKIT does not turn BuildKit off, and
// the docker-buildx plugin that build runs is there. out gets "ok"; every
// problem found, with its fix, is in the usage error returned.
func runInstallCheck(out io.Writer, path, name string, opts installOptions) error {
	if opts.force {
		return usagef("--check does not take --force: it changes nothing")
	}
	cfg, err := readDockerConfig(path)
	if err != nil {
		return err
	}
	var problems []string
	prev, set := cfg.builder()
	switch {
	case !set:
		problems = append(problems, fmt.Sprintf("no builder alias: docker build runs buildx, never docker %s. Fix: docker %s install --alias-builder", name, name))
	case !isJSONString(prev, name):
		problems = append(problems, fmt.Sprintf("the builder alias is %s, not %q: docker build does not run docker %s. Fix: docker %s install --alias-builder --force", prev, name, name, name))
	}
	if problem := buildKitProblem(name); problem != "" {
		problems = append(problems, problem)
	}
	plugins := cfg.pluginConfig()
	buildx, found := buildxPlugin(plugins)
	if !found {
		dirs := append(append(plugins.CLIPluginsExtraDirs, filepath.Join(filepath.Dir(path), "cli-plugins")), systemPluginDirs...)
		problems = append(problems, fmt.Sprintf("docker-buildx not found (looked in %s): docker %s build runs it, and fails without it. "+
			"Fix: install the buildx plugin in one of those directories (https://docs.docker.com/go/buildx/)", strings.Join(dirs, ", "), name))
	}
	if len(problems) > 0 {
		return usagef("%s: docker build does not run docker %s build here:\n  - %s", path, name, strings.Join(problems, "\n  - "))
	}
	bk, _, _ := buildKitEnv()
	if bk == "" {
		bk = "unset"
	} else {
		bk = envBuildKit + "=" + bk
	}
	fmt.Fprintf(out, "%s: ok: docker build runs docker %s build (builder alias %q, %s, %s)\n", path, name, name, bk, buildx)
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
	path    string // as named, for messages
	target  string // path with symbolic links followed: where it is written
	exists  bool   // false: the file is created
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
	cfg := &dockerConfig{path: path, target: target, top: map[string]json.RawMessage{}}
	data, err := os.ReadFile(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return cfg, nil
	case err != nil:
		return nil, fmt.Errorf("reading docker config: %w", err)
	}
	cfg.exists = true
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

// pluginConfig returns the part of the config the docker CLI finds plugins
// with: cliPluginsExtraDirs (ignored when it is not a list of strings).
func (c *dockerConfig) pluginConfig() *configfile.ConfigFile {
	var dirs []string
	if raw, ok := c.top["cliPluginsExtraDirs"]; ok && json.Unmarshal(raw, &dirs) != nil {
		dirs = nil
	}
	return &configfile.ConfigFile{CLIPluginsExtraDirs: dirs}
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
// indented with tabs as the docker CLI does, keeping the file's owner,
// group and mode (see saveConfigFile). Keys come out sorted.
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
	return saveConfigFile(c.target, data)
}

// saveConfigFile writes data to the docker config file at target (symbolic
// links followed) as the docker CLI's own ConfigFile.Save does: through a
// temporary file in its directory and a rename, and an existing file's mode,
// owner and group carry over — run as root on another user's config (sudo
// with DOCKER_CONFIG=/home/u/.docker) the file stays the user's, who
// would otherwise lose access to their own credentials. A new file gets
// mode 0600, in a directory made with 0700 if there is none.
//
// Unlike the docker CLI, which ignores it, an owner that cannot be kept
// stops the write and leaves the file as it was; and the mode and owner are
// set on the open temporary file, never through its name, which whoever can
// write the directory could have replaced with a link by then.
func saveConfigFile(target string, data []byte) error {
	dir := filepath.Dir(target)
	mode, uid, gid, keepOwner := os.FileMode(0o600), 0, 0, false
	switch fi, err := os.Stat(target); {
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("writing %s: not a regular file", target)
	case err == nil:
		mode = fi.Mode().Perm()
		uid, gid, keepOwner = fileOwner(fi)
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("writing docker config: %w", err)
		}
	default:
		return fmt.Errorf("writing docker config: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", target, err)
	}
	tmp := f.Name()
	werr := f.Chmod(mode)
	if werr == nil && keepOwner {
		werr = chownFile(f, uid, gid)
	}
	if werr == nil {
		_, werr = f.Write(data)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, target)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", target, werr)
	}
	return nil
}

// chownFile gives the open file f to uid and gid, unless it has them.
func chownFile(f *os.File, uid, gid int) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if u, g, ok := fileOwner(fi); ok && u == uid && g == gid {
		return nil
	}
	if err := f.Chown(uid, gid); err != nil {
		return fmt.Errorf("keeping the file's owner %d:%d (run as that user; nothing was changed): %w", uid, gid, err)
	}
	return nil
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
// lead: the last one may point at a file that does not exist yet. A link
// owned by another user than the one running this (root under sudo) is
// followed only to something of that user's (see checkLinkOwner).
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
		if err := checkLinkOwner(path, p, fi, link); err != nil {
			return "", err
		}
		p = link
	}
	return "", usagef("%s: too many levels of symbolic links", path)
}

// checkLinkOwner refuses to follow the symbolic link p (met on the way from
// path; fi its Lstat) to next when p belongs to a user other than root and
// the one running this, and next (or, when it does not exist, its
// directory) does not belong to that user too. That user could point their
// config.json at a file of root's — a daemon.json that an "aliases" key
// stops dockerd from starting with — or a new file in a directory of
// root's, and install, run by root, would write there; the kernel's
// protected_symlinks guards /tmp the same way.
func checkLinkOwner(path, p string, fi fs.FileInfo, next string) error {
	linkUID, _, ok := fileOwner(fi)
	if !ok || linkUID == 0 || linkUID == os.Geteuid() {
		return nil
	}
	what := next
	ni, err := os.Lstat(next)
	if errors.Is(err, fs.ErrNotExist) {
		what = filepath.Dir(next)
		ni, err = os.Stat(what)
	}
	if err != nil {
		return fmt.Errorf("reading docker config: %w", err)
	}
	owner, _, ok := fileOwner(ni)
	if !ok || owner == linkUID {
		return nil
	}
	return usagef("%s: the symbolic link %s of uid %d leads to %s of uid %d: not followed as uid %d "+
		"(run this as uid %d, or make %s a file)", path, p, linkUID, what, owner, os.Geteuid(), linkUID, p)
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
