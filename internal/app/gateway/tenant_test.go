package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/docker-trustcache/docker-trustcache/internal/testreg"
)

// testClientKey is the metadata that names the client in tests that run
// two clients on one process (byMetadata).
const testClientKey = "x-test-client"

// byMetadata tells clients apart by testClientKey: two identities from
// one process, as two uids would be.
func byMetadata(ctx context.Context) (Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(testClientKey)
	if len(v) != 1 {
		return Identity{}, errors.New("no " + testClientKey)
	}
	return Identity{Key: "test:" + v[0], Name: v[0]}, nil
}

// tenants is a gateway in front of a fake buildkitd, with a victim and an
// attacker client.
type tenants struct {
	be               *backend
	client           *grpc.ClientConn
	log              *testreg.Buffer
	victim, attacker context.Context
}

func newTenants(t *testing.T) *tenants {
	t.Helper()
	be := startBackend(t)
	client, log, s := gatewayServer(t, be, fakeEndpoint{}, WithIdentify(byMetadata))
	s.awaitOpen = 300 * time.Millisecond
	return &tenants{be: be, client: client, log: log,
		victim:   metadata.AppendToOutgoingContext(t.Context(), testClientKey, "victim"),
		attacker: metadata.AppendToOutgoingContext(t.Context(), testClientKey, "attacker"),
	}
}

