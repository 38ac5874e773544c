package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// maxMessageSize bounds every message forwarded in either direction. It
// is above buildkitd's own limit so that buildkitd, not the gateway,
// refuses what it would refuse; inspected requests have the lower
// MaxRequestSize.
const maxMessageSize = 64 << 20

// probeTimeout bounds a call that checks buildkitd answers.
const probeTimeout = 5 * time.Second

// reconnectBackoff paces reconnecting to buildkitd after it went away.
var reconnectBackoff = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second}

// Methods the gateway answers itself.
const (
	healthCheck = "/grpc.health.v1.Health/Check"
	healthWatch = "/grpc.health.v1.Health/Watch"
	// listWorkers is what Probe calls on buildkitd: cheap, and only a
	// working BuildKit control API answers it.
	listWorkers = "/moby.buildkit.v1.Control/ListWorkers"
)

// grpc.health.v1.HealthCheckResponse.ServingStatus values.
const (
	healthServing    = 1
	healthNotServing = 2
)

// Server forwards gRPC calls to buildkitd, deciding the cache imports of
// Solve requests on the way.
type Server struct {
	backend  *grpc.ClientConn
	decider  *Decider
	log      *slog.Logger
	grpc     *grpc.Server
	scopes   *buildScopes
	tls      bool // clients must present a certificate (WithTLS)
	admit    Admission
	identify IdentifyFunc
	owners   *owners
	talks    *talks // what each build's client is told (talk.go)
	// awaitOpen is how long a call waits for the build or session it
	// names to be opened (Control.Solve or Status, Control.Session)
	// before it is refused.
	awaitOpen time.Duration
}

// Option configures a Server.
type Option func(*serverOptions)

type serverOptions struct {
	tls      *tls.Config
	admit    *Admission
	identify IdentifyFunc
}

// WithTLS serves with TLS (see ServerTLS): required to serve on tcp://.
func WithTLS(cfg *tls.Config) Option {
	return func(o *serverOptions) { o.tls = cfg }
}

// WithAdmission says which clients may connect (default:
// DefaultAdmission). Validate it first.
func WithAdmission(a Admission) Option {
	return func(o *serverOptions) { o.admit = &a }
}

// WithIdentify tells clients apart with f instead of by their peer
// credentials or certificate (tests run two clients in one process with
// it). Admission at connection still applies.
func WithIdentify(f IdentifyFunc) Option {
	return func(o *serverOptions) { o.identify = f }
}

// New returns a Server forwarding to backend (see Dial).
func New(backend *grpc.ClientConn, d *Decider, log *slog.Logger, opts ...Option) *Server {
	o := serverOptions{identify: identify}
	for _, opt := range opts {
		opt(&o)
	}
	admit := DefaultAdmission()
	if o.admit != nil {
		admit = *o.admit
	}
	s := &Server{backend: backend, decider: d, log: log, scopes: &buildScopes{ep: d.ep}, tls: o.tls != nil,
		admit: admit, identify: o.identify, owners: newOwners(), talks: &talks{}, awaitOpen: defaultAwaitOpen}
	gopts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.UnknownServiceHandler(s.handle),
		grpc.MaxRecvMsgSize(maxMessageSize),
		grpc.MaxSendMsgSize(maxMessageSize),
	}
	if o.tls != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(admitTLS(o.tls, admit, log))))
	}
	s.grpc = grpc.NewServer(gopts...)
	return s
}

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

// Decider is the Server's Decider: SetVerifier changes the policy.
func (s *Server) Decider() *Decider { return s.decider }

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

// Serve serves l until Shutdown. A tcp listener is served only with TLS:
// anyone who can reach the port could build otherwise.
func (s *Server) Serve(l net.Listener) error {
	if _, ok := l.Addr().(*net.TCPAddr); ok && !s.tls {
		l.Close()
		return fmt.Errorf("serving %s: tcp needs TLS with client certificates", l.Addr())
	}
	return s.grpc.Serve(&admitListener{Listener: l, a: s.admit, log: s.log})
}

