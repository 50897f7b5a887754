package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// haFile decodes one document of examples/deploy/ha.
func haFile(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("ha", name))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v), "ha/%s", name)
}

// TestHA checks the HA overlay against the base: three replicas on
// PostgreSQL with the DSN from a Secret mounted where --postgres-dsn-file
// reads it, every flag one that tink-server has, a PodDisruptionBudget that
// selects the server's pods, and the base's volume claim removed.
func TestHA(t *testing.T) {
	var k struct {
		Resources []string `yaml:"resources"`
		Patches   []struct {
			Path  string `yaml:"path"`
			Patch string `yaml:"patch"`
		} `yaml:"patches"`
	}
	haFile(t, "kustomization.yaml", &k)
	require.Contains(t, k.Resources, "../", "the overlay builds on the base")
	for _, r := range k.Resources {
		_, err := os.Stat(filepath.Join("ha", r))
		require.NoError(t, err, "ha/kustomization.yaml lists %s", r)
	}
	var paths []string
	for _, p := range k.Patches {
		if p.Path != "" {
			paths = append(paths, p.Path)
			_, err := os.Stat(filepath.Join("ha", p.Path))
			require.NoError(t, err)
		}
	}
	require.Contains(t, paths, "deployment-patch.yaml")

	var d deployment
	haFile(t, "deployment-patch.yaml", &d)
	require.NotNil(t, d.Spec.Replicas)
	require.Equal(t, 3, *d.Spec.Replicas)
	require.Equal(t, "RollingUpdate", d.Spec.Strategy.Type)
	require.Len(t, d.Spec.Template.Spec.Containers, 1)
	c := d.Spec.Template.Spec.Containers[0]
	require.Equal(t, serverName, c.Name)
	a := args(t, c)
	require.Equal(t, "postgres", a["store"])
	dsnFile := a["postgres-dsn-file"]
	require.NotEmpty(t, dsnFile)
	require.NotNil(t, c.ReadinessProbe, "readiness follows the database")
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)

	// The DSN Secret is mounted where the flag reads it, with the key
	// the file is named after.
	var sec secret
	haFile(t, "postgres-secret.yaml", &sec)
	_, ok := sec.value(filepath.Base(dsnFile))
	require.True(t, ok, "the tink-postgres Secret has no key %s", filepath.Base(dsnFile))
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == filepath.Dir(dsnFile) {
			i := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v volume) bool { return v.Name == m.Name })
			require.GreaterOrEqual(t, i, 0, "volume %s is not declared", m.Name)
			v := d.Spec.Template.Spec.Volumes[i]
			require.NotNil(t, v.Secret)
			require.Equal(t, "tink-postgres", v.Secret.SecretName)
			mounted = true
		}
	}
	require.True(t, mounted, "nothing is mounted at %s", filepath.Dir(dsnFile))

	// The PodDisruptionBudget selects the base Deployment's pods.
	base, _ := server(t, manifests(t))
	var pdb struct {
		Spec struct {
			MinAvailable int `yaml:"minAvailable"`
			Selector     struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
		} `yaml:"spec"`
	}
	haFile(t, "pdb.yaml", &pdb)
	require.NotEmpty(t, pdb.Spec.Selector.MatchLabels)
	for k, v := range pdb.Spec.Selector.MatchLabels {
		require.Equal(t, v, base.Spec.Template.Metadata.Labels[k], "the PDB selects label %s=%s", k, v)
	}
	require.Less(t, pdb.Spec.MinAvailable, *d.Spec.Replicas, "a drain can go on")

	if testing.Short() {
		return
	}
	usage := serverHelp(t)
	for name := range a {
		re := regexp.MustCompile(`(?m)^\s*--?` + regexp.QuoteMeta(name) + `(\s|=|$)`)
		require.True(t, re.MatchString(usage), "tink-server has no flag --%s", name)
	}
}
