package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/state"
)

func testObjects(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("Create", func(t *testing.T) {
		s, clock := openDefault(t, open)
		in := hardware("node-01", map[string]string{"rack": "r1"})
		out := mustPut(t, s, in)
		require.NotZero(t, out.ResourceVersion)
		require.Equal(t, clock.Now(), out.CreatedAt.UTC())
		require.Equal(t, clock.Now(), out.UpdatedAt.UTC())

		got, err := s.GetObject(ctx, in.Key())
		require.NoError(t, err)
		require.Equal(t, out.ResourceVersion, got.ResourceVersion)
		require.JSONEq(t, string(in.Spec), string(got.Spec))
		require.Equal(t, in.Labels, got.Labels)
		require.Equal(t, state.SourceGit, got.Source)
		require.Equal(t, in.Revision, got.Revision)
		require.Equal(t, in.File, got.File)
	})

	t.Run("RoundTrip", func(t *testing.T) {
		s, clock := openDefault(t, open)
		in := &state.Object{
			Kind:        state.KindMachine,
			Namespace:   "tink-system",
			Name:        "bmc-17",
			Labels:      map[string]string{"rack": "r2", "site": "ams"},
			Annotations: map[string]string{"note": "spare PSU"},
			Spec:        json.RawMessage(`{"connection":{"host":"10.0.0.17","port":623}}`),
			Status:      json.RawMessage(`{"power":"on"}`),
			Source:      state.SourceGit,
			Revision:    "main@sha1:abc",
			File:        "machines/bmc-17.yaml",
			Override: &state.Override{
				By:      state.APIUser("alice"),
				At:      clock.Now(),
				Reason:  "testing a new BMC address",
				GitSpec: json.RawMessage(`{"connection":{"host":"10.0.0.18"}}`),
			},
		}
		mustPut(t, s, in)
		got, err := s.GetObject(ctx, in.Key())
		require.NoError(t, err)
		require.Equal(t, in.Annotations, got.Annotations)
		require.JSONEq(t, string(in.Status), string(got.Status))
		require.NotNil(t, got.Override)
		require.Equal(t, in.Override.By, got.Override.By)
		require.True(t, in.Override.At.Equal(got.Override.At))
		require.Equal(t, in.Override.Reason, got.Override.Reason)
		require.JSONEq(t, string(in.Override.GitSpec), string(got.Override.GitSpec))
	})

	t.Run("Update", func(t *testing.T) {
		s, clock := openDefault(t, open)
		v1 := mustPut(t, s, hardware("node-01", nil))
		created := clock.Now()
		clock.Advance(time.Minute)

		in := hardware("node-01", map[string]string{"rack": "r9"})
		in.ResourceVersion = v1.ResourceVersion
		v2 := mustPut(t, s, in)
		require.Greater(t, v2.ResourceVersion, v1.ResourceVersion)
		require.Equal(t, created, v2.CreatedAt.UTC(), "an update keeps the creation time")
		require.Equal(t, clock.Now(), v2.UpdatedAt.UTC())

		got, err := s.GetObject(ctx, in.Key())
		require.NoError(t, err)
		require.Equal(t, v2.ResourceVersion, got.ResourceVersion)
		require.Equal(t, "r9", got.Labels["rack"])
	})

	t.Run("ErrAlreadyExists", func(t *testing.T) {
		s, _ := openDefault(t, open)
		mustPut(t, s, hardware("node-01", nil))
		_, err := s.PutObject(ctx, state.ActorGit, hardware("node-01", nil))
		requireCode(t, err, state.ECONFLICT)
		require.Contains(t, state.ErrorMessage(err), "Hardware/node-01")
	})

	t.Run("ErrStaleResourceVersion", func(t *testing.T) {
		s, _ := openDefault(t, open)
		v1 := mustPut(t, s, hardware("node-01", nil))
		in := hardware("node-01", map[string]string{"v": "2"})
		in.ResourceVersion = v1.ResourceVersion
		v2 := mustPut(t, s, in)

		stale := hardware("node-01", map[string]string{"v": "stale"})
		stale.ResourceVersion = v1.ResourceVersion
		_, err := s.PutObject(ctx, state.ActorGit, stale)
		requireCode(t, err, state.ECONFLICT)
		require.Contains(t, state.ErrorMessage(err), "Hardware/node-01")

		got, err := s.GetObject(ctx, in.Key())
		require.NoError(t, err)
		require.Equal(t, v2.ResourceVersion, got.ResourceVersion, "a conflict changes nothing")
		require.Equal(t, "2", got.Labels["v"])
	})

	t.Run("ErrUpdateMissing", func(t *testing.T) {
		s, _ := openDefault(t, open)
		in := hardware("ghost", nil)
		in.ResourceVersion = 7
		_, err := s.PutObject(ctx, state.ActorGit, in)
		requireCode(t, err, state.ENOTFOUND)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s, _ := openDefault(t, open)
		_, err := s.GetObject(ctx, state.ObjectKey{Kind: state.KindHardware, Name: "nope"})
		requireCode(t, err, state.ENOTFOUND)
		require.Contains(t, state.ErrorMessage(err), "Hardware/nope")
	})

	t.Run("Delete", func(t *testing.T) {
		s, _ := openDefault(t, open)
		v1 := mustPut(t, s, hardware("node-01", nil))
		key := v1.Key()
		require.NoError(t, s.DeleteObject(ctx, state.APIUser("bob"), key, v1.ResourceVersion))
		_, err := s.GetObject(ctx, key)
		requireCode(t, err, state.ENOTFOUND)

		evs, err := s.Events(ctx, state.EventQuery{Descending: true, Limit: 1})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Equal(t, state.EventDeleted, evs[0].Type)
		require.Equal(t, "node-01", evs[0].Name)
		require.Equal(t, state.APIUser("bob"), evs[0].Actor)
	})

	t.Run("DeleteAnyVersion", func(t *testing.T) {
		s, _ := openDefault(t, open)
		v1 := mustPut(t, s, hardware("node-01", nil))
		require.NoError(t, s.DeleteObject(ctx, state.ActorGit, v1.Key(), 0))
		_, err := s.GetObject(ctx, v1.Key())
		requireCode(t, err, state.ENOTFOUND)
	})

	t.Run("DeleteErrConflict", func(t *testing.T) {
		s, _ := openDefault(t, open)
		v1 := mustPut(t, s, hardware("node-01", nil))
		err := s.DeleteObject(ctx, state.ActorGit, v1.Key(), v1.ResourceVersion+100)
		requireCode(t, err, state.ECONFLICT)
		_, err = s.GetObject(ctx, v1.Key())
		require.NoError(t, err, "a conflicting delete deletes nothing")
	})

	t.Run("DeleteErrNotFound", func(t *testing.T) {
		s, _ := openDefault(t, open)
		err := s.DeleteObject(ctx, state.ActorGit, state.ObjectKey{Kind: state.KindTemplate, Name: "gone"}, 0)
		requireCode(t, err, state.ENOTFOUND)
		require.Contains(t, state.ErrorMessage(err), "Template/gone")
	})

	t.Run("KeysAreKindNamespaceName", func(t *testing.T) {
		s, _ := openDefault(t, open)
		a := hardware("x", map[string]string{"which": "a"})
		b := hardware("x", map[string]string{"which": "b"})
		b.Namespace = "ns1"
		c := hardware("x", map[string]string{"which": "c"})
		c.Kind = state.KindTemplate
		for _, o := range []*state.Object{a, b, c} {
			mustPut(t, s, o)
		}
		for _, o := range []*state.Object{a, b, c} {
			got, err := s.GetObject(ctx, o.Key())
			require.NoError(t, err)
			require.Equal(t, o.Labels["which"], got.Labels["which"], o.Key().String())
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		s, _ := openDefault(t, open)
		for _, tt := range []struct {
			name   string
			mutate func(o *state.Object)
			want   string
		}{
			{"ErrNameRequired", func(o *state.Object) { o.Name = "" }, "Hardware/"},
			{"ErrKindRequired", func(o *state.Object) { o.Kind = "" }, "/bad"},
			{"ErrSlashInName", func(o *state.Object) { o.Name = "a/b" }, "Hardware/a/b"},
			{"ErrControlCharInNamespace", func(o *state.Object) { o.Namespace = "a\x00b" }, "Hardware/"},
			{"ErrBadSource", func(o *state.Object) { o.Source = "svn" }, "Hardware/bad"},
			{"ErrSpecNotJSON", func(o *state.Object) { o.Spec = json.RawMessage(`{"a":`) }, "Hardware/bad"},
			{"ErrOverrideOnAPIObject", func(o *state.Object) {
				o.Source = state.SourceAPI
				o.Override = &state.Override{By: state.APIUser("x")}
			}, "Hardware/bad"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				o := hardware("bad", nil)
				tt.mutate(o)
				_, err := s.PutObject(ctx, state.ActorGit, o)
				requireCode(t, err, state.EINVALID)
				require.Contains(t, state.ErrorMessage(err), tt.want)
			})
		}
		bounds, err := s.EventBounds(ctx)
		require.NoError(t, err)
		require.Zero(t, bounds.Latest, "invalid writes append no events")
	})

	t.Run("EventPerChange", func(t *testing.T) {
		s, _ := openDefault(t, open)
		v1 := mustPut(t, s, hardware("node-01", nil))
		in := hardware("node-01", nil)
		in.ResourceVersion = v1.ResourceVersion
		v2 := mustPut(t, s, in)
		require.NoError(t, s.DeleteObject(ctx, state.ActorGit, v2.Key(), v2.ResourceVersion))

		evs, err := s.Events(ctx, state.EventQuery{})
		require.NoError(t, err)
		require.Len(t, evs, 3)
		requireContiguous(t, evs, 1)
		for i, want := range []state.EventType{state.EventCreated, state.EventUpdated, state.EventDeleted} {
			ev := evs[i]
			require.Equal(t, want, ev.Type)
			require.Equal(t, state.KindHardware, ev.Kind)
			require.Equal(t, "node-01", ev.Name)
			require.Equal(t, state.ActorGit, ev.Actor)
			require.NotEmpty(t, ev.Message)
		}
		require.Equal(t, v1.ResourceVersion, evs[0].ResourceVersion)
		require.Equal(t, v2.ResourceVersion, evs[1].ResourceVersion)
		require.Equal(t, in.Revision, evs[0].Revision)
		require.Contains(t, evs[0].Message, fmt.Sprint("Hardware/node-01"))
	})
}
