package plugin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/endpoint"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
	"github.com/docker-trustcache/docker-trustcache/verify/trustpolicy"
)

// The guarantee a used registry cache had on its way into BuildKit
// (cacheReport.Guarantee).
const (
	// BuildKit read it from the verified content endpoint, which hands
	// out only bytes whose digests it checked against the verified
	// manifest digest.
	guaranteeVerifiedBytes = "verified-bytes"
	// BuildKit was told the verified digest and fetched it from the
	// registry itself: BuildKit does not check a cache manifest or cache
	// config against the digest, so a registry that lies about the
	// content of a digest is not stopped.
	guaranteeDigestPin = "digest-pin"
)

// serveVerified routes every used registry cache through a verified
// content endpoint for the length of the build (run on builder, the
// --builder flag's value): the decisions are
// rewritten to import from it, pinned by digest, with the other
// attributes kept. A builder whose BuildKit cannot reach this host's
// loopback gets the digest-pinned registry reference with a warning, or,
// under the policy's requireVerifiedBytes, the build does not start. The
// caller closes the returned endpoint (nil when none was needed) when the
// build ends.
func serveVerified(ctx context.Context, dockerCLI command.Cli, env *Env, builder string, p *trustpolicy.Policy, report *trustReport, decisions map[int]buildargs.CacheSpec) (*endpoint.Server, error) {
	var used []int
	for i, c := range report.Caches {
		if c.Action == decision.Used && c.Type == "registry" {
			used = append(used, i)
		}
	}
	if len(used) == 0 {
		return nil, nil
	}
	b := currentBuilder(dockerCLI, env, builder)
	if ok, why := b.reachesLoopback(); !ok {
		for _, i := range used {
			report.Caches[i].Guarantee = guaranteeDigestPin
		}
		msg := fmt.Sprintf("builder %q cannot reach the verified content endpoint: %s", b.Name, why)
		if p.RequireVerifiedBytes {
			return nil, cli.StatusError{StatusCode: ExitUntrusted, Status: "trustcache: not building: " + msg + " (policy requireVerifiedBytes: true)"}
		}
		fmt.Fprintf(dockerCLI.Err(), "WARNING: trustcache: %s; verified caches are passed on pinned by digest only, and BuildKit does not check a cache manifest against its digest (requireVerifiedBytes: true in the policy refuses to build instead)\n", msg)
		return nil, nil
	}
	ep := endpoint.New(endpoint.WithKeychain(dockerKeychain{dockerCLI}), endpoint.RequireCredential())
	if err := ep.Start(ctx); err != nil {
		return nil, err
	}
	for _, i := range used {
		c := &report.Caches[i]
		d, err := name.NewDigest(c.Pinned)
		if err != nil {
			ep.Close()
			return nil, fmt.Errorf("verified cache %s: %w", c.Pinned, err)
		}
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			ep.Close()
			return nil, fmt.Errorf("verified cache %s: %w", c.Pinned, err)
		}
		ref, err := ep.Add(d.Context(), h)
		if err != nil {
			ep.Close()
			return nil, err
		}
		spec := decisions[i]
		spec.Set("ref", ref)
		decisions[i] = spec
		c.Guarantee = guaranteeVerifiedBytes
	}
	return ep, nil
}

// noteRefused adds to the report what the endpoint kept from BuildKit
// during the build, and warns about it on w.
func noteRefused(w io.Writer, ep *endpoint.Server, report *trustReport) {
	if ep == nil {
		return
	}
	for _, pr := range ep.Problems() {
		for i := range report.Caches {
			c := &report.Caches[i]
			if c.Action != decision.Used || c.Pinned != pr.Cache {
				continue
			}
			msg := fmt.Sprintf("%s %s: %s", pr.Kind, pr.Digest, pr.Reason)
			c.Refused = append(c.Refused, msg)
			fmt.Fprintf(w, "WARNING: trustcache: cache %s: not passed on to BuildKit: %s\n", printable(c.Source), printable(msg))
		}
	}
}

// endpointEnv returns the environment the build's docker-buildx runs with
// so that BuildKit can read the verified content endpoint ep: its
// credential in DOCKER_AUTH_CONFIG, merged with the user's own entries
// (nil without an endpoint). The endpoint's references are on buildx's
// command line, which every local user can read (/proc/PID/cmdline); its
// environment only the user and root can (/proc/PID/environ), and buildx
// (docker/cli's config package) answers BuildKit's request for the
// endpoint's credentials from it. A DOCKER_AUTH_CONFIG of the user's that
// does not parse as docker/cli parses it is ignored by docker/cli anyway:
// it is replaced, with a warning.
func endpointEnv(env *Env, warn io.Writer, ep *endpoint.Server) []string {
	if ep == nil {
		return nil
	}
	user, password := ep.Credential()
	if user == "" {
		return nil
	}
	v, err := mergeAuthConfig(env.getenv(envDockerAuthConfig), ep.Addr(), user, password)
	if err != nil {
		fmt.Fprintf(warn, "WARNING: trustcache: %s is not what docker uses (%v): the build runs with the verified content endpoint's entry only\n", envDockerAuthConfig, err)
	}
	return []string{envDockerAuthConfig + "=" + v}
}

// mergeAuthConfig returns the DOCKER_AUTH_CONFIG value existing (empty:
// none) with host's entry set to user:password. existing is read as
// docker/cli reads it: one JSON object of "auths", each entry an "auth",
// nothing else; one that does not parse is replaced (and the error
// returned with the value).
func mergeAuthConfig(existing, host, user, password string) (string, error) {
	type entry struct {
		Auth string `json:"auth"`
	}
	var cfg struct {
		Auths map[string]entry `json:"auths"`
	}
	var perr error
	if strings.TrimSpace(existing) != "" {
		dec := json.NewDecoder(strings.NewReader(existing))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			perr = err
		} else if dec.More() {
			perr = errors.New("more than one JSON object")
		}
		if perr != nil {
			cfg.Auths = nil
		}
	}
	if cfg.Auths == nil {
		cfg.Auths = map[string]entry{}
	}
	cfg.Auths[host] = entry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	out, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	return string(out), perr
}
