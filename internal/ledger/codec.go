package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
)

// The codec of every value in the file, entries and other concerns'
// values alike (see Store.Update).

// Seal returns the value stored under key for v: the SHA-256 of key, a
// zero byte and v's JSON, followed by that JSON. The checksum binds the
// value to its key, so a value copied under another key does not decode.
func Seal(key string, v any) ([]byte, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	sum := Checksum(key, payload)
	return append(sum[:], payload...), nil
}

// Unseal checks a value Seal stored under key and decodes its JSON into v.
func Unseal(key string, stored []byte, v any) error {
	if len(stored) < sha256.Size {
		return errors.New("value too short")
	}
	payload := stored[sha256.Size:]
	sum := Checksum(key, payload)
	if !bytes.Equal(sum[:], stored[:sha256.Size]) {
		return errors.New("checksum mismatch")
	}
	return json.Unmarshal(payload, v)
}

// Checksum is the checksum Seal puts before payload stored under key.
func Checksum(key string, payload []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(payload)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// encodeEntry returns the stored value of e (see Seal).
func encodeEntry[S any](key string, e *Entry[S]) ([]byte, error) {
	return Seal(key, e)
}

// decodeEntry checks and decodes a stored value; every failure is an
// errCorrupt.
func decodeEntry[S any](key string, v []byte) (*Entry[S], error) {
	var e Entry[S]
	if err := Unseal(key, v, &e); err != nil {
		return nil, corruptf("entry %s: %v", key, err)
	}
	if e.Pinned() != key {
		return nil, corruptf("entry %s names %s", key, e.Pinned())
	}
	return &e, nil
}
