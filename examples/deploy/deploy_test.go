package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/tinkops/tinkops/api"
)

// The values the manifests must agree on.
const (
	namespace  = "tink-system"
	serverPort = 42113
	serverName = "tink-server"
)

// clusterScoped are the kinds that have no namespace.
var clusterScoped = map[string]bool{"Namespace": true, "PersistentVolume": true, "StorageClass": true, "ClusterRole": true, "ClusterRoleBinding": true}

// object is one manifest document: the fields every object has, plus the
// raw node to decode a kind's own fields from.
type object struct {
	File       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	node *yaml.Node
}

func (o object) String() string { return o.File + ": " + o.Kind + "/" + o.Metadata.Name }

// decode decodes the whole document into v.
func (o object) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, o.node.Decode(v), "%s", o)
}

// secret is a Secret's keys.
type secret struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

func (s secret) value(key string) (string, bool) {
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return v, ok
}

type deployment struct {
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
		RunAsUser    *int64 `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []volume    `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		// Port is a number or a port name.
		Port any `yaml:"port"`
	} `yaml:"httpGet"`
}

type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		Items      []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
	EmptyDir *yaml.Node `yaml:"emptyDir"`
}

type service struct {
	Spec struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

// manifests reads every document of the files kustomization.yaml lists.
func manifests(t *testing.T) []object {
	t.Helper()
	var k struct {
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile("kustomization.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &k))
	require.NotEmpty(t, k.Resources, "kustomization.yaml lists no resources")
	var out []object
	for _, file := range k.Resources {
		b, err := os.ReadFile(file)
		require.NoError(t, err, "kustomization.yaml lists %s", file)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "%s", file)
			o := object{File: file, node: &n}
			require.NoError(t, n.Decode(&o), "%s", file)
			if o.Kind == "" && o.APIVersion == "" {
				continue // a document of comments only
			}
			require.NotEmpty(t, o.Kind, "%s: a document without kind", file)
			require.NotEmpty(t, o.Metadata.Name, "%s: %s without metadata.name", file, o.Kind)
			out = append(out, o)
		}
	}
	return out
}

// find returns the one object of kind named name.
func find(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	require.Failf(t, "missing object", "no %s named %s in the manifests", kind, name)
	return object{}
}

// server returns the tink-server Deployment and its tink-server container.
func server(t *testing.T, objs []object) (deployment, container) {
	t.Helper()
	var d deployment
	find(t, objs, "Deployment", serverName).decode(t, &d)
	cs := d.Spec.Template.Spec.Containers
	i := slices.IndexFunc(cs, func(c container) bool { return c.Name == serverName })
	require.GreaterOrEqual(t, i, 0, "the Deployment has no container named %s", serverName)
	return d, cs[i]
}

// args reads the container's --name=value arguments. Every argument must
// have that form: it is what the checks below can read unambiguously.
func args(t *testing.T, c container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range c.Args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		require.True(t, strings.HasPrefix(a, "--") && ok, "argument %q: write flags as --name=value", a)
		_, dup := out[name]
		require.False(t, dup, "--%s is given twice", name)
		out[name] = value
	}
	return out
}

