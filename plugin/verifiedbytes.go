package plugin

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/docker-trustcache/docker-trustcache/internal/buildargs"
	"github.com/docker-trustcache/docker-trustcache/internal/cli"
	"github.com/docker-trustcache/docker-trustcache/internal/cli/command"
	"github.com/docker-trustcache/docker-trustcache/internal/endpoint"
	"github.com/docker-trustcache/docker-trustcache/verify"
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
func serveVerified(ctx context.Context, dockerCLI command.Cli, builder string, p *verify.Policy, report *trustReport, decisions map[int]buildargs.Decision) (*endpoint.Server, error) {
	var used []int
	for i, c := range report.Caches {
		if c.Action == actionUsed && c.Type == "registry" {
			used = append(used, i)
		}
	}
	if len(used) == 0 {
		return nil, nil
	}
	b := currentBuilder(dockerCLI, builder)
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
	ep := endpoint.New(endpoint.WithKeychain(dockerKeychain{dockerCLI}))
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
		dec := decisions[i]
		dec.Spec.Set("ref", ref)
		decisions[i] = dec
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
			if c.Action != actionUsed || c.Pinned != pr.Cache {
				continue
			}
			msg := fmt.Sprintf("%s %s: %s", pr.Kind, pr.Digest, pr.Reason)
			c.Refused = append(c.Refused, msg)
			fmt.Fprintf(w, "WARNING: trustcache: cache %s: not passed on to BuildKit: %s\n", printable(c.Source), printable(msg))
		}
	}
}
