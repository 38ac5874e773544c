package gateway

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
)

// countingPool counts the buffers given back to it.
type countingPool struct{ put int }

func (p *countingPool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p *countingPool) Put(*[]byte)       { p.put++ }

// TestRelayMsgKeepsBuffers: a relayed message holds grpc's receive
// buffers past Unmarshal (grpc frees its own reference then) and gives
// them back once sent, without a copy.
func TestRelayMsgKeepsBuffers(t *testing.T) {
	pool := &countingPool{}
	payload := bytes.Repeat([]byte("a session message "), 256) // over grpc's pooling threshold
	b := append([]byte(nil), payload...)
	data := mem.BufferSlice{mem.NewBuffer(&b, pool)}
	var m relayMsg
	if err := (rawCodec{}).Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	data.Free() // what grpc does after Unmarshal
	if pool.put != 0 {
		t.Fatalf("the buffer went back to the pool while the message holds it")
	}
	out, err := (rawCodec{}).Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Materialize(); !bytes.Equal(got, payload) {
		t.Errorf("Marshal = %d bytes; want the %d received", len(got), len(payload))
	}
	if len(out) != 1 || &out[0].ReadOnlyData()[0] != &b[0] {
		t.Errorf("Marshal copied the message")
	}
	out.Free() // what grpc does once it is written
	if pool.put != 1 {
		t.Errorf("buffers given back %d times; want once", pool.put)
	}
	// A message that was never sent gives its buffers back with free.
	b2 := append([]byte(nil), payload...)
	data = mem.BufferSlice{mem.NewBuffer(&b2, pool)}
	(rawCodec{}).Unmarshal(data, &m)
	data.Free()
	m.free()
	if pool.put != 2 {
		t.Errorf("an unsent message's buffers given back %d times in all; want 2", pool.put)
	}
}
