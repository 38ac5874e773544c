package gateway

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	allowedFrontend = "reg.example/fe/dockerfile@" + allowedFrontendDigest
	otherDigest     = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// solveWithFrontend is a Solve request of shape s naming frontend fe with
// attrs (key, value pairs).
func solveWithFrontend(s shape, fe string, attrs ...string) []byte {
	b := tagBytes(s.frontendField, []byte(fe))
	for i := 0; i+1 < len(attrs); i += 2 {
		b = append(b, mapField(s.attrs, attrs[i], attrs[i+1])...)
	}
	return b
}

func TestDecideFrontend(t *testing.T) {
	p := testVerifier(t).policy
	const control, bridge = "/moby.buildkit.v1.Control/Solve", "/moby.buildkit.v1.frontend.LLBBridge/Solve"
	for _, tc := range []struct {
		name    string
		method  string
		fe      string
		attrs   []string
		image   string
		cmdline bool   // the gateway adds cmdline
		refused string // a substring of the refusal; "" when allowed
	}{
		{name: "plain LLB", method: control},
		{name: "dockerfile: # syntax= not followed", method: control, fe: "dockerfile.v0", attrs: []string{"filename", "Dockerfile"}, cmdline: true},
		{name: "dockerfile from a client-side frontend", method: bridge, fe: "dockerfile.v0", cmdline: true},
		{name: "dockerfile with cmdline already", method: control, fe: "dockerfile.v0", attrs: []string{"cmdline", "x", attrSyntax, "evil/fe:1"}},
		{name: "BUILDKIT_SYNTAX allowed", method: control, fe: "dockerfile.v0", attrs: []string{attrSyntax, " " + allowedFrontend + " --flag"}, image: allowedFrontend},
		{name: "BUILDKIT_SYNTAX by tag", method: bridge, fe: "dockerfile.v0", attrs: []string{attrSyntax, "reg.example/fe/dockerfile:1"}, image: "reg.example/fe/dockerfile:1", refused: `frontend image "reg.example/fe/dockerfile:1" is not allowed: it is not pinned by digest`},
		{name: "BUILDKIT_SYNTAX another digest", method: control, fe: "dockerfile.v0", attrs: []string{attrSyntax, "reg.example/fe/dockerfile@" + otherDigest}, image: "reg.example/fe/dockerfile@" + otherDigest, refused: "the policy's frontends list does not name it"},
		{name: "BUILDKIT_SYNTAX empty", method: control, fe: "dockerfile.v0", attrs: []string{attrSyntax, ""}, refused: `frontend image "" is not allowed`},
		{name: "gateway allowed", method: control, fe: "gateway.v0", attrs: []string{"source", allowedFrontend}, image: allowedFrontend, cmdline: true},
		{name: "gateway allowed with cmdline", method: bridge, fe: "gateway.v0", attrs: []string{"source", allowedFrontend, "cmdline", "c"}, image: allowedFrontend},
		{name: "gateway unlisted", method: control, fe: "gateway.v0", attrs: []string{"source", "evil.example/fe@" + allowedFrontendDigest}, image: "evil.example/fe@" + allowedFrontendDigest, refused: "the policy's frontends list does not name it"},
		{name: "gateway by tag", method: bridge, fe: "gateway.v0", attrs: []string{"source", "docker/dockerfile:1"}, image: "docker/dockerfile:1", refused: "not pinned by digest"},
		{name: "gateway no source", method: control, fe: "gateway.v0", refused: `frontend image "" is not allowed`},
		{name: "gateway source last wins", method: control, fe: "gateway.v0", attrs: []string{"source", allowedFrontend, "source", "evil/fe:1"}, image: "evil/fe:1", refused: "not pinned by digest"},
		{name: "gateway dockerfile.v0 is built in", method: control, fe: "gateway.v0", attrs: []string{"source", "dockerfile.v0"}, cmdline: true},
		{name: "gateway dockerfile.v0 named context", method: control, fe: "gateway.v0", attrs: []string{"source", "dockerfile.v0", "context:dockerfile.v0::linux/amd64", "docker-image://evil/fe"}, image: "dockerfile.v0", refused: "not pinned by digest"},
		{name: "gateway dockerfile.v0 from a frontend is an image", method: bridge, fe: "gateway.v0", attrs: []string{"source", "dockerfile.v0"}, image: "dockerfile.v0", refused: "not pinned by digest"},
		{name: "allowed image swapped by a named context", method: control, fe: "gateway.v0", attrs: []string{"source", allowedFrontend, "context:reg.example/fe/dockerfile@" + allowedFrontendDigest, "local:evil"}, image: allowedFrontend, refused: "would be replaced by the named context"},
		{name: "BUILDKIT_SYNTAX swapped by a named context", method: control, fe: "dockerfile.v0", attrs: []string{attrSyntax, allowedFrontend, "context:reg.example/fe/dockerfile::linux/amd64", "input:x"}, image: allowedFrontend, refused: "would be replaced by the named context"},
		{name: "other named contexts are fine", method: control, fe: "gateway.v0", attrs: []string{"source", allowedFrontend, "context:base", "docker-image://reg.example/base:1"}, image: allowedFrontend, cmdline: true},
		{name: "unknown frontend", method: control, fe: "evil.v0", refused: `frontend "evil.v0" is not one the gateway can vouch for`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := inspected[tc.method]
			var req []byte
			if tc.fe != "" || len(tc.attrs) > 0 {
				req = solveWithFrontend(s, tc.fe, tc.attrs...)
			}
			if tc.fe == "" {
				req = tagBytes(2, llbDef)
			}
			fr, err := s.frontend(req)
			if err != nil {
				t.Fatal(err)
			}
			d := decideFrontend(tc.method, fr, p)
			if tc.refused == "" && d.refusal != "" || tc.refused != "" && !strings.Contains(d.refusal, tc.refused) {
				t.Errorf("refusal %q; want %q", d.refusal, tc.refused)
			}
			if d.image != tc.image {
				t.Errorf("image %q; want %q", d.image, tc.image)
			}
			if d.refusal == "" && d.addCmdline != tc.cmdline {
				t.Errorf("addCmdline %v; want %v", d.addCmdline, tc.cmdline)
			}
		})
	}
}

