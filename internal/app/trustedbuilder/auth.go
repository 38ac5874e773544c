package trustedbuilder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// copyRegistryAuth gives the gateway the registry credentials of the
// docker config dir configDir: the "auths" entries that hold credentials
// themselves (auth, identitytoken, registrytoken), written to the gateway's
// own config.json in stateDir, mode 0600, owned by the gateway's user.
// Credentials kept by a credential helper cannot be copied (the helper is
// not in the gateway image): those registries are named on progress, and
// the gateway reads them anonymously. It returns the registries copied.
func copyRegistryAuth(configDir, stateDir string, uid, gid int, progress io.Writer) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(configDir, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Auths       map[string]map[string]any `json:"auths"`
		CredsStore  string                    `json:"credsStore"`
		CredHelpers map[string]string         `json:"credHelpers"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(configDir, "config.json"), err)
	}
	auths := map[string]map[string]any{}
	var skipped []string
	for host, a := range cfg.Auths {
		entry := map[string]any{}
		for _, k := range []string{"auth", "identitytoken", "registrytoken"} {
			if v, ok := a[k].(string); ok && v != "" {
				entry[k] = v
			}
		}
		if len(entry) == 0 {
			skipped = append(skipped, host)
			continue
		}
		auths[host] = entry
	}
	for host := range cfg.CredHelpers {
		if _, ok := auths[host]; !ok {
			skipped = append(skipped, host)
		}
	}
	sort.Strings(skipped)
	if len(skipped) > 0 || cfg.CredsStore != "" && len(auths) == 0 && len(cfg.Auths) > 0 {
		fmt.Fprintf(progress, "registry credentials kept by a credential helper are not given to the gateway (it reads these registries anonymously): %v\n", skipped)
	}
	if len(auths) == 0 {
		return nil, nil
	}
	out, err := json.MarshalIndent(map[string]any{"auths": auths}, "", "  ")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(stateDir, "config.json")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return nil, err
	}
	if os.Getuid() == 0 {
		if err := os.Chown(path, uid, gid); err != nil {
			return nil, err
		}
	}
	hosts := make([]string, 0, len(auths))
	for h := range auths {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return hosts, nil
}
