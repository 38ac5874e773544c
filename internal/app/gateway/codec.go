package gateway

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// frame is one gRPC message as it was on the wire, undecoded: what the
// gateway reads and writes of an inspected request.
type frame []byte

// relayMsg is one message relayed without being read: the buffers grpc
// received it in, passed on to the other side as they are (no copy). Each
// received relayMsg holds a reference on its buffers, which the send that
// takes it gives back.
type relayMsg struct {
	bufs mem.BufferSlice
}

// free gives back the buffers of a message that was not sent.
func (m *relayMsg) free() {
	if m.bufs != nil {
		m.bufs.Free()
		m.bufs = nil
	}
}

// rawCodec passes messages through unchanged: the gateway forwards messages
// it does not inspect without knowing their types.
type rawCodec struct{}

var _ encoding.CodecV2 = rawCodec{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *frame:
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	case *relayMsg:
		// grpc frees what Marshal returns once it is written: that is
		// the reference Unmarshal took.
		b := m.bufs
		m.bufs = nil
		return b, nil
	}
	return nil, fmt.Errorf("gateway codec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *frame:
		// A copy: grpc reuses data's buffers once Unmarshal returns.
		*m = data.Materialize()
		return nil
	case *relayMsg:
		// Keep the buffers past Unmarshal: a reference of our own.
		data.Ref()
		m.bufs = data
		return nil
	}
	return fmt.Errorf("gateway codec: cannot unmarshal into %T", v)
}

// Name is "proto": the content subtype clients and buildkitd send and
// expect.
func (rawCodec) Name() string { return "proto" }
