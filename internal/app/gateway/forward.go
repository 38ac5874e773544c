package gateway

// Forwarding a call to buildkitd: the relay of raw frames both ways, and
// the Solve requests that are decided and rewritten before it.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// forwardSolve decides the imports of req, a Solve request, then forwards
// the rewritten request; the call never reaches buildkitd when a decision
// refuses it.
func (s *Server) forwardSolve(ss grpc.ServerStream, who Identity, method string, sh shape, req frame) error {
	ctx := ss.Context()
	// A frontend image would run inside buildkitd, out of the gateway's
	// sight: only one the policy allows.
	fr, err := sh.frontend(req)
	if err != nil {
		return s.refuse(ctx, who, method, err)
	}
	fd := decideFrontend(method, fr, s.decider.Policy())
	s.logFrontend(ctx, who, method, fd)
	if fd.refusal != "" {
		return status.Errorf(codes.PermissionDenied, "trustcache gateway: not building: %s", fd.refusal)
	}
	if fd.addCmdline {
		req = sh.withCmdline(req)
	}
	// The build's scope of the endpoint lives as long as the build's
	// Solve calls: its references end with the build.
	build := buildKey(ctx, method, req)
	bs := s.scopes.acquire(build)
	defer s.scopes.release(bs)
	bt := s.talks.acquire(build)
	defer s.talks.release(bt)
	imps, err := sh.imports(req)
	if err != nil {
		return s.refuse(ctx, who, method, err)
	}
	if len(imps) > 0 {
		decisions, err := s.decider.decideBuild(ctx, who.Name, method, imps, bs, bt)
		if err != nil {
			return err
		}
		out, err := sh.rewrite(req, decisions)
		if err != nil {
			return s.refuse(ctx, who, method, err)
		}
		req = out
	}
	return s.forward(ss, method, &req, true, nil, nil)
}

// logFrontend logs the decision on a request's frontend: refusals at
// WARN, a frontend image let through at INFO, the built-in frontends at
// DEBUG.
func (s *Server) logFrontend(ctx context.Context, who Identity, method string, fd frontendDecision) {
	if fd.frontend == "" {
		return
	}
	level, action := slog.LevelDebug, "builtin"
	switch {
	case fd.refusal != "":
		level, action = slog.LevelWarn, decision.Blocked.String()
	case fd.image != "":
		level, action = slog.LevelInfo, "allowed"
	}
	s.log.Log(ctx, level, "frontend",
		slog.String("client", who.Name),
		slog.String("method", method),
		slog.String("frontend", fd.frontend),
		slog.String("image", fd.image),
		slog.String("where", fd.where),
		slog.String("action", action),
		slog.Bool("syntaxIgnored", fd.addCmdline),
		slog.String("reason", fd.refusal),
	)
}

// forward relays the call to buildkitd, message by message in both
// directions, with its metadata, headers and trailers. first, when set, is
// the client's first message, already read. For a unary call (an
// inspected Solve) only first is sent: a further message from the client
// is never relayed. keep, when set, decides which of buildkitd's messages
// reach the client. inject, when set, is asked before each of buildkitd's
// messages for one of the gateway's own to send first.
func (s *Server) forward(ss grpc.ServerStream, method string, first *frame, unary bool, keep func([]byte) bool, inject func() *frame) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	md, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for k, v := range md {
		// Pseudo-headers and the transport's own are set by the client
		// connection.
		if strings.HasPrefix(k, ":") || k == "content-type" || k == "user-agent" || k == "te" {
			continue
		}
		out[k] = v
	}
	ctx = metadata.NewOutgoingContext(ctx, out)
	cs, err := s.backend.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}

	// Client to buildkitd.
	upErr := make(chan error, 1)
	go func() {
		upErr <- func() error {
			if first != nil {
				if err := cs.SendMsg(first); err != nil {
					return err
				}
			}
			if unary {
				return cs.CloseSend()
			}
			var m relayMsg // one per direction: Marshal empties it
			for {
				if err := ss.RecvMsg(&m); err != nil {
					if errors.Is(err, io.EOF) {
						return cs.CloseSend()
					}
					return err
				}
				if err := cs.SendMsg(&m); err != nil {
					m.free()
					return err
				}
			}
		}()
	}()

	// buildkitd to client.
	downErr := make(chan error, 1)
	go func() {
		downErr <- func() error {
			hdr, err := cs.Header()
			if err != nil {
				return err
			}
			if err := ss.SendHeader(hdr); err != nil {
				return err
			}
			var m relayMsg // one per direction: Marshal empties it
			for {
				if err := cs.RecvMsg(&m); err != nil {
					return err
				}
				if keep != nil && !keep(m.bufs.Materialize()) {
					m.free()
					continue
				}
				if inject != nil {
					if f := inject(); f != nil {
						if err := ss.SendMsg(f); err != nil {
							m.free()
							return err
						}
					}
				}
				if err := ss.SendMsg(&m); err != nil {
					m.free()
					return err
				}
			}
		}()
	}()

	for {
		select {
		case err := <-upErr:
			if err != nil {
				// The client went away or sent garbage: end the call
				// upstream too.
				cancel()
				<-downErr
				return err
			}
			upErr = nil // half-closed; wait for buildkitd's answer
		case err := <-downErr:
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
