package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// echoServer answers every message of every stream with itself, keeping
// nothing: a stand-in for buildkitd's end of a build's session stream.
func echoServer(b *testing.B) string {
	b.Helper()
	srv := grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		for {
			var m frame
			if err := ss.RecvMsg(&m); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if err := ss.SendMsg(&m); err != nil {
				return err
			}
		}
	}))
	sock := filepath.Join(b.TempDir(), "echo.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(srv.Stop)
	return "unix://" + sock
}

// BenchmarkSessionRelay: a burst of small messages each way on one
// bidirectional stream (a build's session: file sync of the context and
// of a local export), directly against the echo server and through the
// gateway. One op is a burst of 256 messages of 512 bytes, sent while the
// echoes are read. Compare gateway with direct of the same run.
func BenchmarkSessionRelay(b *testing.B) {
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

	const burst, size = 256, 512
	for _, tc := range []struct{ name, addr string }{{"direct", be}, {"gateway", "unix://" + l.Addr().String()}} {
		b.Run(tc.name, func(b *testing.B) {
			client, err := grpc.NewClient(tc.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			cs, err := client.NewStream(sessionCtx(b.Context(), "bench-"+tc.name), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/moby.buildkit.v1.Control/Session")
			if err != nil {
				b.Fatal(err)
			}
			msg := frame(make([]byte, size))
			b.SetBytes(burst * size)
			b.ResetTimer()
			for range b.N {
				errc := make(chan error, 1)
				go func() {
					for range burst {
						m := msg
						if err := cs.SendMsg(&m); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				for range burst {
					var got frame
					if err := cs.RecvMsg(&got); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cs.CloseSend()
		})
	}
}
