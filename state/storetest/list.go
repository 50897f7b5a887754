package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

func testList(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("ByKind", func(t *testing.T) {
		s, _ := openDefault(t, open)
		for _, o := range []*state.Object{
			{Kind: state.KindHardware, Name: "b", Source: state.SourceGit},
			{Kind: state.KindHardware, Name: "a", Source: state.SourceGit},
			{Kind: state.KindHardware, Namespace: "ns", Name: "c", Source: state.SourceGit},
			// A kind whose name extends another must not leak into it.
			{Kind: state.KindHardware + "Profile", Name: "p", Source: state.SourceAPI},
			{Kind: state.KindTemplate, Name: "t", Source: state.SourceGit},
		} {
			mustPut(t, s, o)
		}
		page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware})
		require.NoError(t, err)
		require.Equal(t, []string{"Hardware/a", "Hardware/b", "Hardware/ns/c"}, names(page.Objects))
		require.Empty(t, page.Continue)

		page, err = s.ListObjects(ctx, state.ObjectQuery{})
		require.NoError(t, err)
		require.Len(t, page.Objects, 5, "an empty kind lists every kind")

		page, err = s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware, Namespace: "ns"})
		require.NoError(t, err)
		require.Equal(t, []string{"Hardware/ns/c"}, names(page.Objects))

		page, err = s.ListObjects(ctx, state.ObjectQuery{Kind: "Nothing"})
		require.NoError(t, err)
		require.Empty(t, page.Objects)
	})

	t.Run("LabelSelector", func(t *testing.T) {
		s, _ := openDefault(t, open)
		for name, labels := range map[string]map[string]string{
			"n1": {"rack": "r1", "gpu": "a100"},
			"n2": {"rack": "r1"},
			"n3": {"rack": "r2", "gpu": "h100"},
			"n4": {"rack": "r3", "retired": "yes"},
			"n5": nil,
		} {
			mustPut(t, s, hardware(name, labels))
		}
		for _, tt := range []struct {
			selector string
			want     []string
		}{
			{"", []string{"n1", "n2", "n3", "n4", "n5"}},
			{"rack=r1", []string{"n1", "n2"}},
			{"rack==r1", []string{"n1", "n2"}},
			{"rack!=r1", []string{"n3", "n4", "n5"}},
			{"gpu", []string{"n1", "n3"}},
			{"!gpu", []string{"n2", "n4", "n5"}},
			{"rack in (r2, r3)", []string{"n3", "n4"}},
			{"rack notin (r1,r2)", []string{"n4", "n5"}},
			{"rack=r1,gpu", []string{"n1"}},
			{"rack=r9", nil},
		} {
			t.Run(tt.selector, func(t *testing.T) {
				sel, err := state.ParseSelector(tt.selector)
				require.NoError(t, err)
				page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware, Selector: sel})
				require.NoError(t, err)
				var got []string
				for _, o := range page.Objects {
					got = append(got, o.Name)
				}
				require.Equal(t, tt.want, got)
			})
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		s, _ := openDefault(t, open)
		var want []string
		for i := range 25 {
			o := mustPut(t, s, hardware(fmt.Sprintf("node-%02d", i), map[string]string{"even": fmt.Sprint(i%2 == 0)}))
			want = append(want, o.Key().String())
		}
		got, pages := listAll(t, s, state.ObjectQuery{Kind: state.KindHardware, Limit: 7})
		require.Equal(t, want, got, "pages cover every object once, in order")
		require.Equal(t, 4, pages)

		got, pages = listAll(t, s, state.ObjectQuery{Kind: state.KindHardware, Limit: 5})
		require.Equal(t, want, got)
		require.Equal(t, 5, pages, "a full last page has no continue token")

		sel, err := state.ParseSelector("even=true")
		require.NoError(t, err)
		got, pages = listAll(t, s, state.ObjectQuery{Kind: state.KindHardware, Selector: sel, Limit: 4})
		require.Len(t, got, 13)
		require.Equal(t, 4, pages)
		for i, name := range got {
			require.Equal(t, fmt.Sprintf("Hardware/node-%02d", 2*i), name)
		}
	})

	t.Run("PaginationUnderWrites", func(t *testing.T) {
		s, _ := openDefault(t, open)
		for i := range 10 {
			mustPut(t, s, hardware(fmt.Sprintf("node-%02d", i), nil))
		}
		page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware, Limit: 5})
		require.NoError(t, err)
		require.NotEmpty(t, page.Continue)
		// The last object returned disappears and one sorts before the
		// cursor: the next page still resumes right after node-04.
		require.NoError(t, s.DeleteObject(ctx, state.ActorGit, page.Objects[4].Key(), 0))
		mustPut(t, s, hardware("node-00a", nil))
		next, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware, Limit: 5, Continue: page.Continue})
		require.NoError(t, err)
		require.Equal(t, []string{"Hardware/node-05", "Hardware/node-06", "Hardware/node-07", "Hardware/node-08", "Hardware/node-09"}, names(next.Objects))
	})

	t.Run("ErrInvalidContinue", func(t *testing.T) {
		s, _ := openDefault(t, open)
		for i := range 3 {
			mustPut(t, s, hardware(fmt.Sprintf("n%d", i), nil))
			o := hardware(fmt.Sprintf("t%d", i), nil)
			o.Kind = state.KindTemplate
			mustPut(t, s, o)
		}
		page, err := s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware, Limit: 1})
		require.NoError(t, err)
		require.NotEmpty(t, page.Continue)

		_, err = s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindHardware, Continue: "!!not a token!!"})
		requireCode(t, err, state.EINVALID)
		_, err = s.ListObjects(ctx, state.ObjectQuery{Kind: state.KindTemplate, Continue: page.Continue})
		requireCode(t, err, state.EINVALID, "a token of another query")
	})

	t.Run("ErrBadSelector", func(t *testing.T) {
		for _, sel := range []string{"rack in (r1", "=x", "a b=c", "rack in ()", ","} {
			_, err := state.ParseSelector(sel)
			requireCode(t, err, state.EINVALID, sel)
		}
	})
}

// listAll follows continue tokens to the end and returns every key and the
// number of pages.
func listAll(t *testing.T, s state.Store, q state.ObjectQuery) ([]string, int) {
	t.Helper()
	var all []string
	pages := 0
	for {
		page, err := s.ListObjects(context.Background(), q)
		require.NoError(t, err)
		pages++
		require.LessOrEqual(t, len(page.Objects), q.Limit)
		all = append(all, names(page.Objects)...)
		if page.Continue == "" {
			return all, pages
		}
		require.Len(t, page.Objects, q.Limit, "only a full page has a continue token")
		q.Continue = page.Continue
		require.Less(t, pages, 1000, "pagination does not end")
	}
}