// TestKustomization: kustomization.yaml lists every manifest in this
// directory, so nothing is left out of `kubectl apply -k`.
func TestKustomization(t *testing.T) {
	var k struct {
		Resources []string `yaml:"resources"`
	}
	b, err := os.ReadFile("kustomization.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &k))
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	sort.Strings(files)
	listed := slices.Clone(k.Resources)
	sort.Strings(listed)
	require.Equal(t, files, listed)
}

// TestNamespace: every namespaced object is in tink-system, and the
// Namespace itself is defined.
func TestNamespace(t *testing.T) {
	objs := manifests(t)
	find(t, objs, "Namespace", namespace)
	for _, o := range objs {
		if clusterScoped[o.Kind] {
			require.Empty(t, o.Metadata.Namespace, "%s is cluster-scoped", o)
			continue
		}
		require.Equal(t, namespace, o.Metadata.Namespace, "%s", o)
	}
}

// TestDeployment: one replica, replaced with Recreate (the store's lock
// allows one writer), non-root, read-only root, no privilege escalation,
// the requested resources.
func TestDeployment(t *testing.T) {
	objs := manifests(t)
	d, c := server(t, objs)
	require.NotNil(t, d.Spec.Replicas)
	require.Equal(t, 1, *d.Spec.Replicas, "the embedded store allows one writer")
	require.Equal(t, "Recreate", d.Spec.Strategy.Type, "a rolling update would start a second pod while the first holds the lock")
	require.Equal(t, "tinkops:dev", c.Image, "the image make image builds")
	for k, v := range d.Spec.Selector.MatchLabels {
		require.Equal(t, v, d.Spec.Template.Metadata.Labels[k], "the selector must match the pod's labels (%s)", k)
	}

	sc := c.SecurityContext
	require.True(t, sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "runAsNonRoot")
	require.True(t, sc.RunAsUser != nil && *sc.RunAsUser == 65532, "runAsUser 65532, the image's user")
	require.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem")
	require.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation: false")
	psc := d.Spec.Template.Spec.SecurityContext
	require.True(t, psc.RunAsNonRoot != nil && *psc.RunAsNonRoot, "pod runAsNonRoot")

	require.Equal(t, map[string]string{"cpu": "250m", "memory": "256Mi"}, c.Resources.Requests)
	require.Equal(t, "1Gi", c.Resources.Limits["memory"])

	a := args(t, c)
	require.Equal(t, "0.0.0.0:"+strconv.Itoa(serverPort), a["listen"])
	require.NotEmpty(t, a["auth-file"], "listening beyond loopback needs --auth-file")
	_, insecure := a["insecure"]
	require.False(t, insecure, "the example must not run without tokens")
}

// TestPorts: the container serves on 42113, and the Service sends its port
// there.
func TestPorts(t *testing.T) {
	objs := manifests(t)
	d, c := server(t, objs)
	require.Len(t, c.Ports, 1)
	require.Equal(t, serverPort, c.Ports[0].ContainerPort)

	var svc service
	find(t, objs, "Service", serverName).decode(t, &svc)
	require.Equal(t, "ClusterIP", svc.Spec.Type)
	for k, v := range svc.Spec.Selector {
		require.Equal(t, v, d.Spec.Template.Metadata.Labels[k], "the Service's selector must match the pod (%s)", k)
	}
	require.Len(t, svc.Spec.Ports, 1)
	p := svc.Spec.Ports[0]
	require.Equal(t, "http", p.Name)
	require.Equal(t, serverPort, p.Port)
	require.Equal(t, serverPort, resolvePort(t, c, p.TargetPort), "the Service's targetPort")
}

// resolvePort returns the container port a probe or Service names, by
// number or by name.
func resolvePort(t *testing.T, c container, port any) int {
	t.Helper()
	switch p := port.(type) {
	case int:
		return p
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
		require.Failf(t, "unknown port", "the container has no port named %q", p)
	case nil:
		require.Fail(t, "no port given")
	}
	require.Failf(t, "bad port", "port %v is neither a number nor a name", port)
	return 0
}

// TestProbes: readiness on /readyz, liveness and startup on /healthz (the
// startup probe gives a large store time to open), the routes
// that need no token, on the server's port.
func TestProbes(t *testing.T) {
	_, c := server(t, manifests(t))
	for _, tc := range []struct {
		name string
		p    *probe
		path string
	}{
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"startupProbe", c.StartupProbe, "/healthz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NotNil(t, tc.p, "missing")
			require.NotNil(t, tc.p.HTTPGet, "not an httpGet probe")
			require.Equal(t, tc.path, tc.p.HTTPGet.Path)
			require.Equal(t, serverPort, resolvePort(t, c, tc.p.HTTPGet.Port))
		})
	}
}

