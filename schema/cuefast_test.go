package schema

import (
	"fmt"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// sampleScalars are values of every kind and shape the definitions
// constrain: valid and invalid names, MACs, IPs, numbers at bounds.
func sampleScalars() []string {
	return []string{
		`""`, `"x"`, `"node-01"`, `"Node_01"`, `"-a"`, `"a-"`, `"a.b"`, `"` + strings.Repeat("a", 253) + `"`, `"` + strings.Repeat("a", 254) + `"`,
		`"` + strings.Repeat("é", 200) + `"`, `"` + strings.Repeat("é", 201) + `"`,
		`"52:54:00:12:34:56"`, `"52:54:00:AB:34:56"`, `"52:54:00:12:34"`, `"x52:54:00:12:34:56"`,
		`"10.0.0.1"`, `"10.0.0.300"`, `"::1"`, `"fe80::1%eth0"`, `"1.2.3"`, `"255.255.255.0"`,
		`"10.0.0.0/8"`, `"10.0.0.0/33"`, `"0,100,4096"`, `"4097"`, `"9999"`,
		`"ipmi"`, `"redfish"`, `"ipmx"`, `"netboot"`, `"iso"`, `"http://x/a.iso"`, `"ftp://x"`,
		`"IntelAMT"`, `"intelamt"`, `"gofish"`, `"pxe"`, `"CD"`, `"on"`, `"0.1"`,
		`0`, `1`, `-1`, `4`, `6`, `5`, `623`, `65535`, `65536`, `100`, `101`, `9007199254740993`, `0x10`,
		`1.5`, `-0.0`, `1e400`, `true`, `false`, `null`,
	}
}

// TestFastAcceptIsSound: for every constraint in the definitions, a value
// the compiled Go predicate accepts is a value CUE accepts.
func TestFastAcceptIsSound(t *testing.T) {
	d, err := compileDefinitions(newMessages(), &leafResults{})
	require.NoError(t, err)
	var values []*yaml.Node
	for _, s := range sampleScalars() {
		var doc yaml.Node
		require.NoError(t, yaml.Unmarshal([]byte(s), &doc), s)
		values = append(values, doc.Content[0])
	}
	compiled, total := 0, 0
	var uncompiled []string
	var walk func(path string, v cue.Value, depth int)
	walk = func(path string, v cue.Value, depth int) {
		if depth > 12 {
			return
		}
		switch v.IncompleteKind() {
		case cue.StructKind:
			it, err := v.Fields(cue.Optional(true))
			require.NoError(t, err, path)
			for it.Next() {
				walk(path+"."+it.Selector().Unquoted(), it.Value(), depth+1)
			}
			if p := v.LookupPath(cue.MakePath(cue.AnyString)); p.Exists() {
				walk(path+".*", p, depth+1)
			}
			return
		case cue.ListKind:
			if e := v.LookupPath(cue.MakePath(cue.AnyIndex)); e.Exists() {
				walk(path+"[]", e, depth+1)
			}
			return
		}
		if trivialConstraint(fmt.Sprint(v)) {
			return
		}
		total++
		fast := compileFast(v, 0)
		if fast == nil {
			uncompiled = append(uncompiled, path+": "+fmt.Sprint(v))
			return
		}
		compiled++
		for _, n := range values {
			if !fast(n) {
				continue
			}
			err := v.Unify(d.ctx.BuildExpr(scalarToCUE(n))).Validate(cue.Concrete(true))
			require.NoError(t, err, "%s: Go accepts %q (%s) but CUE rejects it", path, n.Value, n.Tag)
		}
	}
	for _, def := range []string{"#Hardware", "#Workflow", "#Machine", "#Template", "#TemplateDocument", "#Config"} {
		walk(def, d.root.LookupPath(cue.ParsePath(def)), 0)
	}
	t.Logf("%d of %d constraints compiled to Go; not compiled: %v", compiled, total, uncompiled)
	// Only literal values (apiVersion, kind: checked before decoding) may
	// stay with CUE; anything else would cost the fleet its speed.
	for _, u := range uncompiled {
		require.True(t, strings.HasSuffix(u, `"`), "constraint not compiled to Go: %s", u)
	}
}

// TestLeafCheckWithoutFastPath: with every value sent to CUE the errors are
// the same, so the Go predicates change speed only.
func TestLeafCheckWithoutFastPath(t *testing.T) {
	d, err := compileDefinitions(newMessages(), &leafResults{})
	require.NoError(t, err)
	d.leaf.noFast = true
	d2, err := compileDefinitions(newMessages(), &leafResults{})
	require.NoError(t, err)
	doc := `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata: {name: Bad_Name}
spec:
  bmc: {address: "", protocol: ipmx, port: 70000, credentialsRef: ok}
  interfaces:
    - dhcp: {mac: "52:54:00:00:00:01", vlan_id: "9999", lease_time: 5, ip: {address: "10.0.0.1", netmask: "255.255.0.0", family: 4}}
    - dhcp: {mac: "zz", ip: {address: "1.2.3", family: 5}}
`
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(doc), &n))
	slow := d.leaf.check(KindHardware, d.byKind[KindHardware], n.Content[0], "h.yaml")
	fast := d2.leaf.check(KindHardware, d2.byKind[KindHardware], n.Content[0], "h.yaml")
	require.Equal(t, slow.Error(), fast.Error())
	require.Len(t, fast, 8)
}
