package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/docker-trustcache/docker-trustcache/verify/decision"
)

// The gateway tells the client what it decided: each build's decisions on
// its cache imports are written into the build's own progress stream
// (Control.Status) as the log lines of one vertex, "[trustcache] cache
// imports", which buildx and buildctl print like any step of the build.
// Only the build's owner can read its Status (owners.go), so the lines
// reach the client that asked for the build and nobody else.
//
// A build's Solve calls carry each import several times (Control.Solve's
// Cache.Imports and its cache-imports attribute, then the client-side
// frontend's LLBBridge.Solve): the gateway logs, and shows, each import
// once per build.

// talkVertexName is the name of the vertex the decisions are logged under.
const talkVertexName = "[trustcache] cache imports"

// Bounds on what is kept per build, and on the builds kept.
const (
	maxTalkBuilds  = 4096 // builds followed at once; past it a build is neither deduplicated nor told
	maxTalkLines   = 64   // decision lines per build; past it one line says how many were left out
	maxTalkImports = 1024 // distinct imports remembered per build for the log's deduplication
)

// StatusResponse (moby.buildkit.v1) fields, and those of its messages.
const (
	statusVertexes protowire.Number = 1 // repeated Vertex
	statusLogs     protowire.Number = 3 // repeated VertexLog
	statusWarnings protowire.Number = 4 // repeated VertexWarning

	vertexDigest    protowire.Number = 1
	vertexName      protowire.Number = 3
	vertexStarted   protowire.Number = 5
	vertexCompleted protowire.Number = 6

	logVertex    protowire.Number = 1
	logTimestamp protowire.Number = 2
	logStream    protowire.Number = 3
	logMsg       protowire.Number = 4

	warnVertex protowire.Number = 1
	warnLevel  protowire.Number = 2
	warnShort  protowire.Number = 3

	stdoutStream  = 1
	warnLevelWarn = 1 // the level BuildKit's own build warnings (lint) have
)

// talks holds what the gateway has to tell each build's client, by build
// ID, while a call of the build (Control.Solve, LLBBridge.Solve,
// Control.Status) runs: the last to end forgets it.
type talks struct {
	mu sync.Mutex
	m  map[string]*buildTalk
}

// buildTalk is one build's decisions: which imports were logged, and the
// lines its Status stream has yet to carry.
type buildTalk struct {
	build string
	users int // guarded by talks.mu

	mu      sync.Mutex
	logged  map[string]string // import → what was logged of it
	lines   []string          // not yet sent
	warns   []string          // warnings not yet sent: the dropped imports
	kept    int               // lines kept, sent or not
	left    int               // lines left out past maxTalkLines
	started time.Time         // when the vertex was first sent; zero before
}

// acquire returns the record of build, creating it; nil when the call
// names no build or too many builds are followed. Each non-nil acquire is
// paired with a release.
func (t *talks) acquire(build string) *buildTalk {
	if build == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	bt := t.m[build]
	if bt == nil {
		if len(t.m) >= maxTalkBuilds {
			return nil
		}
		bt = &buildTalk{build: build, logged: map[string]string{}}
		if t.m == nil {
			t.m = map[string]*buildTalk{}
		}
		t.m[build] = bt
	}
	bt.users++
	return bt
}

// release ends one call's use of bt; the last forgets the build.
func (t *talks) release(bt *buildTalk) {
	if bt == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	bt.users--
	if bt.users == 0 && t.m[bt.build] == bt {
		delete(t.m, bt.build)
	}
}

// followed is the number of builds followed.
func (t *talks) followed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// first reports whether the decision o on imp is news for the build: the
// first on this import, or one that differs from what was logged. A nil
// record (no build) makes every decision news.
func (bt *buildTalk) first(imp Import, o outcome) bool {
	if bt == nil {
		return true
	}
	key := imp.Type + "\x00" + imp.Ref()
	seen := o.Action.String()
	if o.res != nil {
		seen += "\x00" + o.res.Digest
	}
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if prev, ok := bt.logged[key]; ok && prev == seen {
		return false
	}
	if len(bt.logged) < maxTalkImports {
		bt.logged[key] = seen
	}
	return true
}

// tell queues a decision line for the build's client; warn, when not
// empty, also as a build warning (buildx lists them at the end of its
// output).
func (bt *buildTalk) tell(line, warn string) {
	if bt == nil {
		return
	}
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.kept >= maxTalkLines {
		bt.left++
		return
	}
	bt.kept++
	bt.lines = append(bt.lines, line)
	if warn != "" {
		bt.warns = append(bt.warns, warn)
	}
}

