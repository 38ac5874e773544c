package plugin

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
)

// builderInfo is what the build needs to know of the buildx builder it
// runs on: whether its BuildKit can reach the verified content endpoint on
// this host's loopback.
type builderInfo struct {
	Name     string
	Driver   string // docker, docker-container, kubernetes, remote, …
	Endpoint string // the first node's endpoint (remote: unix:// or tcp://)
	Network  string // the docker-container driver's network option
}

// currentBuilder returns the builder buildx would run a build on, read
// from buildx's own store as buildx reads it: --builder, then
// BUILDX_BUILDER, then the store's current builder; a name the store does
// not hold is a docker context, whose builder is the docker driver.
// Buildx's store is $BUILDX_CONFIG, else buildx/ beside the docker config
// file.
func currentBuilder(dockerCLI command.Cli, env *Env, flag string) builderInfo {
	dir := env.getenv("BUILDX_CONFIG")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(dockerCLI.ConfigFile().Filename), "buildx")
	}
	name := flag
	if name == "" {
		name = env.getenv("BUILDX_BUILDER")
	}
	if name == "" {
		var cur struct{ Name string }
		if data, err := os.ReadFile(filepath.Join(dir, "current")); err == nil && json.Unmarshal(data, &cur) == nil {
			name = cur.Name
		}
	}
	if name == "" {
		return builderInfo{Name: "default", Driver: "docker"}
	}
	var ng struct {
		Name   string
		Driver string
		Nodes  []struct {
			Endpoint   string
			DriverOpts map[string]string
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "instances", strings.ToLower(name)))
	if err != nil || json.Unmarshal(data, &ng) != nil || ng.Driver == "" {
		return builderInfo{Name: name, Driver: "docker"}
	}
	b := builderInfo{Name: name, Driver: ng.Driver}
	if len(ng.Nodes) > 0 {
		b.Endpoint = ng.Nodes[0].Endpoint
		b.Network = ng.Nodes[0].DriverOpts["network"]
	}
	return b
}

// reachesLoopback reports whether the builder's BuildKit can reach a
// listener on this host's 127.0.0.1 and, when it cannot, why. The docker
// driver's BuildKit runs inside dockerd, on the host's network; a remote
// builder does when it is on this host (a unix socket, or tcp to a
// loopback address); a docker-container builder only with network=host;
// kubernetes and other drivers run elsewhere. A wrong answer costs a cache
// hit, never trust: an endpoint BuildKit cannot reach is an import that
// fails.
func (b builderInfo) reachesLoopback() (bool, string) {
	switch b.Driver {
	case "docker":
		return true, ""
	case "docker-container":
		if b.Network == "host" {
			return true, ""
		}
		return false, "the docker-container driver runs BuildKit in its own network (create the builder with --driver-opt network=host to give it the verified content endpoint)"
	case "remote":
		u, err := url.Parse(b.Endpoint)
		if err != nil {
			return false, "its endpoint does not parse"
		}
		switch u.Scheme {
		case "unix":
			return true, ""
		case "tcp":
			host := u.Hostname()
			if host == "localhost" {
				return true, ""
			}
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
				return true, ""
			}
			return false, "its BuildKit at " + u.Host + " is on another host"
		}
		return false, "its endpoint is not a unix socket or a loopback address"
	}
	return false, "the " + b.Driver + " driver runs BuildKit elsewhere"
}