// TestVolumes: every mount names a volume, every volume is mounted and
// names a Secret or PVC the manifests define, every secret key the pod
// uses exists, and the flags point at the mounts that hold what they read.
func TestVolumes(t *testing.T) {
	objs := manifests(t)
	d, c := server(t, objs)
	vols := map[string]volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		_, dup := vols[v.Name]
		require.False(t, dup, "volume %s is defined twice", v.Name)
		vols[v.Name] = v
	}
	mounts := map[string]string{} // mount path -> volume
	used := map[string]bool{}
	for _, m := range c.VolumeMounts {
		_, ok := vols[m.Name]
		require.True(t, ok, "mount %s names volume %s, which is not defined", m.MountPath, m.Name)
		require.Empty(t, m.SubPath, "mount %s: subPath mounts do not see secret updates", m.MountPath)
		mounts[m.MountPath] = m.Name
		used[m.Name] = true
	}
	for name, v := range vols {
		require.True(t, used[name], "volume %s is not mounted", name)
		switch {
		case v.Secret != nil:
			var s secret
			find(t, objs, "Secret", v.Secret.SecretName).decode(t, &s)
			for _, it := range v.Secret.Items {
				_, ok := s.value(it.Key)
				require.True(t, ok, "volume %s maps key %s, which Secret %s does not have", name, it.Key, v.Secret.SecretName)
			}
		case v.PersistentVolumeClaim != nil:
			find(t, objs, "PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName)
		case v.EmptyDir != nil:
		default:
			require.Failf(t, "unknown volume", "volume %s is neither a Secret, a PVC nor an emptyDir", name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		var s secret
		find(t, objs, "Secret", ref.Name).decode(t, &s)
		_, ok := s.value(ref.Key)
		require.True(t, ok, "env %s reads key %s, which Secret %s does not have", e.Name, ref.Key, ref.Name)
	}

	a := args(t, c)
	volumeAt := func(dir string) volume {
		t.Helper()
		name, ok := mounts[dir]
		require.True(t, ok, "nothing is mounted at %s", dir)
		return vols[name]
	}
	t.Run("data-dir", func(t *testing.T) {
		v := volumeAt(a["data-dir"])
		require.NotNil(t, v.PersistentVolumeClaim, "--data-dir=%s must be the PVC's mount path", a["data-dir"])
	})
	for _, flag := range []string{"git-auth-dir", "secrets-dir"} {
		t.Run(flag, func(t *testing.T) {
			dir, ok := a[flag]
			require.True(t, ok, "--%s is not given", flag)
			require.NotNil(t, volumeAt(dir).Secret, "--%s=%s must be a Secret's mount path", flag, dir)
		})
	}
	t.Run("secrets-dir layout", func(t *testing.T) {
		// One folder per secret with username, password and
		// allowed-hosts in it.
		v := volumeAt(a["secrets-dir"])
		require.NotEmpty(t, v.Secret.Items, "map the Secret's keys to <secret>/username, <secret>/password and <secret>/allowed-hosts with items")
		files := map[string][]string{}
		for _, it := range v.Secret.Items {
			dir, file := path.Split(it.Path)
			require.NotEmpty(t, dir, "item %s: %s is not in a folder", it.Key, it.Path)
			require.False(t, strings.Contains(strings.TrimSuffix(dir, "/"), "/"), "item %s: %s is nested too deep", it.Key, it.Path)
			files[dir] = append(files[dir], file)
		}
		for dir, fs := range files {
			sort.Strings(fs)
			require.Equal(t, []string{"allowed-hosts", "password", "username"}, fs, "secret folder %s", dir)
		}
	})
	t.Run("auth-file", func(t *testing.T) {
		file := a["auth-file"]
		v := volumeAt(path.Dir(file))
		require.NotNil(t, v.Secret, "--auth-file=%s must be in a Secret's mount", file)
		var s secret
		find(t, objs, "Secret", v.Secret.SecretName).decode(t, &s)
		body, ok := s.value(path.Base(file))
		require.True(t, ok, "Secret %s has no key %s", v.Secret.SecretName, path.Base(file))
		// The file's shape is api.Token's: a list of {name, role,
		// hardware, sha256}. The hashes are placeholders, so
		// LoadAuthFile would refuse them; the fields and roles are
		// checked here.
		dec := yaml.NewDecoder(strings.NewReader(body))
		dec.KnownFields(true)
		var tokens []api.Token
		require.NoError(t, dec.Decode(&tokens), "tokens.yaml")
		require.NotEmpty(t, tokens)
		for _, tok := range tokens {
			require.NotEmpty(t, tok.Name)
			require.True(t, tok.Role.Valid(), "token %s: role %q", tok.Name, tok.Role)
			require.Equal(t, tok.Role == api.RoleWorker, tok.Hardware != "", "token %s: worker tokens, and only they, name their hardware", tok.Name)
			require.NotEmpty(t, tok.SHA256, "token %s", tok.Name)
		}
	})
}

// TestFlagsExist: every flag in the container's arguments is one that
// tink-server has, as its --help lists them.
func TestFlagsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tink-server")
	}
	_, c := server(t, manifests(t))
	usage := serverHelp(t)
	for name := range args(t, c) {
		re := regexp.MustCompile(`(?m)^\s*--?` + regexp.QuoteMeta(name) + `(\s|=|$)`)
		require.True(t, re.MatchString(usage), "tink-server has no flag --%s; its --help says:\n%s", name, usage)
	}
}

// serverHelp builds tink-server and returns what --help prints: the flag
// package prints the usage on stderr and exits non-zero, so both streams
// are read and the exit status is not.
func serverHelp(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "tink-server")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/tinkops/tinkops/cmd/tink-server")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	run := exec.CommandContext(ctx, bin, "--help")
	var buf bytes.Buffer
	run.Stdout, run.Stderr = &buf, &buf
	err = run.Run()
	require.NoError(t, ctx.Err(), "tink-server --help did not finish")
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err, "run tink-server --help")
	}
	require.Contains(t, buf.String(), "-data-dir", "tink-server --help printed no flags:\n%s", buf.String())
	return buf.String()
}
