package ledger

// The expiry index: entries by the time they expire, so that a write
// removes the expired ones without reading the others.

import (
	"encoding/binary"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// expiryKey is the key of the expiry index: the expiry in Unix seconds,
// big-endian so that the index is in expiry order, then the entry's key.
func expiryKey(expires time.Time, key string) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(max(expires.Unix(), 0)))
	return append(k, key...)
}

// pruneExpired removes the entries the expiry index says have expired at
// now, reading only those. The index only ever removes entries: an index
// that is wrong costs cache hits, never trust.
func pruneExpired[S any](b, idx *bolt.Bucket, now time.Time) (int, error) {
	var drop [][]byte
	c := idx.Cursor()
	for k, _ := c.First(); k != nil && len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) <= now.Unix(); k, _ = c.Next() {
		drop = append(drop, slices.Clone(k))
	}
	n := 0
	for _, k := range drop {
		key := k[8:]
		// The entry may have been recorded again with a later expiry.
		if v := b.Get(key); v != nil {
			if e, err := decodeEntry[S](string(key), v); err != nil || e.Expired(now) {
				if err := b.Delete(key); err != nil {
					return n, err
				}
				n++
			}
		}
		if err := idx.Delete(k); err != nil {
			return n, err
		}
	}
	return n, nil
}

// entryBuckets returns the entries bucket and the expiry index, creating
// them. tx is writable.
func entryBuckets(tx *bolt.Tx) (entries, expiry *bolt.Bucket, err error) {
	if entries, err = tx.CreateBucketIfNotExists([]byte(EntriesBucket)); err != nil {
		return nil, nil, err
	}
	if expiry, err = tx.CreateBucketIfNotExists([]byte(expiryBucket)); err != nil {
		return nil, nil, err
	}
	return entries, expiry, nil
}
