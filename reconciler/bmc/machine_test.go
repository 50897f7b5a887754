package bmc_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/reconciler/bmc"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
	"github.com/tinkops/tinkops/state/badger"
)

// TestStoreConnectionResolvesBMCRef: a hardware's bmcRef is resolved to the
// Rufio Machine of that name in the store, read on every call (a Machine
// changed in Git is used by the next BMC call); an inline bmc block wins; a
// bmcRef to a Machine the store lacks is the hardware's configuration at
// fault, named in the error.
func TestStoreConnectionResolvesBMCRef(t *testing.T) {
	ctx := context.Background()
	st, err := badger.Open(ctx, t.TempDir(), badger.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	putMachine := func(spec string) {
		t.Helper()
		key := state.ObjectKey{Kind: state.KindMachine, Namespace: "tink-system", Name: "bmc-node-01"}
		obj := &state.Object{Kind: key.Kind, Namespace: key.Namespace, Name: key.Name, Spec: []byte(spec), Source: state.SourceGit}
		if old, err := st.GetObject(ctx, key); err == nil {
			obj.ResourceVersion = old.ResourceVersion
		}
		_, err := st.PutObject(ctx, state.ActorGit, obj)
		require.NoError(t, err)
	}
	resolve := bmc.StoreConnection(st)
	hw := &schema.Hardware{Metadata: schema.ObjectMeta{Name: "node-01", Namespace: "tink-system"}}
	hw.Spec.BMCRef = &schema.TypedObjectRef{Kind: "Machine", Name: "bmc-node-01"}

	_, err = resolve(ctx, hw)
	require.Equal(t, state.EINVALID, state.ErrorCode(err), "%v", err)
	require.Equal(t, "hardware node-01: bmcRef names Machine bmc-node-01, which does not exist", state.ErrorMessage(err))

	putMachine(`{"connection":{"host":"10.0.0.7","authSecretRef":{"name":"creds"},"providerOptions":{"ipmitool":{"port":6230,"cipherSuite":"3"}}}}`)
	conn, err := resolve(ctx, hw)
	require.NoError(t, err)
	require.Equal(t, &schema.BMCConnection{Host: "10.0.0.7", Port: 6230, Protocol: "ipmi",
		Secret: schema.SecretRef{Namespace: "tink-system", Name: "creds"}, CipherSuite: "3", From: "Machine/tink-system/bmc-node-01"}, conn)

	putMachine(`{"connection":{"host":"10.0.0.8","authSecretRef":{"name":"creds"},"providerOptions":{"preferredOrder":["gofish"],"redfish":{"port":8443}}}}`)
	conn, err = resolve(ctx, hw)
	require.NoError(t, err)
	require.Equal(t, "10.0.0.8", conn.Host)
	require.Equal(t, "redfish", conn.Protocol)
	require.Equal(t, 8443, conn.Port)

	hw.Spec.BMC = &schema.BMC{Address: "10.0.0.9", CredentialsRef: "inline-creds"}
	conn, err = resolve(ctx, hw)
	require.NoError(t, err)
	require.Equal(t, "inline", conn.From)
	require.Equal(t, "10.0.0.9", conn.Host)

	hw.Spec.BMC, hw.Spec.BMCRef = nil, nil
	conn, err = resolve(ctx, hw)
	require.NoError(t, err)
	require.Nil(t, conn, "no BMC declared")
}
