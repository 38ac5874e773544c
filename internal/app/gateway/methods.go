package gateway

// Every method the gateway answers or forwards, and what it checks before
// forwarding it. A method not listed is refused (codes.PermissionDenied):
// what the gateway has not decided on does not reach buildkitd. docs/serve.md
// lists the same table for people.

// Methods the gateway reads.
const (
	mControlSolve        = "/moby.buildkit.v1.Control/Solve"
	mStatus              = "/moby.buildkit.v1.Control/Status"
	mSession             = "/moby.buildkit.v1.Control/Session"
	mListenBuildHistory  = "/moby.buildkit.v1.Control/ListenBuildHistory"
	mUpdateBuildHistory  = "/moby.buildkit.v1.Control/UpdateBuildHistory"
	mBridgeSolve         = "/moby.buildkit.v1.frontend.LLBBridge/Solve"
	mResolveImageConfig  = "/moby.buildkit.v1.frontend.LLBBridge/ResolveImageConfig"
	mResolveSourceMeta   = "/moby.buildkit.v1.frontend.LLBBridge/ResolveSourceMeta"
	bridgeService        = "/moby.buildkit.v1.frontend.LLBBridge/"
	sessionIDHeader      = "x-docker-expose-session-uuid" // session.headerSessionID, as gRPC metadata
	contentService       = "/containerd.services.content.v1.Content/"
	traceExport          = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	controlDiskUsage     = "/moby.buildkit.v1.Control/DiskUsage"
	controlPrune         = "/moby.buildkit.v1.Control/Prune"
	controlInfo          = "/moby.buildkit.v1.Control/Info"
	contentInfo          = contentService + "Info"
	contentRead          = contentService + "Read"
	bridgeReturn         = bridgeService + "Return"
	bridgeExecProcess    = bridgeService + "ExecProcess"
	bridgeNewContainer   = bridgeService + "NewContainer"
	bridgeReleaseContain = bridgeService + "ReleaseContainer"
)

// rule is what the gateway checks on a call before forwarding it.
type rule int

const (
	// ruleShared: builder-wide, names nothing of a client's: forwarded to
	// every admitted client.
	ruleShared rule = iota + 1
	// ruleHealth: answered by the gateway.
	ruleHealth
	// ruleSolve: Control.Solve. Its Ref (the build) and every session it
	// names (Session, SourcePolicySession, local-sessionid:* attributes,
	// local.session and oci.session of its definitions' sources and of
	// its source policy) are bound to the caller, or refused when another
	// client holds them; its cache imports and frontend are decided.
	ruleSolve
	// ruleStatus: Control.Status of Ref: bound to the caller as Solve.
	ruleStatus
	// ruleSession: Control.Session attaches the session of its
	// X-Docker-Expose-Session-Uuid header: bound to the caller.
	ruleSession
	// ruleHistory: Control.ListenBuildHistory: a Ref must not be another
	// client's; the stream carries only the caller's builds.
	ruleHistory
	// ruleHistoryUpdate: Control.UpdateBuildHistory of a build the caller
	// owns.
	ruleHistoryUpdate
	// ruleBridge: an LLBBridge call runs in the build its
	// buildkit-controlapi-buildid metadata names: the caller's (bound on
	// first use, as Status). Solve, ResolveImageConfig and
	// ResolveSourceMeta also have the sessions they name checked; Solve
	// has its cache imports and frontend decided.
	ruleBridge
)

// methods is every method the gateway serves: BuildKit v0.34.2's control
// API, frontend bridge (LLBBridge), the read-only content store of its
// build history, its trace collector, and gRPC health.
var methods = map[string]rule{
	healthCheck: ruleHealth,
	healthWatch: ruleHealth,

	// moby.buildkit.v1.Control
	controlDiskUsage:    ruleShared, // the builder's cache records: builder-wide
	controlPrune:        ruleShared, // the builder's cache: builder-wide
	mControlSolve:       ruleSolve,
	mStatus:             ruleStatus,
	mSession:            ruleSession,
	listWorkers:         ruleShared,
	controlInfo:         ruleShared,
	mListenBuildHistory: ruleHistory,
	mUpdateBuildHistory: ruleHistoryUpdate,

	// moby.buildkit.v1.frontend.LLBBridge: every method runs in a build.
	mResolveImageConfig:                 ruleBridge,
	mResolveSourceMeta:                  ruleBridge,
	mBridgeSolve:                        ruleBridge,
	bridgeService + "ReadFile":          ruleBridge,
	bridgeService + "ReadDir":           ruleBridge,
	bridgeService + "StatFile":          ruleBridge,
	bridgeService + "Evaluate":          ruleBridge,
	bridgeService + "Ping":              ruleBridge,
	bridgeReturn:                        ruleBridge,
	bridgeService + "Inputs":            ruleBridge,
	bridgeNewContainer:                  ruleBridge,
	bridgeReleaseContain:                ruleBridge,
	bridgeExecProcess:                   ruleBridge,
	bridgeService + "ReadFileContainer": ruleBridge,
	bridgeService + "ReadDirContainer":  ruleBridge,
	bridgeService + "StatFileContainer": ruleBridge,
	bridgeService + "Warn":              ruleBridge,

	// containerd.services.content.v1.Content, read-only in buildkitd
	// (the build history's logs, traces and attestations): a blob is
	// read by its digest, which only the history records the caller sees
	// name. Listing the store (List, ListStatuses, Status) and writing
	// (Write, Update, Delete, Abort) are refused.
	contentInfo: ruleShared,
	contentRead: ruleShared,

	// buildx sends its client-side spans to buildkitd's collector.
	traceExport: ruleShared,
}

// decodesFirst reports whether the gateway reads the first message of a
// call of method: the requests that name a build or sessions, or carry
// cache imports.
func decodesFirst(method string) bool {
	switch method {
	case mControlSolve, mStatus, mListenBuildHistory, mUpdateBuildHistory, mBridgeSolve, mResolveImageConfig, mResolveSourceMeta:
		return true
	}
	return false
}
