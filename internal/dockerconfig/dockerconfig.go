// Package dockerconfig edits the docker CLI's config file (config.json) as
// far as the builder alias needs ("aliases": {"builder": …}), and keeps
// everything else in it exactly: unknown keys, the file's owner, group and
// mode, and symbolic links (followed, never replaced, and not followed
// from another user's link to somewhere that user does not own). Reading
// the config for credentials and plugin directories is the docker CLI's
// own cli/config package's job.
package dockerconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config/configfile"

	"github.com/docker-trustcache/docker-trustcache/internal/atomicfile"
)

// The docker CLI config keys the builder alias lives under: "aliases" is an
// object of command aliases, and "builder" the one alias the docker CLI
// allows. With "aliases": {"builder": "trustcache"}, "docker build",
// "docker image build", "docker bake" and "docker builder …" run
// "docker trustcache …".
const (
	AliasesKey      = "aliases"
	BuilderAliasKey = "builder"
)

// InvalidError is a config file whose contents or links the builder alias
// cannot be edited in safely: a configuration error, naming the file.
type InvalidError struct{ err error }

func (e *InvalidError) Error() string { return e.err.Error() }
func (e *InvalidError) Unwrap() error { return e.err }

func invalidf(format string, args ...any) error { return &InvalidError{fmt.Errorf(format, args...)} }

// Exists reports whether the file existed when it was read (Write creates
// it otherwise).
func (c *File) Exists() bool { return c.exists }

// File is the docker CLI config file, decoded only as far as the
// builder alias needs: every other key keeps its value exactly, whether this
// plugin (or this version of the docker CLI) knows it or not.
type File struct {
	path    string // as named, for messages
	target  string // path with symbolic links followed: where it is written
	exists  bool   // false: the file is created (Exists)
	top     map[string]json.RawMessage
	aliases map[string]json.RawMessage // nil: no "aliases" object (or null)
}

// Read reads the docker config file at path. A missing file is
// an empty config (written with mode 0600); an empty one too, as for the
// docker CLI. Contents the builder alias cannot be edited in safely are
// configuration errors naming the file.
func Read(path string) (*File, error) {
	target, err := followLinks(path)
	if err != nil {
		return nil, err
	}
	cfg := &File{path: path, target: target, top: map[string]json.RawMessage{}}
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
		return nil, invalidf("%s: the docker config is not a JSON object", path)
	}
	if err := json.Unmarshal(data, &cfg.top); err != nil {
		return nil, invalidf("%s: invalid JSON: %s", jsonErrorPos(path, data, err), err)
	}
	raw, ok := cfg.top[AliasesKey]
	if !ok || string(raw) == "null" {
		return cfg, nil
	}
	if raw[0] != '{' {
		return nil, invalidf("%s: %q is %s, not a JSON object", path, AliasesKey, abbrev(raw))
	}
	if err := json.Unmarshal(raw, &cfg.aliases); err != nil {
		return nil, invalidf("%s: %q: %w", path, AliasesKey, err) // unreachable: raw is valid JSON
	}
	return cfg, nil
}

// PluginConfig returns the part of the config the docker CLI finds plugins
// with: cliPluginsExtraDirs (ignored when it is not a list of strings).
func (c *File) PluginConfig() *configfile.ConfigFile {
	var dirs []string
	if raw, ok := c.top["cliPluginsExtraDirs"]; ok && json.Unmarshal(raw, &dirs) != nil {
		dirs = nil
	}
	return &configfile.ConfigFile{CLIPluginsExtraDirs: dirs}
}

// Builder returns the builder alias as it is in the file (JSON text), and
// whether it is set.
func (c *File) Builder() (string, bool) {
	raw, ok := c.aliases[BuilderAliasKey]
	if !ok {
		return "", false
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw), true
	}
	return abbrev(b.Bytes()), true
}

// SetBuilder sets the builder alias to name, adding the aliases object if
// there is none. Nothing else is recorded: uninstall removes an aliases
// object it leaves empty, whoever created it.
func (c *File) SetBuilder(name string) {
	if c.aliases == nil {
		c.aliases = map[string]json.RawMessage{}
	}
	c.aliases[BuilderAliasKey], _ = json.Marshal(name)
}

// RemoveBuilder removes the builder alias, and the aliases object if that
// leaves it empty; it reports the latter.
func (c *File) RemoveBuilder() (emptied bool) {
	delete(c.aliases, BuilderAliasKey)
	if len(c.aliases) == 0 {
		c.aliases = nil
		delete(c.top, AliasesKey)
		return true
	}
	return false
}

// Write writes the config back atomically to the symbolic link's target,
// indented with tabs as the docker CLI does, keeping the file's owner,
// group and mode (see saveConfigFile). Keys come out sorted.
func (c *File) Write() error {
	if c.aliases != nil {
		raw, err := encodeJSON(c.aliases, "")
		if err != nil {
			return err
		}
		c.top[AliasesKey] = raw
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
		uid, gid, keepOwner = FileOwner(fi)
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("writing docker config: %w", err)
		}
	default:
		return fmt.Errorf("writing docker config: %w", err)
	}
	return atomicfile.WriteWith(target, data, func(f *os.File) error {
		if err := f.Chmod(mode); err != nil || !keepOwner {
			return err
		}
		return chownFile(f, uid, gid)
	})
}

// chownFile gives the open file f to uid and gid, unless it has them.
func chownFile(f *os.File, uid, gid int) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if u, g, ok := FileOwner(fi); ok && u == uid && g == gid {
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
	return "", invalidf("%s: too many levels of symbolic links", path)
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
	linkUID, _, ok := FileOwner(fi)
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
	owner, _, ok := FileOwner(ni)
	if !ok || owner == linkUID {
		return nil
	}
	return invalidf("%s: the symbolic link %s of uid %d leads to %s of uid %d: not followed as uid %d "+
		"(run this as uid %d, or make %s a file)", path, p, linkUID, what, owner, os.Geteuid(), linkUID, p)
}

// IsJSONString reports whether the JSON text raw is the string s.
func IsJSONString(raw, s string) bool {
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
