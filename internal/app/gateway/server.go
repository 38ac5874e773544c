package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// maxMessageSize bounds every message forwarded in either direction. It
// is above buildkitd's own limit so that buildkitd, not the gateway,
// refuses what it would refuse; inspected requests have the lower
// MaxRequestSize.
const maxMessageSize = 64 << 20

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

// Decider is the Server's Decider: SetVerifier changes the policy.
func (s *Server) Decider() *Decider { return s.decider }

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

// refuse answers a request the gateway cannot decode.
func (s *Server) refuse(ctx context.Context, who Identity, method string, err error) error {
	s.log.WarnContext(ctx, "request refused", slog.String("client", who.Name), slog.String("method", method), slog.String("reason", err.Error()))
	var m *MalformedError
	if errors.As(err, &m) {
		return status.Errorf(codes.InvalidArgument, "trustcache gateway: %s: %v", method, err)
	}
	return status.Errorf(codes.Internal, "trustcache gateway: %s: %v", method, err)
}