// call makes a call with one request message and reads buildkitd's
// answer (the fake echoes it).
func (tn *tenants) call(ctx context.Context, method string, req []byte) error {
	cs, err := tn.client.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}
	f := frame(req)
	if err := cs.SendMsg(&f); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	cs.CloseSend()
	var got frame
	for {
		if err := cs.RecvMsg(&got); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// open makes the victim's build and session as buildx does: a Status and
// a Control.Solve with the build's ID, and the session attached.
func (tn *tenants) open(t *testing.T, ctx context.Context, build, session string) {
	t.Helper()
	if err := tn.call(ctx, mStatus, tagBytes(statusRef, []byte(build))); err != nil {
		t.Fatalf("Status of %s: %v", build, err)
	}
	if err := tn.call(sessionCtx(ctx, session), mSession, nil); err != nil {
		t.Fatalf("attaching session %s: %v", session, err)
	}
	if err := tn.call(ctx, mControlSolve, cat(tagBytes(ctlSolveRef, []byte(build)), tagBytes(ctlSolveSession, []byte(session)))); err != nil {
		t.Fatalf("Solve of %s: %v", build, err)
	}
}

// reached counts the calls of method from client buildkitd got.
func (tn *tenants) reached(method, client string) int {
	n := 0
	for _, c := range tn.be.recorded() {
		if c.method == method && slices.Contains(c.md.Get(testClientKey), client) {
			n++
		}
	}
	return n
}

// wantDenied makes the attacker's call of method with req (ctx carries
// the attacker's identity) and checks that it is refused with
// PermissionDenied and does not reach buildkitd.
func (tn *tenants) wantDenied(t *testing.T, what string, ctx context.Context, method string, req []byte) {
	t.Helper()
	before := tn.reached(method, "attacker")
	if err := tn.call(ctx, method, req); status.Code(err) != codes.PermissionDenied {
		t.Errorf("%s: %s = %v; want PermissionDenied", what, method, err)
	}
	if tn.reached(method, "attacker") != before {
		t.Errorf("%s: %s reached buildkitd", what, method)
	}
}

// sourceDef is a pb.Definition of one source op with attributes.
func sourceDef(identifier string, attrs ...string) []byte {
	src := tagBytes(1, []byte(identifier))
	for i := 0; i < len(attrs); i += 2 {
		src = append(src, mapField(sourceAttrs, attrs[i], attrs[i+1])...)
	}
	return tagBytes(definitionDef, tagBytes(opSource, src))
}

// Attack 1 of #21: another client's frontend-bridge calls in the victim's
// build (Return first: the victim exports the attacker's result). Every
// LLBBridge method is refused for the attacker and forwarded for the
// victim.
func TestTenantBridgeCallsBelongToTheBuild(t *testing.T) {
	tn := newTenants(t)
	tn.open(t, tn.victim, "build-victim", "session-victim")
	var bridge []string
	for m := range methods {
		if strings.HasPrefix(m, bridgeService) {
			bridge = append(bridge, m)
		}
	}
	slices.Sort(bridge)
	if len(bridge) != 17 {
		t.Fatalf("%d LLBBridge methods in the table; BuildKit v0.34.2 has 17", len(bridge))
	}
	for _, m := range bridge {
		tn.wantDenied(t, "forged build ID", buildCtx(tn.attacker, "build-victim"), m, nil)
	}
	for _, m := range bridge {
		if err := tn.call(buildCtx(tn.victim, "build-victim"), m, nil); err != nil {
			t.Errorf("the victim's %s: %v", m, err)
		}
	}
	// Two build IDs (buildkitd reads none) or none: refused.
	ctx := metadata.AppendToOutgoingContext(tn.attacker, buildIDKey, "build-attacker", buildIDKey, "build-victim")
	if err := tn.call(ctx, bridgeReturn, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Return with two build IDs = %v; want InvalidArgument", err)
	}
	if err := tn.call(tn.attacker, bridgeReturn, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Return with no build ID = %v; want InvalidArgument", err)
	}
	if !strings.Contains(tn.log.String(), `"msg":"call refused","client":"attacker"`) || !strings.Contains(tn.log.String(), `"names":"build build-victim"`) {
		t.Errorf("refusals not logged:\n%s", tn.log)
	}
}

// A build ID is the first client's: another's Control.Solve or Status
// with it is refused (a forged build ID).
func TestTenantForgedBuildID(t *testing.T) {
	tn := newTenants(t)
	tn.open(t, tn.victim, "build-victim", "session-victim")
	tn.wantDenied(t, "Solve with the victim's Ref", tn.attacker, mControlSolve, tagBytes(ctlSolveRef, []byte("build-victim")))
	tn.wantDenied(t, "Status of the victim's build", tn.attacker, mStatus, tagBytes(statusRef, []byte("build-victim")))
	tn.wantDenied(t, "UpdateBuildHistory of the victim's build", tn.attacker, mUpdateBuildHistory, tagBytes(updateHistoryRef, []byte("build-victim")))
	tn.wantDenied(t, "ListenBuildHistory of the victim's build", tn.attacker, mListenBuildHistory, tagBytes(historyReqRef, []byte("build-victim")))
	tn.wantDenied(t, "UpdateBuildHistory of a build the gateway never saw", tn.attacker, mUpdateBuildHistory, tagBytes(updateHistoryRef, []byte("build-before")))
	// The last Ref is the one buildkitd reads.
	tn.wantDenied(t, "Solve with a second Ref", tn.attacker, mControlSolve, cat(tagBytes(ctlSolveRef, []byte("build-attacker")), tagBytes(ctlSolveRef, []byte("build-victim"))))
	// buildx probes the history API with a made-up Ref: forwarded (the
	// stream shows only the caller's builds).
	if err := tn.call(tn.attacker, mListenBuildHistory, tagBytes(historyReqRef, []byte("buildx-test-history-api-feature"))); err != nil {
		t.Errorf("ListenBuildHistory of a build no one opened: %v; want forwarded", err)
	}
	if err := tn.call(tn.victim, mUpdateBuildHistory, tagBytes(updateHistoryRef, []byte("build-victim"))); err != nil {
		t.Errorf("the victim's UpdateBuildHistory: %v", err)
	}
}

// Attack 2 of #21: the victim's session (its secrets, SSH agent, local
// files) reached from another client: by attaching a session of the same
// ID, or naming it in any field buildkitd looks a session up by.
func TestTenantForgedSessionID(t *testing.T) {
	tn := newTenants(t)
	tn.open(t, tn.victim, "build-victim", "session-victim")
	tn.open(t, tn.attacker, "build-attacker", "session-attack") // as long as the victim's
	tn.wantDenied(t, "attaching the victim's session", sessionCtx(tn.attacker, "session-victim"), mSession, nil)

	policy := func(attr, id string) []byte {
		return tagBytes(policyRules, tagBytes(ruleUpdates, cat(tagBytes(1, []byte("local://context")), mapField(updateAttrs, attr, id))))
	}
	nested := tagBytes(definitionDef, tagBytes(opBuild, tagBytes(buildOpDef, sourceDef("local://context", attrLocalSession, "session-victim"))))
	own := tagBytes(ctlSolveRef, []byte("build-attacker"))
	for _, tc := range []struct {
		name, method string
		req          []byte
	}{
		{"Solve.Session", mControlSolve, cat(own, tagBytes(ctlSolveSession, []byte("session-victim")))},
		{"Solve.Session with a prefix", mControlSolve, cat(own, tagBytes(ctlSolveSession, []byte("anything:session-victim")))},
		{"Solve.SourcePolicySession", mControlSolve, cat(own, tagBytes(ctlSolveSourcePolicySession, []byte("session-victim")))},
		{"FrontendAttrs local-sessionid", mControlSolve, cat(own, mapField(ctlSolveFrontendAttrs, "local-sessionid:context", "session-victim"))},
		{"Definition local.session", mControlSolve, cat(own, tagBytes(ctlSolveDefinition, sourceDef("local://context", attrLocalSession, "x:session-victim")))},
		{"Definition oci.session", mControlSolve, cat(own, tagBytes(ctlSolveDefinition, sourceDef("oci-layout://store/img", attrOCISession, "session-victim")))},
		{"a build op's definition", mControlSolve, cat(own, tagBytes(ctlSolveDefinition, nested))},
		{"FrontendInputs", mControlSolve, cat(own, tagBytes(ctlSolveFrontendInputs, cat(tagBytes(1, []byte("ctx")), tagBytes(2, sourceDef("local://context", attrLocalSession, "session-victim")))))},
		{"SourcePolicy CONVERT attrs", mControlSolve, cat(own, tagBytes(ctlSolveSourcePolicy, policy(attrLocalSession, "session-victim")))},
		{"LLBBridge.Solve Definition", mBridgeSolve, tagBytes(brSolveDefinition, sourceDef("local://context", attrLocalSession, "session-victim"))},
		{"LLBBridge.Solve FrontendOpt", mBridgeSolve, mapField(brSolveFrontendOpt, "local-sessionid:dockerfile", "session-victim")},
		{"LLBBridge.Solve SourcePolicies", mBridgeSolve, tagBytes(brSolveSourcePolicies, policy(attrOCISession, "session-victim"))},
		{"ResolveImageConfig.SessionID", mResolveImageConfig, tagBytes(resolveImageSessionID, []byte("session-victim"))},
		{"ResolveSourceMeta.Source", mResolveSourceMeta, tagBytes(resolveSourceSource, cat(tagBytes(1, []byte("oci-layout://s/x")), mapField(sourceAttrs, attrOCISession, "session-victim")))},
	} {
		ctx := buildCtx(tn.attacker, "build-attacker")
		tn.wantDenied(t, tc.name, ctx, tc.method, tc.req)
		// The same request naming the attacker's own session is forwarded.
		own := bytes.ReplaceAll(tc.req, []byte("session-victim"), []byte("session-attack"))
		if err := tn.call(ctx, tc.method, own); err != nil {
			t.Errorf("%s naming the client's own session: %v", tc.name, err)
		}
	}
}

// IDs no client opened (guessed): a bridge call or a session naming one
// is refused once the wait for it to open ends; a build opened after its
// frontend's first call (buildx makes them concurrently) is served.
func TestTenantGuessedIDs(t *testing.T) {
	tn := newTenants(t)
	for i := range 3 {
		id := fmt.Sprintf("guess-%d", i)
		tn.wantDenied(t, "guessed build ID", buildCtx(tn.attacker, id), bridgeReturn, nil)
		tn.wantDenied(t, "guessed session ID", tn.attacker, mControlSolve, tagBytes(ctlSolveSession, []byte(id)))
	}
	if !strings.Contains(tn.log.String(), "no build of this client has that ID") {
		t.Errorf("refusal not logged:\n%s", tn.log)
	}
	done := make(chan error, 1)
	go func() { done <- tn.call(buildCtx(tn.victim, "build-late"), bridgeReturn, nil) }()
	time.Sleep(50 * time.Millisecond)
	tn.open(t, tn.victim, "build-late", "session-late")
	if err := <-done; err != nil {
		t.Errorf("a bridge call that overtook its build's Solve: %v", err)
	}
}

// historyEvent is a BuildHistoryEvent about build ref.
func historyEvent(ref string) []byte {
	return cat(tagVarint(1, 0), tagBytes(historyEventRecord, cat(tagBytes(historyRecordRef, []byte(ref)), tagBytes(2, []byte("dockerfile.v0")))))
}

// ListenBuildHistory streams each client only its own builds.
func TestTenantHistoryFiltered(t *testing.T) {
	tn := newTenants(t)
	tn.open(t, tn.victim, "build-victim", "session-victim")
	tn.open(t, tn.attacker, "build-attacker", "session-attack")
	tn.be.history = [][]byte{historyEvent("build-victim"), historyEvent("build-attacker"), historyEvent("build-before-the-gateway"), []byte("\xff")}
	for _, tc := range []struct {
		ctx  context.Context
		want string
	}{{tn.attacker, "build-attacker"}, {tn.victim, "build-victim"}} {
		cs, err := tn.client.NewStream(tc.ctx, &grpc.StreamDesc{ServerStreams: true}, mListenBuildHistory)
		if err != nil {
			t.Fatal(err)
		}
		req := frame(tagVarint(1, 1))
		if err := cs.SendMsg(&req); err != nil {
			t.Fatal(err)
		}
		cs.CloseSend()
		var got []string
		for {
			var ev frame
			if err := cs.RecvMsg(&ev); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				break
			}
			got = append(got, historyEventRef(ev))
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("history streamed %q; want only %q", got, tc.want)
		}
	}
}

