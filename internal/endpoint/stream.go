package endpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HoldBack is how many bytes at the end of a streamed blob the Server
// keeps until it has read the whole upstream body and checked its length
// and digest. A client that has not received them has not received the
// blob: its Content-Length is not met.
const HoldBack = 64 << 10

// streamBuffer is the size of one read from upstream when streaming.
const streamBuffer = 256 << 10

// clientError is a failed write to the client: it went away. Not a
// Problem.
type clientError struct{ err error }

func (e *clientError) Error() string { return "writing to the client: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// copyVerified copies body to w, hashing it on the way, and writes the
// last HoldBack bytes of desc.Size only after body has ended with exactly
// desc.Size bytes that hash to desc.Digest. It fails with a *refusal
// (Mismatch) when they do not, a *clientError when w fails, or the read
// error. buf is its memory: at least streamBuffer+HoldBack bytes.
func copyVerified(w io.Writer, body io.Reader, desc v1.Descriptor, buf []byte) error {
	rb, tail := buf[:streamBuffer], buf[streamBuffer:streamBuffer+HoldBack]
	free := max(desc.Size-HoldBack, 0) // bytes that may go out before the check
	h := sha256.New()
	var read, sent int64
	held := 0
	for {
		n, rerr := body.Read(rb)
		if n > 0 {
			read += int64(n)
			if read > desc.Size {
				return lengthMismatch(desc, read)
			}
			h.Write(rb[:n])
			chunk := rb[:n]
			if sent < free {
				k := min(int64(n), free-sent)
				if _, err := w.Write(chunk[:k]); err != nil {
					return &clientError{err}
				}
				sent += k
				chunk = chunk[k:]
			}
			// read <= desc.Size, so what is past free fits in tail.
			held += copy(tail[held:], chunk)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading %s from the registry after %d bytes: %w", desc.Digest, read, rerr)
		}
	}
	if read != desc.Size {
		return lengthMismatch(desc, read)
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}); got != desc.Digest {
		return mismatch("the registry served bytes for %s that hash to %s", desc.Digest, got)
	}
	if _, err := w.Write(tail[:held]); err != nil {
		return &clientError{err}
	}
	return nil
}
