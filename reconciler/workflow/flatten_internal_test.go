package workflow

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
)

// TestFlattenSharesWhatItNeedNotMerge: an action takes its environment
// and volumes from the rendering itself where only the task or only the
// action has any, and a merge of its own where both do (the action's
// variables over the task's, the task's volumes first).
func TestFlattenSharesWhatItNeedNotMerge(t *testing.T) {
	actionEnv := map[string]string{"A": "1"}
	taskEnv := map[string]string{"T": "t", "A": "task"}
	actionVols := []string{"/a:/a"}
	taskVols := []string{"/t:/t"}
	doc := &schema.TemplateDocument{Tasks: []schema.Task{
		{Name: "action-only", Worker: "m", Actions: []schema.Action{{Name: "a", Environment: actionEnv, Volumes: actionVols}}},
		{Name: "task-only", Worker: "m", Environment: taskEnv, Volumes: taskVols, Actions: []schema.Action{{Name: "b"}, {Name: "c"}}},
		{Name: "both", Worker: "m", Environment: taskEnv, Volumes: taskVols, Actions: []schema.Action{{Name: "d", Environment: actionEnv, Volumes: actionVols}}},
		{Name: "none", Worker: "m", Actions: []schema.Action{{Name: "e", Volumes: []string{}}}},
	}}
	same := func(a, b any) bool { return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() }
	out := flatten(doc)
	require.Len(t, out, 5)
	require.True(t, same(out[0].Environment, actionEnv))
	require.True(t, same(out[0].Volumes, actionVols))
	require.True(t, same(out[1].Environment, taskEnv))
	require.True(t, same(out[2].Environment, taskEnv))
	require.True(t, same(out[1].Volumes, taskVols))
	require.Equal(t, map[string]string{"T": "t", "A": "1"}, out[3].Environment)
	require.False(t, same(out[3].Environment, taskEnv))
	require.Equal(t, []string{"/t:/t", "/a:/a"}, out[3].Volumes)
	require.Equal(t, []string{"/t:/t"}, taskVols, "the task's list is not written through")
	require.Nil(t, out[4].Environment)
	require.Nil(t, out[4].Volumes)
}
