package gateway

// The connection to buildkitd: dialing it, and probing that it answers.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// probeTimeout bounds a call that checks buildkitd answers.
const probeTimeout = 5 * time.Second

// reconnectBackoff paces reconnecting to buildkitd after it went away.
var reconnectBackoff = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second}

// Dial returns a connection to buildkitd at addr: unix://PATH, or
// tcp://HOST:PORT on a loopback address (the verified content endpoint
// listens on 127.0.0.1: buildkitd must be on this host). It does not
// connect; see Probe.
func Dial(addr string) (*grpc.ClientConn, error) {
	return DialTLS(addr, nil)
}

// DialTLS is Dial with TLS (see ClientTLS) when cfg is not nil.
func DialTLS(addr string, cfg *tls.Config) (*grpc.ClientConn, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("buildkit address %q: %w", addr, err)
	}
	var target string
	switch u.Scheme {
	case "unix":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		if p == "" {
			return nil, fmt.Errorf("buildkit address %q: no socket path", addr)
		}
		target = "unix://" + p
	case "tcp":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("buildkit address %q: buildkitd must run on this host (unix:// or a loopback tcp:// address): it imports verified caches from 127.0.0.1", addr)
		}
		target = "passthrough:///" + u.Host
	default:
		return nil, fmt.Errorf("buildkit address %q: want unix://PATH or tcp://127.0.0.1:PORT", addr)
	}
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	return grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		// buildkitd is local: reconnect within a few seconds of its
		// restart, not after grpc's default backoff (up to 2 minutes).
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnectBackoff, MinConnectTimeout: probeTimeout}),
		grpc.WithDefaultCallOptions(
			grpc.ForceCodecV2(rawCodec{}),
			grpc.MaxCallRecvMsgSize(maxMessageSize),
			grpc.MaxCallSendMsgSize(maxMessageSize),
		),
	)
}

// Probe checks that buildkitd answers its control API.
func (s *Server) Probe(ctx context.Context) error {
	return probe(ctx, s.backend)
}

func probe(ctx context.Context, cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, resp := frame{}, frame{}
	if err := cc.Invoke(ctx, listWorkers, &req, &resp); err != nil {
		return fmt.Errorf("buildkitd does not answer %s: %w", listWorkers, err)
	}
	return nil
}
