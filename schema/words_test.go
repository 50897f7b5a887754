package schema

import (
	"context"
	"reflect"
	"testing"
	"testing/fstest"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema/schematest"
)

// TestRenderingsShareWords: the renderings of one template for several
// machines hold one copy of the scalars they have in common (image,
// action names, fixed environment) and of environments and lists that
// render alike, and a string of their own for what differs (the worker's
// MAC). So 10,000 kept renderings do not hold 10,000 copies of the same
// text.
func TestRenderingsShareWords(t *testing.T) {
	fsys := fstest.MapFS{}
	for name, content := range schematest.Fleet(4, 1) {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	// One worker: renderings done at once on several workers, before the
	// first of them finished, each keep their own copy.
	l := NewLoader()
	l.Workers = 1
	set, err := l.Load(context.Background(), fsys)
	require.NoError(t, err)
	require.Len(t, set.Workflows, 4)
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	first := set.Workflows[0].Rendered
	require.NotNil(t, first)
	for _, w := range set.Workflows[1:] {
		doc := w.Rendered
		require.NotNil(t, doc, w.Metadata.Name)
		a, b := first.Tasks[0].Actions[0], doc.Tasks[0].Actions[0]
		require.Equal(t, a.Image, b.Image)
		require.True(t, same(a.Image, b.Image), "%s: one copy of the image", w.Metadata.Name)
		require.True(t, same(a.Name, b.Name), "%s: one copy of the action's name", w.Metadata.Name)
		require.True(t, same(a.Environment["IMG_URL"], b.Environment["IMG_URL"]), "%s: one copy of a fixed variable", w.Metadata.Name)
		require.NotEqual(t, first.Tasks[0].Worker, doc.Tasks[0].Worker)
		require.Equal(t, a.Environment, b.Environment)
		require.Equal(t, reflect.ValueOf(a.Environment).UnsafePointer(), reflect.ValueOf(b.Environment).UnsafePointer(),
			"%s: one map of an environment that renders alike", w.Metadata.Name)
		require.Equal(t, unsafe.SliceData(first.Tasks[0].Volumes), unsafe.SliceData(doc.Tasks[0].Volumes), "%s: one list of volumes", w.Metadata.Name)
	}
}
