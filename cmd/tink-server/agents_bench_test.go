package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tinkops/tinkops/api/tinkgrpc/tinkpb"
)

// BenchmarkAgentsGRPC is BenchmarkWorkers with 1,000 simulated Tinkerbell
// agents instead: each has a gRPC connection of its own to the API port
// (h2c) and does what tink-agent does per action: GetAction, a RUNNING
// report, a SUCCESS report. --agent-any-source because every simulated
// agent calls from 127.0.0.1.
func BenchmarkAgentsGRPC(b *testing.B) { benchAgents(b, false) }

// BenchmarkAgentsGRPCListen is BenchmarkAgentsGRPC with the agents on
// --grpc-listen (gRPC's own HTTP/2 server) instead of the API port
// (net/http's, shared with REST).
func BenchmarkAgentsGRPCListen(b *testing.B) { benchAgents(b, true) }

func benchAgents(b *testing.B, grpcListen bool) {
	args := []string{"--tinkerbell-agents", "--agent-any-source"}
	if grpcListen {
		args = append(args, "--grpc-listen", "127.0.0.1:0")
	}
	benchFleet(b, args, benchActions, func(b *testing.B, m *Main) machineDriver {
		addr := m.Addr()
		if grpcListen {
			addr = m.GRPCAddr()
		}
		return func(ctx context.Context, i int, actions int) ([]time.Duration, error) {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			c := tinkpb.NewWorkflowServiceClient(conn)
			id := benchMAC(i)
			var mine []time.Duration
			for done := 0; done < actions; {
				a, err := c.GetAction(ctx, &tinkpb.ActionRequest{AgentId: id})
				if status.Code(err) == codes.NotFound {
					time.Sleep(50 * time.Millisecond) // the agent backs off, from 500 ms
					continue
				}
				if err != nil {
					return nil, err
				}
				for _, s := range []tinkpb.StateType{tinkpb.StateType_STATE_RUNNING, tinkpb.StateType_STATE_SUCCESS} {
					t0 := time.Now()
					_, err := c.ReportActionStatus(ctx, &tinkpb.ActionStatusRequest{WorkflowId: a.WorkflowId, AgentId: a.AgentId,
						TaskId: a.TaskId, ActionId: a.ActionId, ActionName: a.Name, ActionState: s, Message: &tinkpb.ActionMessage{Message: "action completed"}})
					if err != nil {
						return nil, err
					}
					mine = append(mine, time.Since(t0))
				}
				done++
			}
			return mine, nil
		}
	}, reportClosedLoop)
}
