package plugin

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/docker/cli/cli/config"
	"github.com/google/go-cmp/cmp"
)

// TestMergeAuthConfig: the endpoint's entry is added to the user's
// DOCKER_AUTH_CONFIG, theirs kept; one docker/cli would not parse is
// replaced, with an error to warn about.
func TestMergeAuthConfig(t *testing.T) {
	t.Parallel()
	ours := base64.StdEncoding.EncodeToString([]byte("trustcache:s3cret"))
	theirs := base64.StdEncoding.EncodeToString([]byte("me:pat"))
	tests := []struct {
		name, existing, want string
		err                  bool
	}{
		{"none", "", `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, false},
		{"the user's kept", `{"auths":{"reg.example":{"auth":"` + theirs + `"}}}`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"},"reg.example":{"auth":"` + theirs + `"}}}`, false},
		{"the same host replaced", `{"auths":{"127.0.0.1:1234":{"auth":"` + theirs + `"}}}`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, false},
		{"not JSON", `{"auths":`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, true},
		{"an unknown field", `{"auths":{},"credsStore":"x"}`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, true},
		{"two objects", `{"auths":{}} {}`, `{"auths":{"127.0.0.1:1234":{"auth":"` + ours + `"}}}`, true},
	}
	for _, tt := range tests {
		got, err := mergeAuthConfig(tt.existing, "127.0.0.1:1234", "trustcache", "s3cret")
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("%s: mergeAuthConfig(%q) = %s, %v; want %s, error %v", tt.name, tt.existing, got, err, tt.want, tt.err)
		}
	}
}

// TestBuildEndpointCredentialOffArgv: the verified content endpoint's
// credential reaches docker-buildx in its environment (DOCKER_AUTH_CONFIG,
// for the endpoint's host, the user's entries kept) and never on its
// command line, which every local user can read; the endpoint's reference
// on the command line alone grants nothing (internal/endpoint
// TestRequireCredential; e2e/endpoint_private_test.go runs the attack).
func TestBuildEndpointCredentialOffArgv(t *testing.T) {
	for _, cmd := range []string{"build", "bake"} {
		t.Run(cmd, func(t *testing.T) {
			dir := isolate(t)
			host := newRegistry(t)
			run(t, "keys", "generate", "--name", "ci")
			trustPolicy(t, dir, host, "")
			good := host + "/team/cache:main"
			pushRandom(t, good)
			if res := run(t, "sign", "--key", "ci.key", good); res.code != 0 {
				t.Fatal(res.stderr)
			}
			theirs := `{"auths":{"reg.example":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("me:pat")) + `"}}}`
			t.Setenv("DOCKER_AUTH_CONFIG", theirs)
			envFile := filepath.Join(dir, "buildx-env")
			argsFile := filepath.Join(dir, "docker-args")
			def := filepath.Join(dir, "definition.json")
			bakeDef(t, def, map[string]map[string]any{"default": {"context": ".", "dockerfile": "Dockerfile", "cache-from": []any{registryCache(good)}}})
			body := "#!/bin/sh\nfor a in \"$@\"; do if [ \"$a\" = --print ]; then cat > /dev/null; cat " + def + "; exit 0; fi; done\n" +
				"printf '%s' \"$DOCKER_AUTH_CONFIG\" > " + envFile + "\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > " + argsFile + "\n"
			buildx := filepath.Join(config.Dir(), "cli-plugins", "docker-buildx")
			if err := os.MkdirAll(filepath.Dir(buildx), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{filepath.Join(dir, "docker"), buildx} {
				if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", filepath.Join(dir, "docker"))
			var res cmdResult
			if cmd == "build" {
				res = run(t, "build", "--cache-from", good, ".")
			} else {
				res = run(t, "bake")
			}
			if res.code != 0 {
				t.Fatalf("%s = %d %s", cmd, res.code, res.stderr)
			}
			args, _ := os.ReadFile(argsFile)
			m := regexp.MustCompile(`(127\.0\.0\.1:\d+)/[0-9a-f]{32}/\d+@`).FindStringSubmatch(string(args))
			if m == nil {
				t.Fatalf("buildx argv holds no endpoint reference:\n%s", args)
			}
			envData, _ := os.ReadFile(envFile)
			var cfg struct {
				Auths map[string]struct{ Auth string } `json:"auths"`
			}
			if err := json.Unmarshal(envData, &cfg); err != nil {
				t.Fatalf("DOCKER_AUTH_CONFIG %q: %v", envData, err)
			}
			if cfg.Auths["reg.example"].Auth == "" {
				t.Errorf("the user's DOCKER_AUTH_CONFIG entry was lost: %s", envData)
			}
			cred, _ := base64.StdEncoding.DecodeString(cfg.Auths[m[1]].Auth)
			user, password, _ := strings.Cut(string(cred), ":")
			if diff := cmp.Diff("trustcache", user); diff != "" || len(password) != 64 {
				t.Fatalf("DOCKER_AUTH_CONFIG entry for %s = %q; want trustcache:<256-bit hex>", m[1], cred)
			}
			if strings.Contains(string(args), password) || strings.Contains(res.stderr, password) || strings.Contains(res.stdout, password) {
				t.Errorf("the endpoint's password is on buildx's command line or in the output")
			}
		})
	}
}
