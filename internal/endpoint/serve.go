package endpoint

import (
	"errors"
	"net/http"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// SmallBlob is the largest blob (by its verified descriptor's size) the
// Server buffers and checks whole before sending a byte: cache configs and
// image configs. Larger blobs are streamed (see HoldBack).
const SmallBlob = 4 << 20

// serve answers one client request.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "the verified content endpoint is closed")
		return
	}
	defer s.active.Done()
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="trustcache verified content endpoint"`)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "the verified content endpoint needs its credential")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, codeUnsupported, "the verified content endpoint is read-only")
		return
	}
	sc := s.scopeOf(r.URL.Path)
	var rt route
	if sc != nil {
		rt = parseRoute(r.URL.Path, sc.token)
	} else if p := r.URL.Path; p == "/v2/" || p == "/v2" {
		rt = route{kind: routeBase}
	}
	if rt.kind == routeBase {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
		return
	}
	src := s.source(sc, rt)
	switch {
	case src == nil:
		writeError(w, http.StatusNotFound, codeNameUnknown, "repository name not known to registry")
	case rt.kind == routeManifest:
		s.serveManifest(w, r, src, rt.ref)
	case rt.kind == routeBlob:
		s.serveBlob(w, r, src, rt.ref)
	default:
		writeError(w, http.StatusNotFound, codeUnsupported, "the verified content endpoint serves manifests and blobs by digest only")
	}
}

func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request, src *source, ref string) {
	d, ok := parseDigest(ref)
	if !ok {
		writeError(w, http.StatusNotFound, codeManifestUnknown, "manifests are served by verified digest only")
		return
	}
	data, mediaType, err := src.manifest(r.Context(), d)
	if err != nil {
		s.refuse(w, r, src, d, err, codeManifestUnknown)
		return
	}
	h := w.Header()
	h.Set("Content-Type", mediaType)
	h.Set("Content-Length", itoa(int64(len(data))))
	h.Set("Docker-Content-Digest", d.String())
	if r.Method == http.MethodGet {
		w.Write(data)
	}
	s.log.Debug("served", "cache", src.cache, "digest", d.String(), "action", "served manifest")
}

func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, src *source, ref string) {
	d, ok := parseDigest(ref)
	if !ok {
		writeError(w, http.StatusNotFound, codeBlobUnknown, "blobs are served by verified digest only")
		return
	}
	desc, err := src.blob(r.Context(), d)
	if err != nil {
		s.refuse(w, r, src, d, err, codeBlobUnknown)
		return
	}
	if r.Method == http.MethodHead {
		setBlobHeaders(w, desc)
		return
	}
	if desc.Size <= SmallBlob {
		b, err := src.upstream.smallBlob(r.Context(), desc)
		if err != nil {
			s.refuse(w, r, src, d, err, codeBlobUnknown)
			return
		}
		setBlobHeaders(w, desc)
		w.Write(b)
		s.log.Debug("served", "cache", src.cache, "digest", d.String(), "action", "served blob")
		return
	}
	s.streamBlob(w, r, src, desc)
}

// setBlobHeaders sets the headers of a blob response: those of its
// verified descriptor, never the registry's.
func setBlobHeaders(w http.ResponseWriter, desc v1.Descriptor) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", itoa(desc.Size))
	h.Set("Docker-Content-Digest", desc.Digest.String())
}

// streamBlob sends a large blob as it arrives, all but its last HoldBack
// bytes, and those only once the whole blob is checked; otherwise it
// aborts the response.
func (s *Server) streamBlob(w http.ResponseWriter, r *http.Request, src *source, desc v1.Descriptor) {
	resp, err := src.upstream.get(r.Context(), "blobs", desc.Digest, true)
	if err != nil {
		s.refuse(w, r, src, desc.Digest, err, codeBlobUnknown)
		return
	}
	defer resp.Body.Close()
	if resp.ContentLength >= 0 && resp.ContentLength != desc.Size {
		s.refuse(w, r, src, desc.Digest, lengthMismatch(desc, resp.ContentLength), codeBlobUnknown)
		return
	}
	setBlobHeaders(w, desc)
	w.WriteHeader(http.StatusOK)

	buf := s.buffers.Get().(*[]byte)
	defer s.buffers.Put(buf)
	err = copyVerified(w, resp.Body, desc, *buf)
	var cerr *clientError
	switch {
	case err == nil:
		s.log.Debug("served", "cache", src.cache, "digest", desc.Digest.String(), "action", "streamed blob")
		return
	case errors.As(err, &cerr) || r.Context().Err() != nil:
		// The client went away, or the Server is closing: no Problem.
	default:
		p := s.record(src, desc.Digest, err)
		s.log.Warn("aborted", "cache", src.cache, "digest", desc.Digest.String(), "action", "aborted blob", "kind", p.Kind.String(), "reason", p.Reason)
	}
	// The status is sent: only a connection closed before Content-Length
	// is met tells the client.
	panic(http.ErrAbortHandler)
}

// refuse answers a request whose content cannot be served, and records
// why unless it is the client's own doing (an unreachable digest, a
// request canceled).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, src *source, d v1.Hash, err error, unknownCode string) {
	if errors.Is(err, errUnreachable) {
		writeError(w, http.StatusNotFound, unknownCode, d.String()+" is not part of the verified cache")
		s.log.Info("refused", "cache", src.cache, "digest", d.String(), "action", "refused", "reason", errUnreachable.Error())
		return
	}
	if r.Context().Err() != nil {
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "request canceled")
		return
	}
	p := s.record(src, d, err)
	s.log.Warn("refused", "cache", src.cache, "digest", d.String(), "action", "refused", "kind", p.Kind.String(), "reason", p.Reason)
	switch p.Kind {
	case NotFound:
		writeError(w, http.StatusNotFound, unknownCode, "the registry does not have "+d.String())
	case Mismatch:
		writeError(w, http.StatusBadGateway, codeDigestInvalid, "refused: "+p.Reason)
	default:
		writeError(w, http.StatusBadGateway, codeUnavailable, "the registry could not be read: "+p.Reason)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
