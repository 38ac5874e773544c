package gateway

// grpc.health.v1.Health, which the gateway answers itself from buildkitd's
// state (Probe).

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

// Methods the gateway answers itself.
const (
	healthCheck = "/grpc.health.v1.Health/Check"
	healthWatch = "/grpc.health.v1.Health/Watch"
	// listWorkers is what Probe calls on buildkitd: cheap, and only a
	// working BuildKit control API answers it.
	listWorkers = "/moby.buildkit.v1.Control/ListWorkers"
)

// grpc.health.v1.HealthCheckResponse.ServingStatus values.
const (
	healthServing    = 1
	healthNotServing = 2
)

// healthCheck answers grpc.health.v1.Health/Check: SERVING while
// buildkitd answers.
func (s *Server) healthCheck(ss grpc.ServerStream) error {
	var req frame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	return ss.SendMsg(s.healthStatus(ss.Context()))
}

// healthWatch answers grpc.health.v1.Health/Watch: the status now, then
// each change, checked every few seconds.
func (s *Server) healthWatch(ss grpc.ServerStream) error {
	var req frame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	ctx := ss.Context()
	var last string
	t := time.NewTicker(probeTimeout)
	defer t.Stop()
	for {
		f := s.healthStatus(ctx)
		if string(*f) != last {
			last = string(*f)
			if err := ss.SendMsg(f); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// healthStatus is the HealthCheckResponse for buildkitd's state now.
func (s *Server) healthStatus(ctx context.Context) *frame {
	st := uint64(healthServing)
	if err := s.Probe(ctx); err != nil {
		st = healthNotServing
	}
	f := frame(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), st))
	return &f
}