// Shutdown stops accepting calls and waits for those running (builds) to
// end, until ctx is done; then it ends them.
func (s *Server) Shutdown(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

// handle is every method's handler: it tells who calls, checks that
// what the call names is the caller's (methods.go), and forwards it.
func (s *Server) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "trustcache gateway: no method")
	}
	// Only the canonical /service/method form is forwarded: the form the
	// inspected methods are recognized in.
	if svc, m, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/"); !strings.HasPrefix(method, "/") || !ok || svc == "" || m == "" || strings.Contains(m, "/") {
		return status.Errorf(codes.Unimplemented, "trustcache gateway: malformed method name %q", method)
	}
	ctx := ss.Context()
	r := methods[method]
	switch method {
	case healthCheck:
		return s.healthCheck(ss)
	case healthWatch:
		return s.healthWatch(ss)
	}
	who, err := s.identify(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "call refused", slog.String("method", method), slog.String("reason", "client not identified: "+err.Error()))
		return status.Errorf(codes.PermissionDenied, "trustcache gateway: %s: the client cannot be identified: %v", method, err)
	}
	if r == 0 {
		return s.deny(ctx, who, method, "", "the gateway does not forward this method (it forwards the methods docs/serve.md lists)")
	}
	var first *frame
	var n names
	if decodesFirst(method) {
		var req frame
		if err := ss.RecvMsg(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return status.Error(codes.InvalidArgument, "trustcache gateway: no request")
			}
			return err
		}
		first = &req
		if n, err = requestNames(method, req); err != nil {
			return s.refuse(ctx, who, method, err)
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	switch r {
	case ruleSession:
		ids := md.Get(sessionIDHeader)
		if len(ids) != 1 || ids[0] == "" {
			return s.refuse(ctx, who, method, malformed("want exactly one %s header naming the session; got %d", sessionIDHeader, len(ids)))
		}
		// Attached under its exact ID: the session manager's key.
		if err := s.claim(ctx, who, method, kindSession, ids[0]); err != nil {
			return err
		}
	case ruleStatus:
		if n.build == "" {
			return s.refuse(ctx, who, method, malformed("Ref is empty: Status names no build"))
		}
		if err := s.claim(ctx, who, method, kindBuild, n.build); err != nil {
			return err
		}
	case ruleSolve:
		// A Solve without a Ref opens a build no other call can name.
		if n.build != "" {
			if err := s.claim(ctx, who, method, kindBuild, n.build); err != nil {
				return err
			}
		}
	case ruleBridge:
		ids := md.Get(buildIDKey)
		if len(ids) != 1 || ids[0] == "" {
			return s.refuse(ctx, who, method, malformed("want exactly one %s metadata naming the build; got %d", buildIDKey, len(ids)))
		}
		// The frontend's calls may overtake the Control.Solve (or Status)
		// that opens the build, as buildkitd allows.
		if err := s.require(ctx, who, method, kindBuild, ids[0], s.awaitOpen); err != nil {
			return err
		}
	case ruleHistory:
		// A build no client opened through the gateway may be asked
		// about (buildx probes the API with a made-up Ref): the stream
		// shows nothing of it.
		if owner := s.owners.ownerOf(kindBuild, n.build); n.build != "" && owner != "" && owner != who.Key {
			return s.deny(ctx, who, method, "build "+n.build, "the build belongs to another client")
		}
	case ruleHistoryUpdate:
		if err := s.require(ctx, who, method, kindBuild, n.build, 0); err != nil {
			return err
		}
	}
	// A session is the caller's once it attached it; a Solve may overtake
	// its session's attach.
	for _, id := range n.sessions {
		if err := s.require(ctx, who, method, kindSession, id, s.awaitOpen); err != nil {
			return err
		}
	}
	switch method {
	case mControlSolve, mBridgeSolve:
		return s.forwardSolve(ss, who, method, inspected[method], *first)
	case mStatus:
		// The build's progress, with the gateway's decisions on its
		// cache imports written in (talk.go).
		bt := s.talks.acquire(n.build)
		defer s.talks.release(bt)
		return s.forward(ss, method, first, true, nil, func() *frame { return bt.pending(time.Now()) })
	case mListenBuildHistory:
		return s.forward(ss, method, first, true, func(ev []byte) bool {
			ref := historyEventRef(ev)
			return ref != "" && s.owners.ownerOf(kindBuild, ref) == who.Key
		}, nil)
	}
	return s.forward(ss, method, first, first != nil, nil, nil)
}

