package gateway

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
)

// BenchmarkCall: one call that names a build, directly against the echo
// server and through the gateway: Control.Status (its request decoded,
// the build's owner checked) and an LLBBridge call of the build (its
// metadata checked). What a build pays per frontend call. Compare
// gateway with direct of the same run.
func BenchmarkCall(b *testing.B) {
	be := echoServer(b)
	cc, err := Dial(be)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	log := slog.New(slog.DiscardHandler)
	s := New(cc, NewDecider(nil, fakeEndpoint{}, log), log)
	l, err := Listen("unix://" + filepath.Join(b.TempDir(), "gw.sock"))
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	b.Cleanup(func() { s.Shutdown(context.Background()) })

	const build = "k5yd7ts3eqfnxv4w0ujz1h3gr"
	status := frame(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), build))
	ctx := metadata.AppendToOutgoingContext(context.Background(), "buildkit-controlapi-buildid", build)
	for _, tc := range []struct{ name, addr string }{{"direct", be}, {"gateway", "unix://" + l.Addr().String()}} {
		client, err := grpc.NewClient(tc.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { client.Close() })
		var resp frame
		if err := client.Invoke(ctx, "/moby.buildkit.v1.Control/Status", &status, &resp); err != nil {
			b.Fatal(err)
		}
		for _, m := range []struct {
			name, method string
			req          frame
		}{{"Status", "/moby.buildkit.v1.Control/Status", status}, {"BridgePing", "/moby.buildkit.v1.frontend.LLBBridge/Ping", frame{}}} {
			b.Run(m.name+"/"+tc.name, func(b *testing.B) {
				for range b.N {
					if err := client.Invoke(ctx, m.method, &m.req, &resp); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
