package trustedbuilder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/docker-trustcache/docker-trustcache/internal/atomicfile"
	"github.com/docker-trustcache/docker-trustcache/internal/lazyregexp"
)

// Label marks every container and volume a builder creates, with the
// builder's name as value: rm removes only what carries it.
const Label = "com.docker-trustcache.builder"

// recordFile is the builder's record in its directory.
const recordFile = "builder.json"

// Record is what create made, written to DIR/builder.json: rm removes
// exactly this, inspect reports it.
type Record struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Dir is the builder's directory: DOCKER_CONFIG/trustcache/builders/NAME.
	Dir string `json:"dir"`
	// Socket is the gateway's unix socket on this host, which the buildx
	// builder NAME points at.
	Socket string `json:"socket"`
	// BuildkitContainer is empty when the builder reuses a buildkitd
	// (--buildkit).
	BuildkitContainer string   `json:"buildkitContainer,omitempty"`
	GatewayContainer  string   `json:"gatewayContainer"`
	Volumes           []string `json:"volumes,omitempty"`
	BuildkitImage     string   `json:"buildkitImage,omitempty"`
	BuildkitImageID   string   `json:"buildkitImageId,omitempty"`
	// BuildkitPrivilege is how the BuildKit container runs: "privileged",
	// or the capabilities it lacks where the engine cannot run privileged
	// containers (boundedArgs).
	BuildkitPrivilege string `json:"buildkitPrivilege,omitempty"`
	GatewayImage      string `json:"gatewayImage"`
	GatewayImageID    string `json:"gatewayImageId"`
	// BuildkitAddr is the buildkitd the gateway forwards to, as the
	// gateway sees it.
	BuildkitAddr string `json:"buildkitAddr"`
	// External is set when BuildkitAddr is a buildkitd create did not start.
	External bool `json:"external,omitempty"`
	// GatewayUser is the gateway container's uid:gid.
	GatewayUser string     `json:"gatewayUser"`
	AllowUIDs   []uint32   `json:"allowUids,omitempty"`
	AllowGIDs   []uint32   `json:"allowGids,omitempty"`
	Policy      PolicyInfo `json:"policy"`
	// PolicyEnv are the env:// variables the policy's keys read, passed to
	// the gateway at create.
	PolicyEnv []string `json:"policyEnv,omitempty"`
	// RegistryAuth names the registries whose credentials the gateway got.
	RegistryAuth []string `json:"registryAuth,omitempty"`
}

// PolicyInfo is the policy a builder enforces: a copy made at create, so
// that later edits of the source (a checkout a job can write to) do not
// change the builder's trust.
type PolicyInfo struct {
	// Source is the file the copy was made from.
	Source string `json:"source"`
	// File is the copy, in the builder's directory.
	File string `json:"file"`
	// Digest is the policy's digest (trustpolicy.Policy.Digest) and Fingerprint
	// its fingerprint with keys and revocations (Policy.Fingerprint).
	Digest      string `json:"digest"`
	Fingerprint string `json:"fingerprint"`
}

var nameRE = lazyregexp.New(`^[a-z0-9][a-z0-9_.-]{0,47}$`)

// checkName refuses a name that is not a valid buildx builder, container
// and directory name.
func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("builder name %q: want 1 to 48 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// BuildersDir is where the builders of the docker config dir configDir live.
func BuildersDir(configDir string) string {
	return filepath.Join(configDir, "trustcache", "builders")
}

// Load reads the record of builder name.
func Load(configDir, name string) (*Record, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	dir := filepath.Join(BuildersDir(configDir), name)
	data, err := os.ReadFile(filepath.Join(dir, recordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no trusted builder %q: %s has no %s (docker trustcache builder ls lists them)", name, dir, recordFile)
	}
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	if r.Name != name {
		return nil, fmt.Errorf("%s: names builder %q, not %q", filepath.Join(dir, recordFile), r.Name, name)
	}
	return &r, nil
}

func (r *Record) save() error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(r.Dir, recordFile), append(data, '\n'), 0o644)
}

// List returns the records of every builder in configDir, by name.
func List(configDir string) ([]*Record, error) {
	entries, err := os.ReadDir(BuildersDir(configDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, e := range entries {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		r, err := Load(configDir, e.Name())
		if err != nil {
			// A directory without a record is not one of ours (or a
			// create that is still running).
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
