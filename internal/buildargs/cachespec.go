package buildargs

import (
	"github.com/tonistiigi/go-csvvalue"

	"github.com/docker-trustcache/docker-trustcache/internal/cachespec"
)

// The --cache-from and --cache-to grammar is package cachespec's; these
// names are the command line's view of it.

// CacheSpec is one cache source or destination (cachespec.Spec).
type CacheSpec = cachespec.Spec

// Attr is one key=value attribute of a CacheSpec.
type Attr = cachespec.Attr

// ParseCacheFlag parses the value of one --cache-from or --cache-to flag
// (cachespec.ParseFlag).
func ParseCacheFlag(value string) ([]CacheSpec, error) { return cachespec.ParseFlag(value) }

// ParseCacheSpec parses one cache spec (cachespec.Parse).
func ParseCacheSpec(s string) (CacheSpec, error) { return cachespec.Parse(s) }

// splitCSV splits one CSV line as buildx does, with
// github.com/tonistiigi/go-csvvalue's default parser (see cachespec's
// splitCSV): the other comma-separated flag values (--output, --attest …).
func splitCSV(line string) ([]string, error) { return csvvalue.Fields(line, nil) }