// claim binds id to who, or refuses the call when another client holds
// it.
func (s *Server) claim(ctx context.Context, who Identity, method string, kind nameKind, id string) error {
	if owner := s.owners.claim(kind, id, who.Key); owner != who.Key {
		return s.deny(ctx, who, method, kind.String()+" "+id, "the "+kind.String()+" belongs to another client")
	}
	return nil
}

// defaultAwaitOpen is Server.awaitOpen: buildkitd itself waits a few
// seconds for a build a frontend call names and for a session.
const defaultAwaitOpen = 10 * time.Second

// require refuses the call unless id is who's, waiting up to d for it to
// be opened.
func (s *Server) require(ctx context.Context, who Identity, method string, kind nameKind, id string, d time.Duration) error {
	owner := s.owners.ownerOf(kind, id)
	if owner == "" && d > 0 {
		owner = s.owners.await(ctx, kind, id, d)
	}
	switch owner {
	case who.Key:
		return nil
	case "":
		return s.deny(ctx, who, method, kind.String()+" "+id, "no "+kind.String()+" of this client has that ID (one is opened through the gateway: a build by Control.Solve or Status, a session by Control.Session)")
	}
	return s.deny(ctx, who, method, kind.String()+" "+id, "the "+kind.String()+" belongs to another client")
}

// deny refuses a call that reaches for what is not the caller's, or a
// method the gateway does not forward: PermissionDenied, logged.
func (s *Server) deny(ctx context.Context, who Identity, method, what, why string) error {
	s.log.WarnContext(ctx, "call refused", slog.String("client", who.Name), slog.String("identity", who.Key),
		slog.String("method", method), slog.String("names", what), slog.String("reason", why))
	if what != "" {
		why = what + ": " + why
	}
	return status.Errorf(codes.PermissionDenied, "trustcache gateway: %s refused: %s", method, why)
}

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
		level, action = slog.LevelWarn, actionBlocked
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

// refuse answers a request the gateway cannot decode.
func (s *Server) refuse(ctx context.Context, who Identity, method string, err error) error {
	s.log.WarnContext(ctx, "request refused", slog.String("client", who.Name), slog.String("method", method), slog.String("reason", err.Error()))
	var m *MalformedError
	if errors.As(err, &m) {
		return status.Errorf(codes.InvalidArgument, "trustcache gateway: %s: %v", method, err)
	}
	return status.Errorf(codes.Internal, "trustcache gateway: %s: %v", method, err)
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

// healthCheck answers grpc.health.v1.Health/Check: SERVING while
// buildkitd answers.
func (s *Server) healthCheck(ss grpc.ServerStream) error {
	var req frame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	return ss.SendMsg(s.healthStatus(ss.Context()))
}

// healthWatch answers grpc.health.v1.Health/Watch: the status now, then
// each change, checked every few seconds.
func (s *Server) healthWatch(ss grpc.ServerStream) error {
	var req frame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	ctx := ss.Context()
	var last string
	t := time.NewTicker(probeTimeout)
	defer t.Stop()
	for {
		f := s.healthStatus(ctx)
		if string(*f) != last {
			last = string(*f)
			if err := ss.SendMsg(f); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// healthStatus is the HealthCheckResponse for buildkitd's state now.
func (s *Server) healthStatus(ctx context.Context) *frame {
	st := uint64(healthServing)
	if err := s.Probe(ctx); err != nil {
		st = healthNotServing
	}
	f := frame(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), st))
	return &f
}
