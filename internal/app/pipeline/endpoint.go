package pipeline

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
	"github.com/docker-trustcache/docker-trustcache/internal/endpoint"
	"github.com/docker-trustcache/docker-trustcache/internal/termtext"
	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// envDockerAuthConfig is docker/cli's registry credentials in the
// environment ({"auths":{HOST:{"auth":BASE64}}}): the verified content
// endpoint's credential reaches buildx in it, merged with the user's.
const envDockerAuthConfig = "DOCKER_AUTH_CONFIG"

// serve routes every used registry cache through a verified content
// endpoint for the length of the build (run on the builder buildx would
// use): pass is rewritten to import from it, pinned by digest, with the
// other attributes kept. A builder whose BuildKit cannot reach this
// host's loopback gets the digest-pinned registry reference with a
// warning, or, under the policy's requireVerifiedBytes, the run does not
// start. The caller closes the returned endpoint (nil when none was
// needed) when the build ends.
func (r *run) serve(ctx context.Context, pass []map[int]cachespec.Spec) (*endpoint.Server, error) {
	type use struct{ cache, target, entry int }
	var used []use
	k := 0
	for ti, t := range r.targets {
		for i := range t.CacheFrom {
			if c := r.report.Caches[k]; c.Action == decision.Used && c.Type == "registry" {
				used = append(used, use{k, ti, i})
			}
			k++
		}
	}
	if len(used) == 0 {
		return nil, nil
	}
	b := currentBuilder(r.o.Getenv, r.o.DockerConfigDir, r.o.Builder)
	if ok, why := b.reachesLoopback(); !ok {
		for _, u := range used {
			r.report.Caches[u.cache].Guarantee = GuaranteeDigestPin
		}
		msg := fmt.Sprintf("builder %q cannot reach the verified content endpoint: %s", b.Name, why)
		if r.policy.RequireVerifiedBytes {
			return nil, &StoppedError{Command: r.o.Command, Status: decision.Untrusted, Reason: msg + " (policy requireVerifiedBytes: true)"}
		}
		fmt.Fprintf(r.o.Stderr, "WARNING: trustcache: %s; verified caches are passed on pinned by digest only, and BuildKit does not check a cache manifest against its digest (requireVerifiedBytes: true in the policy refuses to build instead)\n", termtext.Line(msg))
		return nil, nil
	}
	ep := endpoint.New(endpoint.WithKeychain(r.o.Keychain), endpoint.RequireCredential())
	if err := ep.Start(ctx); err != nil {
		return nil, err
	}
	for _, u := range used {
		c := &r.report.Caches[u.cache]
		ref, err := addVerified(ep, c.Pinned)
		if err != nil {
			ep.Close()
			return nil, err
		}
		spec := pass[u.target][u.entry]
		spec.Set("ref", ref)
		pass[u.target][u.entry] = spec
		c.Guarantee = GuaranteeVerifiedBytes
	}
	return ep, nil
}

// addVerified serves the verified REPO@DIGEST pinned on ep and returns the
// reference BuildKit imports it by.
func addVerified(ep *endpoint.Server, pinned string) (string, error) {
	d, err := name.NewDigest(pinned)
	if err != nil {
		return "", fmt.Errorf("verified cache %s: %w", pinned, err)
	}
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return "", fmt.Errorf("verified cache %s: %w", pinned, err)
	}
	return ep.Add(d.Context(), h)
}

// noteRefused adds to the report what the endpoint kept from BuildKit
// during the build, and warns about it.
func (r *run) noteRefused(ep *endpoint.Server) {
	if ep == nil {
		return
	}
	for _, pr := range ep.Problems() {
		for i := range r.report.Caches {
			c := &r.report.Caches[i]
			if c.Action != decision.Used || c.Pinned != pr.Cache {
				continue
			}
			msg := fmt.Sprintf("%s %s: %s", pr.Kind, pr.Digest, pr.Reason)
			c.Refused = append(c.Refused, msg)
			fmt.Fprintf(r.o.Stderr, "WARNING: trustcache: cache %s: not passed on to BuildKit: %s\n", termtext.Line(c.Source), termtext.Line(msg))
		}
	}
}

// endpointEnv returns the environment buildx runs with so that BuildKit
// can read the verified content endpoint ep: its credential in
// DOCKER_AUTH_CONFIG, merged with the user's own entries (nil without a
// credential). The endpoint's references are on buildx's command line,
// which every local user can read (/proc/PID/cmdline); its environment
// only the user and root can (/proc/PID/environ), and buildx (docker/cli's
// config package) answers BuildKit's request for the endpoint's
// credentials from it. A DOCKER_AUTH_CONFIG of the user's that does not
// parse as docker/cli parses it is ignored by docker/cli anyway: it is
// replaced, with a warning.
func (r *run) endpointEnv(ep *endpoint.Server) []string {
	user, password := ep.Credential()
	if user == "" {
		return nil
	}
	v, err := mergeAuthConfig(r.o.Getenv(envDockerAuthConfig), ep.Addr(), user, password)
	if err != nil {
		fmt.Fprintf(r.o.Stderr, "WARNING: trustcache: %s is not what docker uses (%v): the build runs with the verified content endpoint's entry only\n", envDockerAuthConfig, err)
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
