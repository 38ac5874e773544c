package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// pbFields decodes one protobuf message into its fields by number: every
// value of a field, in order (varints as their value, bytes as bytes).
func pbFields(t *testing.T, b []byte) map[protowire.Number][]any {
	t.Helper()
	out := map[protowire.Number][]any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatalf("field %d: %v", num, protowire.ParseError(n))
			}
			out[num] = append(out[num], v)
			b = b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatalf("field %d: %v", num, protowire.ParseError(n))
			}
			out[num] = append(out[num], v)
			b = b[n:]
		default:
			t.Fatalf("field %d: unexpected wire type %d", num, typ)
		}
	}
	return out
}

func str1(t *testing.T, m map[protowire.Number][]any, num protowire.Number) string {
	t.Helper()
	if len(m[num]) != 1 {
		t.Fatalf("field %d: %d values; want 1", num, len(m[num]))
	}
	return string(m[num][0].([]byte))
}

// timestamp decodes a google.protobuf.Timestamp.
func timestamp(t *testing.T, b []byte) time.Time {
	t.Helper()
	f := pbFields(t, b)
	var sec, nsec uint64
	if len(f[1]) == 1 {
		sec = f[1][0].(uint64)
	}
	if len(f[2]) == 1 {
		nsec = f[2][0].(uint64)
	}
	return time.Unix(int64(sec), int64(nsec))
}

// controlSolveReq is a Control.Solve of build ref importing refs, each
// twice as BuildKit's client sends them: in Cache.Imports and in the
// cache-imports attribute.
func controlSolveReq(ref string, refs ...string) frame {
	var imps [][]byte
	var js []string
	for _, r := range refs {
		imps = append(imps, tagBytes(5, entry("registry", "ref", r)))
		js = append(js, fmt.Sprintf(`{"Type":"registry","Attrs":{"ref":%q}}`, r))
	}
	return frame(cat(
		tagBytes(1, []byte(ref)),
		tagBytes(8, cat(imps...)),
		mapField(7, "cache-imports", "["+strings.Join(js, ",")+"]"),
	))
}

// TestTalkBuildProgress: the client that reads a build's Status sees the
// gateway's decisions on the build's imports, once, as the logs of a
// "[trustcache] cache imports" vertex, before buildkitd's own progress;
// the gateway's log has one line per import although the build's Solve
// calls carry each three times; the record ends with the build.
func TestTalkBuildProgress(t *testing.T) {
	be := startBackend(t)
	be.hold = make(chan struct{})
	client, logBuf, s := gatewayServer(t, be, fakeEndpoint{})
	ctx := t.Context()
	const build = "build-talk"
	signed, evil := "reg.example/team/cache:signed", "reg.example/team/cache:evil"

	// The build runs: its Control.Solve and its frontend's Solve, each
	// importing both caches, held open by buildkitd.
	solved := make(chan error, 2)
	go func() {
		req, resp := controlSolveReq(build, signed, evil), frame{}
		solved <- client.Invoke(ctx, mControlSolve, &req, &resp)
	}()
	waitSolves(t, be, 1)
	go func() {
		req := frame(mapField(3, "cache-imports", fmt.Sprintf(`[{"Type":"registry","Attrs":{"ref":%q}},{"Type":"registry","Attrs":{"ref":%q}}]`, signed, evil)))
		var resp frame
		solved <- client.Invoke(buildCtx(ctx, build), mBridgeSolve, &req, &resp)
	}()
	waitSolves(t, be, 2)

	msgs := statusMessages(t, ctx, client, build)
	if len(msgs) != 2 || !strings.HasPrefix(string(msgs[1]), "echo:") {
		t.Fatalf("Status got %q; want the gateway's StatusResponse, then buildkitd's", msgs)
	}
	resp := pbFields(t, msgs[0])
	if len(resp[statusVertexes]) != 1 || len(resp[statusLogs]) != 1 || len(resp[statusWarnings]) != 1 || len(resp) != 3 {
		t.Fatalf("StatusResponse fields %v; want one vertex, one log and one warning", resp)
	}
	vtx := pbFields(t, resp[statusVertexes][0].([]byte))
	dgst := str1(t, vtx, vertexDigest)
	if name := str1(t, vtx, vertexName); name != "[trustcache] cache imports" {
		t.Errorf("vertex name %q", name)
	}
	if !strings.HasPrefix(dgst, "sha256:") || len(dgst) != 71 {
		t.Errorf("vertex digest %q; want sha256:HEX", dgst)
	}
	started, completed := timestamp(t, []byte(str1(t, vtx, vertexStarted))), timestamp(t, []byte(str1(t, vtx, vertexCompleted)))
	if time.Since(started) > time.Minute || completed.Before(started) {
		t.Errorf("vertex started %v, completed %v", started, completed)
	}
	lg := pbFields(t, resp[statusLogs][0].([]byte))
	if v := str1(t, lg, logVertex); v != dgst {
		t.Errorf("log of vertex %q; want %q", v, dgst)
	}
	if len(lg[logStream]) != 1 || lg[logStream][0].(uint64) != 1 || len(lg[logTimestamp]) != 1 {
		t.Errorf("log stream/timestamp %v", lg)
	}
	want := "used     type=registry,ref=" + signed + " pinned to reg.example/team/cache@" + digestA + ", signed by ci-main\n" +
		"dropped  type=registry,ref=" + evil + ": untrusted: no signatures found\n"
	if got := str1(t, lg, logMsg); got != want {
		t.Errorf("decision lines\n%q\nwant\n%q", got, want)
	}

	w := pbFields(t, resp[statusWarnings][0].([]byte))
	if v := str1(t, w, warnVertex); v != dgst {
		t.Errorf("warning of vertex %q; want %q", v, dgst)
	}
	if len(w[warnLevel]) != 1 || w[warnLevel][0].(uint64) != 1 {
		t.Errorf("warning level %v; want 1", w[warnLevel])
	}
	if got, want := str1(t, w, warnShort), "trustcache gateway: cache "+evil+" not imported: untrusted: no signatures found"; got != want {
		t.Errorf("warning %q; want %q", got, want)
	}

	// Told once: a second Status of the build carries buildkitd's only.
	if again := statusMessages(t, ctx, client, build); len(again) != 1 || !strings.HasPrefix(string(again[0]), "echo:") {
		t.Errorf("second Status got %q; want buildkitd's message only", again)
	}
	// Another build's Status carries nothing of this one's.
	if other := statusMessages(t, ctx, client, "build-other"); len(other) != 1 {
		t.Errorf("another build's Status got %q; want buildkitd's message only", other)
	}

	for _, ref := range []string{signed, evil} {
		if n := strings.Count(logBuf.String(), `"ref":"`+ref+`"`); n != 1 {
			t.Errorf("%d decision lines for %s in one build; want 1:\n%s", n, ref, logBuf)
		}
	}

	close(be.hold)
	for range 2 {
		if err := <-solved; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.talks.followed() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d builds still followed after they ended", s.talks.followed())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A new build with the same imports is logged again.
	req, out := controlSolveReq("build-next", signed), frame{}
	be.hold = nil
	if err := client.Invoke(ctx, mControlSolve, &req, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logBuf.String(), `"ref":"`+signed+`"`); n != 2 {
		t.Errorf("%d decision lines for %s after two builds; want 2", n, signed)
	}
}

// waitSolves waits until buildkitd got n Solve calls.
func waitSolves(t *testing.T, be *backend, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(solveCalls(be)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("buildkitd got %d Solve calls; want %d", len(solveCalls(be)), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// statusMessages reads a whole Control.Status of build.
func statusMessages(t *testing.T, ctx context.Context, client *grpc.ClientConn, build string) [][]byte {
	t.Helper()
	st, err := client.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, mStatus)
	if err != nil {
		t.Fatal(err)
	}
	req := frame(tagBytes(1, []byte(build)))
	if err := st.SendMsg(&req); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		var m frame
		if err := st.RecvMsg(&m); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("Status: %v", err)
			}
			return out
		}
		out = append(out, m)
	}
}

