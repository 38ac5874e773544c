package gateway

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// frame is one gRPC message as it was on the wire, undecoded.
type frame []byte

// rawCodec passes frames through unchanged: the gateway forwards messages
// it does not inspect without knowing their types.
type rawCodec struct{}

var _ encoding.CodecV2 = rawCodec{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("gateway codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*f)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("gateway codec: cannot unmarshal into %T", v)
	}
	// A copy: grpc reuses data's buffers once Unmarshal returns.
	*f = data.Materialize()
	return nil
}

// Name is "proto": the content subtype clients and buildkitd send and
// expect.
func (rawCodec) Name() string { return "proto" }