// pending returns a StatusResponse carrying the lines not yet sent, nil
// when there are none. The first one also starts and completes the
// vertex they are logged under.
func (bt *buildTalk) pending(now time.Time) *frame {
	if bt == nil {
		return nil
	}
	bt.mu.Lock()
	defer bt.mu.Unlock()
	lines := bt.lines
	if bt.left > 0 {
		lines = append(lines, fmt.Sprintf("%d more decisions not shown (see the gateway's log)", bt.left))
		bt.kept += bt.left // shown as counted: never again
		bt.left = 0
	}
	if len(lines) == 0 {
		return nil
	}
	warns := bt.warns
	bt.lines, bt.warns = nil, nil
	var vertex bool
	if bt.started.IsZero() {
		bt.started, vertex = now, true
	}
	f := frame(statusResponse(talkVertexDigest(bt.build), vertex, bt.started, now, lines, warns))
	return &f
}

// talkVertexDigest is the digest the build's decision vertex goes by: a
// name of its own in the build's progress, stable for the build.
func talkVertexDigest(build string) string {
	sum := sha256.Sum256([]byte("docker-trustcache gateway cache imports\x00" + build))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// statusResponse encodes a StatusResponse logging lines, and warning
// warns, under the vertex dgst; withVertex also sends the vertex, started
// at started and completed at now.
func statusResponse(dgst string, withVertex bool, started, now time.Time, lines, warns []string) []byte {
	var out []byte
	if withVertex {
		var v []byte
		v = protowire.AppendTag(v, vertexDigest, protowire.BytesType)
		v = protowire.AppendString(v, dgst)
		v = protowire.AppendTag(v, vertexName, protowire.BytesType)
		v = protowire.AppendString(v, talkVertexName)
		v = appendTimestamp(v, vertexStarted, started)
		v = appendTimestamp(v, vertexCompleted, now)
		out = appendBytesField(out, statusVertexes, v)
	}
	var msg strings.Builder
	for _, l := range lines {
		msg.WriteString(l)
		msg.WriteByte('\n')
	}
	var lg []byte
	lg = protowire.AppendTag(lg, logVertex, protowire.BytesType)
	lg = protowire.AppendString(lg, dgst)
	lg = appendTimestamp(lg, logTimestamp, now)
	lg = protowire.AppendTag(lg, logStream, protowire.VarintType)
	lg = protowire.AppendVarint(lg, stdoutStream)
	lg = protowire.AppendTag(lg, logMsg, protowire.BytesType)
	lg = protowire.AppendString(lg, msg.String())
	out = appendBytesField(out, statusLogs, lg)
	for _, w := range warns {
		var wb []byte
		wb = protowire.AppendTag(wb, warnVertex, protowire.BytesType)
		wb = protowire.AppendString(wb, dgst)
		wb = protowire.AppendTag(wb, warnLevel, protowire.VarintType)
		wb = protowire.AppendVarint(wb, warnLevelWarn)
		wb = protowire.AppendTag(wb, warnShort, protowire.BytesType)
		wb = protowire.AppendString(wb, w)
		out = appendBytesField(out, statusWarnings, wb)
	}
	return out
}

// appendTimestamp appends t as a google.protobuf.Timestamp field num.
func appendTimestamp(out []byte, num protowire.Number, t time.Time) []byte {
	var ts []byte
	ts = protowire.AppendTag(ts, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(t.Unix()))
	if n := t.Nanosecond(); n != 0 {
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(n))
	}
	return appendBytesField(out, num, ts)
}

// decisionLine is what the client is told of one import, in the words of
// "docker trustcache build"'s summary.
func decisionLine(imp Import, o outcome) string {
	src := "type=" + imp.Type
	if ref := imp.Ref(); ref != "" {
		src += ",ref=" + ref
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %s", o.Action, src)
	switch o.Action {
	case decision.Used:
		if o.res != nil {
			fmt.Fprintf(&b, " pinned to %s", o.res.Pinned())
			if len(o.res.Signers) > 0 {
				names := make([]string, len(o.res.Signers))
				for i, s := range o.res.Signers {
					names[i] = s.Builder
				}
				fmt.Fprintf(&b, ", signed by %s", strings.Join(names, ", "))
			}
		}
		if o.reason != "" {
			fmt.Fprintf(&b, " (%s)", o.reason)
		}
	case decision.Blocked:
		fmt.Fprintf(&b, ": %s (policy onUntrusted: fail: not building)", o.reason)
	default:
		if o.reason != "" {
			fmt.Fprintf(&b, ": %s", o.reason)
		}
	}
	return printable(b.String())
}

// decisionWarning is the build warning for an import the build runs
// without, "" for the others.
func decisionWarning(imp Import, o outcome) string {
	if o.Action != decision.Dropped {
		return ""
	}
	what := "a type=" + imp.Type + " cache"
	if ref := imp.Ref(); ref != "" {
		what = "cache " + ref
	}
	return printable(fmt.Sprintf("trustcache gateway: %s not imported: %s", what, o.reason))
}

// printable escapes what a terminal would act on (control characters,
// bidirectional overrides): a reference and a registry's answers reach the
// client's terminal through these lines.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == unicode.ReplacementChar {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