// Methods the gateway has not decided on are refused, not forwarded.
func TestTenantUnknownMethodsRefused(t *testing.T) {
	tn := newTenants(t)
	for _, m := range []string{
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		contentService + "List",
		contentService + "Write",
		contentService + "Delete",
		"/moby.buildkit.v1.Control/Export",
		"/moby.buildkit.v1.frontend.LLBBridge/NewMethod",
	} {
		tn.wantDenied(t, "unknown method", tn.attacker, m, nil)
	}
	for _, m := range []string{listWorkers, controlInfo, controlDiskUsage, contentRead, traceExport} {
		if err := tn.call(tn.attacker, m, nil); err != nil {
			t.Errorf("%s: %v; want forwarded", m, err)
		}
	}
}

// An identity that cannot be told is refused.
func TestTenantUnidentifiedRefused(t *testing.T) {
	tn := newTenants(t)
	if err := tn.call(t.Context(), listWorkers, nil); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a call with no identity = %v; want PermissionDenied", err)
	}
}

// The owners' bound: a client that names more than maxOwnedPerClient IDs
// loses only its own oldest.
func TestOwnersBound(t *testing.T) {
	o := newOwners()
	o.claim(kindBuild, "victim-build", "victim")
	for i := range maxOwnedPerClient + 10 {
		o.claim(kindBuild, fmt.Sprint(i), "attacker")
	}
	if got := o.ownerOf(kindBuild, "victim-build"); got != "victim" {
		t.Errorf("victim's build owned by %q after the attacker's flood", got)
	}
	if got := o.ownerOf(kindBuild, "0"); got != "" {
		t.Errorf("the attacker's oldest build still owned by %q", got)
	}
	if got := o.claim(kindBuild, "victim-build", "attacker"); got != "victim" {
		t.Errorf("claim by the attacker = %q; want the victim's", got)
	}
	if got := sessionLookup("a:b:c"); got != "b:c" {
		t.Errorf("sessionLookup(a:b:c) = %q; want b:c, as session.Manager.Get", got)
	}
}

