package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tinkops/tinkops/api/tinkgrpc/tinkpb"
)

func agentClient(t *testing.T, addr string) tinkpb.WorkflowServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return tinkpb.NewWorkflowServiceClient(conn)
}

// TestAgentsOffByDefault: without --tinkerbell-agents, an agent that
// reaches the API port is told why it is not served, and REST goes on
// on the same port.
func TestAgentsOffByDefault(t *testing.T) {
	s := newScenario(t)
	s.write("hardware/node-01.yaml", agentHardware)
	m := MustRunMain(t, s.repo)
	waitReady(t, m)
	_, err := agentClient(t, m.Addr()).GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: agentMAC})
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "start it with --tinkerbell-agents")
	code, _ := get(t, m, "/v1/status")
	require.Equal(t, http.StatusOK, code)
}

// TestAgentsOnAPIPortAndGRPCListen: with --tinkerbell-agents the agent's
// calls are served on the API port (h2c beside HTTP/1.1 REST) and on
// --grpc-listen, by the same engine: the same action on both.
func TestAgentsOnAPIPortAndGRPCListen(t *testing.T) {
	s := newScenario(t)
	s.write("hardware/node-01.yaml", agentHardware)
	agentWorkflow(s, "wf", "busybox:test", 30, "true")
	m := MustRunMain(t, s.repo, "--tinkerbell-agents", "--grpc-listen", "127.0.0.1:0")
	waitReady(t, m)
	require.NotEmpty(t, m.GRPCAddr())
	ctx := context.Background()
	// The run starts on an engine step after the first sync; under a full
	// test run's load that took more than 10 s once. On failure the last
	// answer is shown.
	var a *tinkpb.ActionResponse
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var err error
		a, err = agentClient(t, m.Addr()).GetAction(ctx, &tinkpb.ActionRequest{AgentId: agentMAC})
		assert.NoError(c, err, "the agent's first action")
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, "wf-1", a.Name)
	b, err := agentClient(t, m.GRPCAddr()).GetAction(ctx, &tinkpb.ActionRequest{AgentId: agentMAC})
	require.NoError(t, err)
	require.Equal(t, a.ActionId, b.ActionId)
	code, _ := get(t, m, "/v1/status")
	require.Equal(t, http.StatusOK, code)

	resp, err := http.Get("http://" + m.Addr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Regexp(t, `tink_agent_calls_total\{code="OK",method="GetAction"\} 2\n`, string(body), "calls on both ports are counted")
	require.Contains(t, string(body), "tink_agent_call_duration_seconds_bucket")
}

func TestGRPCListenNeedsAgents(t *testing.T) {
	m := NewMain(io.Discard, io.Discard)
	err := m.ParseFlags([]string{"--repo", ".", "--grpc-listen", "127.0.0.1:0"})
	require.EqualError(t, err, "--grpc-listen serves Tinkerbell agents: it needs --tinkerbell-agents")
}

// TestGRPCListenTLS: with --tls-cert, --grpc-listen serves TLS with the
// API's certificate, which the agent verifies.
func TestGRPCListenTLS(t *testing.T) {
	s := newScenario(t)
	s.write("hardware/node-01.yaml", agentHardware)
	cert, key := selfSignedCert(t)
	m := MustRunMain(t, s.repo, "--tinkerbell-agents", "--grpc-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	pem, err := os.ReadFile(cert)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	require.Eventually(t, func() bool {
		resp, err := hc.Get("https://" + m.Addr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool})
	require.NoError(t, err)
	conn, err := grpc.NewClient(m.GRPCAddr(), grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = tinkpb.NewWorkflowServiceClient(conn).GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: agentMAC})
	require.Equal(t, codes.NotFound, status.Code(err), "served over TLS: %v", err)
	require.Contains(t, status.Convert(err).Message(), "no action for hardware node-01")

	_, err = agentClient(t, m.GRPCAddr()).GetAction(context.Background(), &tinkpb.ActionRequest{AgentId: agentMAC})
	require.Equal(t, codes.Unavailable, status.Code(err), "no plaintext on a TLS port")
}
