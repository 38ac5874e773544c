package trustedbuilder

import (
	"context"
	"encoding/json"
	"strings"
)

// Status is a builder's record and what the engine says of it now.
type Status struct {
	*Record
	Gateway  ContainerStatus  `json:"gateway"`
	Buildkit *ContainerStatus `json:"buildkit,omitempty"`
	// BuildkitVersion is what buildx reads through the gateway; empty when
	// it cannot (the reason in BuildkitError).
	BuildkitVersion string `json:"buildkitVersion,omitempty"`
	BuildkitError   string `json:"buildkitError,omitempty"`
	// Decisions are the gateway's last decision log lines (JSON objects).
	Decisions []json.RawMessage `json:"decisions,omitempty"`
}

// ContainerStatus is one container's state.
type ContainerStatus struct {
	Name      string `json:"name"`
	Status    string `json:"status"` // running, restarting, exited, missing …
	StartedAt string `json:"startedAt,omitempty"`
	Restarts  string `json:"restarts,omitempty"`
}

// Inspect returns rec's state; deep asks buildx for the BuildKit version
// through the gateway and reads the gateway's last decisions.
func Inspect(ctx context.Context, d Docker, rec *Record, deep bool, decisions int) *Status {
	s := &Status{Record: rec, Gateway: containerStatus(ctx, d, rec.GatewayContainer)}
	if rec.BuildkitContainer != "" {
		bk := containerStatus(ctx, d, rec.BuildkitContainer)
		s.Buildkit = &bk
	}
	if !deep {
		return s
	}
	out, err := d.run(ctx, "buildx", "inspect", "--bootstrap", rec.Name)
	if m := versionRE.FindStringSubmatch(out); m != nil {
		s.BuildkitVersion = m[1]
	} else if err != nil {
		s.BuildkitError = err.Error()
	} else {
		s.BuildkitError = "buildx inspect printed no BuildKit version"
	}
	if decisions > 0 {
		s.Decisions = lastDecisions(ctx, d, rec.GatewayContainer, decisions)
	}
	return s
}

func containerStatus(ctx context.Context, d Docker, name string) ContainerStatus {
	st, err := d.run(ctx, "container", "inspect", "--format", "{{.State.Status}}|{{.State.StartedAt}}|{{.RestartCount}}", name)
	if err != nil {
		return ContainerStatus{Name: name, Status: "missing"}
	}
	f := strings.SplitN(st, "|", 3)
	for len(f) < 3 {
		f = append(f, "")
	}
	return ContainerStatus{Name: name, Status: f[0], StartedAt: f[1], Restarts: f[2]}
}

// lastDecisions returns the gateway's last n decision lines: JSON log
// lines with a verdict (cache imports) or a frontend decision.
func lastDecisions(ctx context.Context, d Docker, container string, n int) []json.RawMessage {
	c := d.cmd(ctx, "logs", "--tail", "2000", container)
	out, _ := c.CombinedOutput()
	var got []json.RawMessage
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") || !(strings.Contains(line, `"verdict"`) || strings.Contains(line, `"msg":"frontend"`)) {
			continue
		}
		if json.Valid([]byte(line)) {
			got = append(got, json.RawMessage(line))
		}
	}
	if len(got) > n {
		got = got[len(got)-n:]
	}
	return got
}

// LogsArgs are the docker arguments that show the gateway's log.
func LogsArgs(rec *Record, follow bool, tail string) []string {
	args := []string{"logs"}
	if follow {
		args = append(args, "--follow")
	}
	if tail != "" {
		args = append(args, "--tail", tail)
	}
	return append(args, rec.GatewayContainer)
}