// helperEnv runs TestTenantHelperProcess as the attacker: a process of
// another uid.
const helperEnv = "TRUSTCACHE_GATEWAY_TEST_HELPER"

// TestTenantPeerUID: two real uids on one socket. A process of uid
// nobody is refused at connection by the default admission; admitted
// (--allow-uid), it is another client than root: the victim's build and
// session are not its.
func TestTenantPeerUID(t *testing.T) {
	if runtime.GOOS != "linux" || os.Getuid() != 0 {
		t.Skip("needs root on Linux to run a process as nobody")
	}
	const nobody = 65534
	// The test binary, where nobody can run it.
	dir, err := os.MkdirTemp("", "gw-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "gateway.test")
	if err := copyExe(exe, bin); err != nil {
		t.Fatal(err)
	}

	start := func(t *testing.T, opts ...Option) (string, *testreg.Buffer, *grpc.ClientConn) {
		be := startBackend(t)
		cc, err := Dial(be.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		var logBuf testreg.Buffer
		log := slog.New(slog.NewJSONHandler(&logBuf, nil))
		s := New(cc, NewDecider(testVerifier(t), fakeEndpoint{}, log), log, opts...)
		s.awaitOpen = 300 * time.Millisecond
		sock := filepath.Join(dir, fmt.Sprintf("gw-%d.sock", time.Now().UnixNano()))
		l, err := Listen("unix://" + sock)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(sock, 0o666); err != nil {
			t.Fatal(err)
		}
		go s.Serve(l)
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		victim, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { victim.Close() })
		return sock, &logBuf, victim
	}
	attack := func(t *testing.T, sock, method, build string) string {
		cmd := exec.Command(bin, "-test.run=^TestTenantHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"="+sock+"|"+method+"|"+build)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as nobody: %v\n%s", err, out)
		}
		_, code, ok := strings.Cut(string(out), "code=")
		if !ok {
			t.Fatalf("helper said %s", out)
		}
		code, _, _ = strings.Cut(code, "\n")
		return code
	}

	t.Run("DefaultAdmission", func(t *testing.T) {
		sock, log, _ := start(t)
		if code := attack(t, sock, listWorkers, ""); code != codes.Unavailable.String() {
			t.Errorf("nobody's ListWorkers = %s; want Unavailable (refused at connection)", code)
		}
		if !strings.Contains(log.String(), `"msg":"connection refused"`) || !strings.Contains(log.String(), fmt.Sprintf(`uid=%d`, nobody)) {
			t.Errorf("refusal not logged:\n%s", log)
		}
	})
	t.Run("Admitted", func(t *testing.T) {
		sock, _, victim := start(t, WithAdmission(Admission{UIDs: []uint32{0, nobody}}))
		req, resp := frame(tagBytes(statusRef, []byte("build-root"))), frame{}
		if err := victim.Invoke(t.Context(), mStatus, &req, &resp); err != nil {
			t.Fatal(err)
		}
		if code := attack(t, sock, bridgeReturn, "build-root"); code != codes.PermissionDenied.String() {
			t.Errorf("nobody's Return in root's build = %s; want PermissionDenied", code)
		}
		if code := attack(t, sock, listWorkers, ""); code != codes.OK.String() {
			t.Errorf("nobody's ListWorkers = %s; want OK", code)
		}
	})
}

// TestTenantHelperProcess is the attacker process of TestTenantPeerUID.
func TestTenantHelperProcess(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		t.Skip("run by TestTenantPeerUID")
	}
	parts := strings.SplitN(arg, "|", 3)
	cc, err := grpc.NewClient("unix://"+parts[0], grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if parts[2] != "" {
		ctx = buildCtx(ctx, parts[2])
	}
	req, resp := frame(nil), frame{}
	err = cc.Invoke(ctx, parts[1], &req, &resp)
	fmt.Printf("code=%s\n", status.Code(err))
}

func copyExe(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
