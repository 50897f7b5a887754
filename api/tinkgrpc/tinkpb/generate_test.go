package tinkpb_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/citest"
)

// TestGeneratedCodeCurrent: `make proto` (Debian's protoc 3.21, the pinned
// generators) produces exactly the committed code, so an edit of
// workflow.proto without regenerating fails here. Under CI=true a missing
// protoc fails the test.
func TestGeneratedCodeCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		citest.Missing(t, "make proto needs protoc: apt-get install protobuf-compiler libprotobuf-dev")
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-C", filepath.Join("..", "..", ".."), "proto", "PROTO_OUT="+out, "PROTO_BIN="+t.TempDir())
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	for _, f := range []string{"workflow.pb.go", "workflow_grpc.pb.go"} {
		want, err := os.ReadFile(f)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(out, f))
		require.NoError(t, err)
		require.Equal(t, string(got), string(want), "%s is not what make proto generates from workflow.proto: run make proto", f)
	}
}
