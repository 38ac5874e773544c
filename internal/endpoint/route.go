package endpoint

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// routeKind is what a request path asks for.
type routeKind int

const (
	routeNone     routeKind = iota // not under the Server's token
	routeBase                      // /v2/
	routeManifest                  // /v2/<token>/<n>/manifests/<ref>
	routeBlob                      // /v2/<token>/<n>/blobs/<digest>
	routeOther                     // anything else under /v2/<token>/<n>/
)

// route is a parsed request path.
type route struct {
	kind routeKind
	name string // <n>: which cache (not the token)
	ref  string // the manifest reference or blob digest as given
}

// parseRoute parses a request path (decoded). Only names whose first
// component is token, compared in constant time, are routed.
func parseRoute(path, token string) route {
	if path == "/v2/" || path == "/v2" {
		return route{kind: routeBase}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || subtle.ConstantTimeCompare([]byte(parts[0]), []byte(token)) != 1 || parts[1] == "" {
		return route{}
	}
	r := route{kind: routeOther, name: parts[1]}
	if len(parts) == 4 && parts[3] != "" {
		switch parts[2] {
		case "manifests":
			r.kind, r.ref = routeManifest, parts[3]
		case "blobs":
			r.kind, r.ref = routeBlob, parts[3]
		}
	}
	return r
}

// parseDigest parses a canonical sha256 digest: "sha256:" and 64 lowercase
// hex digits.
func parseDigest(s string) (v1.Hash, bool) {
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexPart) != 64 {
		return v1.Hash{}, false
	}
	for _, c := range hexPart {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return v1.Hash{}, false
		}
	}
	return v1.Hash{Algorithm: "sha256", Hex: hexPart}, true
}

// Registry API error codes the Server answers with.
const (
	codeNameUnknown     = "NAME_UNKNOWN"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeUnsupported     = "UNSUPPORTED"
	codeUnauthorized    = "UNAUTHORIZED"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeUnavailable     = "UNAVAILABLE"
)

// writeError answers with a registry API error.
func writeError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(map[string]any{
		"errors": []map[string]string{{"code": code, "message": message}},
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", itoa(int64(len(body))))
	w.WriteHeader(status)
	w.Write(body)
}
