// Package gateway is a gRPC gateway in front of buildkitd that verifies
// every registry cache import, whichever client builds: buildx (remote
// driver), buildctl, bake, compose, CI actions.
//
// Every method of BuildKit's APIs the gateway lists (methods.go) is
// forwarded to buildkitd as raw frames through a pass-through codec: unary
// calls and streams in both directions, with their headers, trailers and
// metadata, one message at a time and never buffered; any other method is
// refused. Each client is identified (identity.go: its uid on a unix
// socket, its certificate over TLS) and admitted or refused at connection;
// builds and sessions belong to the client that opened them (owners.go),
// and a call naming another client's is refused (names.go reads what a
// request names). Only two requests are rewritten, decoded by protobuf
// field number with protowire (no BuildKit module is linked):
//
//   - /moby.buildkit.v1.Control/Solve: SolveRequest.Cache (field 8) with
//     its Imports (5) and ImportRefsDeprecated (2), and the FrontendAttrs
//     (7) "cache-imports" (JSON) and "cache-from" (comma-separated refs);
//   - /moby.buildkit.v1.frontend.LLBBridge/Solve: SolveRequest.CacheImports
//     (12) and the FrontendOpt (3) "cache-imports" and "cache-from".
//
// Every field the gateway does not rewrite is kept byte for byte. A request
// that does not decode, is larger than MaxRequestSize or lists more than
// MaxImports imports is refused with codes.InvalidArgument and never
// reaches buildkitd.
//
// Each import is decided by a Decider, as "docker trustcache build" decides
// a --cache-from: a trusted registry cache is rewritten to import from the
// verified content endpoint (internal/endpoint), pinned to the verified
// digest; an untrusted or inconclusive one is removed, or fails the call
// with codes.PermissionDenied when the policy says onUntrusted: fail; other
// cache types are removed unless the policy's allowUnsignedTypes lists
// them.
//
// Each build's trusted imports are served under a scope of the endpoint of
// their own (a random name token), shared by its Control.Solve and the
// LLBBridge.Solve calls of its client-side frontend (same build ID) and
// closed when the last of them ends: then the references buildkitd was
// given for the build answer 404.
//
// The gateway tells each build's client what it decided (talk.go): the
// build's Control.Status stream, which only its owner reads, carries one
// more vertex, "[trustcache] cache imports", whose log lines are the
// decision on each import; the one other message the gateway writes. Each
// import is logged once per build, however many of the build's Solve calls
// carry it.
//
// The gateway answers grpc.health.v1.Health itself: SERVING while buildkitd
// answers.
package gateway