func TestFrontendMalformed(t *testing.T) {
	for _, req := range [][]byte{
		tagVarint(6, 1),                      // Frontend not a string
		tagBytes(6, []byte{0xff}),            // Frontend not UTF-8
		mapField(7, "source", "\xff"),        // an attribute not UTF-8
		tagBytes(7, tagVarint(1, 3)),         // a map entry with a bad key
		append(tagBytes(6, nil), 0x0a, 0x05), // truncated
	} {
		if _, err := controlSolve.frontend(req); err == nil {
			t.Errorf("frontend(%x) = nil error; want malformed", req)
		}
	}
}

func TestSolveFrontendRefused(t *testing.T) {
	be := startBackend(t)
	client, logBuf := gateway(t, be)
	openBuild(t, client, t.Context(), "build-1")
	for _, tc := range []struct{ method, image string }{
		{"/moby.buildkit.v1.Control/Solve", "reg.example/evil/fe@" + otherDigest},
		{"/moby.buildkit.v1.frontend.LLBBridge/Solve", "reg.example/evil/fe:latest"},
	} {
		req := frame(solveWithFrontend(inspected[tc.method], "gateway.v0", "source", tc.image, "cache-from", "reg.example/team/cache:signed"))
		var resp frame
		err := client.Invoke(buildCtx(t.Context(), "build-1"), tc.method, &req, &resp)
		s := status.Convert(err)
		if s.Code() != codes.PermissionDenied || !strings.Contains(s.Message(), `trustcache gateway: not building: frontend image "`+tc.image+`" is not allowed`) || !strings.Contains(s.Message(), "frontends: [REPOSITORY@sha256:") {
			t.Errorf("%s: Invoke = %v; want PermissionDenied naming the image and how to allow it", tc.method, err)
		}
	}
	if calls := solveCalls(be); len(calls) != 0 {
		t.Errorf("buildkitd got %d calls; want none", len(calls))
	}
	if !strings.Contains(logBuf.String(), `"msg":"frontend","client":"pid=`) || !strings.Contains(logBuf.String(), `"action":"blocked"`) {
		t.Errorf("refusal not logged:\n%s", logBuf)
	}
}

func TestSolveDockerfileSyntaxNotFollowed(t *testing.T) {
	be := startBackend(t)
	client, _ := gateway(t, be)
	req := frame(cat(solveWithFrontend(controlSolve, "dockerfile.v0", "filename", "Dockerfile"), unknowns))
	var resp frame
	if err := client.Invoke(t.Context(), "/moby.buildkit.v1.Control/Solve", &req, &resp); err != nil {
		t.Fatal(err)
	}
	calls := be.recorded()
	if len(calls) != 1 {
		t.Fatalf("backend got %d calls", len(calls))
	}
	got := calls[0].msgs[0]
	fr, err := controlSolve.frontend(got)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := fr.attrs["cmdline"]; !ok || v != "" || fr.attrs["filename"] != "Dockerfile" || fr.name != "dockerfile.v0" {
		t.Errorf("buildkitd got frontend %+v; want dockerfile.v0 with cmdline set and filename kept", fr)
	}
	if want := cat(req, mapField(7, "cmdline", "")); string(got) != string(want) {
		t.Errorf("buildkitd got %x; want the request with cmdline appended, all else byte for byte", got)
	}

	// An allowed image goes on as asked.
	req = frame(solveWithFrontend(controlSolve, "dockerfile.v0", attrSyntax, allowedFrontend))
	if err := client.Invoke(t.Context(), "/moby.buildkit.v1.Control/Solve", &req, &resp); err != nil {
		t.Fatal(err)
	}
	if calls := be.recorded(); len(calls) != 2 || string(calls[1].msgs[0]) != string(req) {
		t.Errorf("an allowed BUILDKIT_SYNTAX request changed on the way")
	}
}