// TestTalkFailNamesCacheOnce: onUntrusted: fail refuses the build naming
// each cache once, though the request carries it twice.
func TestTalkFailNamesCacheOnce(t *testing.T) {
	be := startBackend(t)
	client, logBuf := gateway(t, be)
	const fail = "reg.example/team/cache:fail"
	req, resp := controlSolveReq("build-fail", fail), frame{}
	err := client.Invoke(t.Context(), mControlSolve, &req, &resp)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Solve = %v; want PermissionDenied", err)
	}
	if n := strings.Count(status.Convert(err).Message(), fail); n != 1 {
		t.Errorf("the refusal names %s %d times; want once: %v", fail, n, err)
	}
	if n := strings.Count(logBuf.String(), `"ref":"`+fail+`"`); n != 1 {
		t.Errorf("%d decision lines for %s; want 1:\n%s", n, fail, logBuf)
	}
}

// TestTalkLinePrintable: what a client sent or a registry answered cannot
// drive the client's terminal.
func TestTalkLinePrintable(t *testing.T) {
	imp := Import{Type: "registry", Attrs: map[string]string{"ref": "reg.example/x:\x1b]0;pwned\x07"}}
	line := decisionLine(imp, outcome{Decision: Decision{Action: decision.Dropped}, reason: "bad \u202eevil\r\n"})
	if strings.ContainsAny(line, "\x1b\x07\r\n\u202e") {
		t.Errorf("decision line %q carries control characters", line)
	}
	if !strings.Contains(line, `\u001b]0;pwned\u0007`) || !strings.Contains(line, `\u202e`) {
		t.Errorf("decision line %q; want the control characters escaped", line)
	}
}

// TestTalkBounded: the builds followed and the lines kept per build are
// bounded.
func TestTalkBounded(t *testing.T) {
	var tk talks
	var held []*buildTalk
	for i := range maxTalkBuilds {
		bt := tk.acquire(fmt.Sprint("b", i))
		if bt == nil {
			t.Fatalf("build %d not followed", i)
		}
		held = append(held, bt)
	}
	if bt := tk.acquire("one-more"); bt != nil {
		t.Errorf("build %d followed; want at most %d", maxTalkBuilds+1, maxTalkBuilds)
	}
	for _, bt := range held {
		tk.release(bt)
	}
	if n := tk.followed(); n != 0 {
		t.Errorf("%d builds followed after all ended", n)
	}

	bt := tk.acquire("many")
	defer tk.release(bt)
	for i := range maxTalkLines + 10 {
		bt.tell(fmt.Sprint("line ", i), "")
	}
	f := bt.pending(time.Now())
	lg := pbFields(t, pbFields(t, *f)[statusLogs][0].([]byte))
	msg := str1(t, lg, logMsg)
	if n := strings.Count(msg, "\n"); n != maxTalkLines+1 || !strings.HasSuffix(msg, "10 more decisions not shown (see the gateway's log)\n") {
		t.Errorf("%d lines, ending %q; want %d and a count of the rest", n, msg[len(msg)-60:], maxTalkLines+1)
	}
	bt.tell("late", "")
	f = bt.pending(time.Now())
	if msg := str1(t, pbFields(t, pbFields(t, *f)[statusLogs][0].([]byte)), logMsg); msg != "1 more decisions not shown (see the gateway's log)\n" {
		t.Errorf("a line past the bound: %q; want it counted", msg)
	}
}
