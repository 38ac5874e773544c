package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReachesLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		b    builderInfo
		want bool
	}{
		{builderInfo{Driver: "docker"}, true},
		{builderInfo{Driver: "remote", Endpoint: "unix:///run/buildkit/buildkitd.sock"}, true},
		{builderInfo{Driver: "remote", Endpoint: "tcp://127.0.0.1:1234"}, true},
		{builderInfo{Driver: "remote", Endpoint: "tcp://localhost:1234"}, true},
		{builderInfo{Driver: "remote", Endpoint: "tcp://[::1]:1234"}, true},
		{builderInfo{Driver: "remote", Endpoint: "tcp://buildkit.example.com:1234"}, false},
		{builderInfo{Driver: "remote", Endpoint: "ssh://me@host"}, false},
		{builderInfo{Driver: "docker-container"}, false},
		{builderInfo{Driver: "docker-container", Network: "host"}, true},
		{builderInfo{Driver: "kubernetes"}, false},
		{builderInfo{Driver: "cloud"}, false},
	} {
		if got, why := tc.b.reachesLoopback(); got != tc.want || (!got && why == "") {
			t.Errorf("%+v.reachesLoopback() = %v %q; want %v (and a reason when false)", tc.b, got, why, tc.want)
		}
	}
}

// writeBuilder adds a builder to the buildx store in dir, as "docker
// buildx create" would, and makes it current when current is set.
func writeBuilder(t *testing.T, dir, name, driver, endpoint string, opts map[string]string, current bool) {
	t.Helper()
	ng := map[string]any{"Name": name, "Driver": driver, "Nodes": []map[string]any{{"Name": name + "0", "Endpoint": endpoint, "DriverOpts": opts}}}
	data, _ := json.Marshal(ng)
	if err := os.MkdirAll(filepath.Join(dir, "instances"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "instances", name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if current {
		cur, _ := json.Marshal(map[string]any{"Key": "unix:///var/run/docker.sock", "Name": name, "Global": false})
		if err := os.WriteFile(filepath.Join(dir, "current"), cur, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// envOf returns a Getenv reading only env.
func envOf(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// TestCurrentBuilder: the builder is read from buildx's store beside the
// docker config (or in BUILDX_CONFIG) as buildx reads it: --builder, then
// BUILDX_BUILDER, then the current one; a name the store does not hold
// is a docker context (the docker driver).
func TestCurrentBuilder(t *testing.T) {
	t.Parallel()
	config := t.TempDir()
	store := filepath.Join(config, "buildx")
	none := envOf(nil)
	if got := currentBuilder(none, config, ""); got.Driver != "docker" {
		t.Errorf("currentBuilder with an empty store = %+v; want the docker driver", got)
	}
	writeBuilder(t, store, "ctr", "docker-container", "unix:///var/run/docker.sock", map[string]string{"network": "host"}, true)
	writeBuilder(t, store, "remote1", "remote", "tcp://10.0.0.1:1234", nil, false)
	want := builderInfo{Name: "ctr", Driver: "docker-container", Endpoint: "unix:///var/run/docker.sock", Network: "host"}
	if diff := cmp.Diff(want, currentBuilder(none, config, "")); diff != "" {
		t.Errorf("current builder (-want +got):\n%s", diff)
	}
	if got := currentBuilder(envOf(map[string]string{"BUILDX_BUILDER": "remote1"}), config, ""); got.Driver != "remote" || got.Endpoint != "tcp://10.0.0.1:1234" {
		t.Errorf("BUILDX_BUILDER=remote1: %+v", got)
	}
	if got := currentBuilder(none, config, "CTR"); got.Driver != "docker-container" {
		t.Errorf("--builder CTR: %+v; want the ctr builder (names are case-insensitive)", got)
	}
	if got := currentBuilder(none, config, "mycontext"); got.Driver != "docker" {
		t.Errorf("--builder naming a docker context: %+v; want the docker driver", got)
	}
	other := t.TempDir()
	writeBuilder(t, other, "k8s", "kubernetes", "kubernetes:///buildkit", nil, true)
	if got := currentBuilder(envOf(map[string]string{"BUILDX_CONFIG": other}), config, ""); got.Driver != "kubernetes" {
		t.Errorf("BUILDX_CONFIG=%s: %+v; want its current builder", other, got)
	}
}
