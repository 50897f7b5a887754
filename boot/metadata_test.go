package boot_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/boot"
	"github.com/tinkops/tinkops/state"
)

// fullMetadata sets every metadata field of Tinkerbell's Hardware.
const fullMetadata = `
userData: "#cloud-config\nhostname: web-01\n"
vendorData: "vendor"
interfaces:
  - dhcp: {mac: "52:54:00:bb:00:01", ip: {address: 10.2.0.11, netmask: 255.255.255.0}}
metadata:
  state: provisioning
  bonding_mode: 4
  manufacturer: {id: m-1, slug: supermicro}
  facility: {plan_slug: c3.small.x86, plan_version_slug: v2, facility_code: ams1}
  custom:
    preinstalled_operating_system_version: {slug: debian_12, distro: debian, version: "12"}
    private_subnets: [10.0.0.0/8]
  instance:
    id: i-0123
    state: active
    hostname: web-01
    allow_pxe: true
    rescue: false
    always_pxe: false
    ipxe_script_url: http://boot.example.com/x.ipxe
    userdata: legacy
    crypted_root_password: "$6$secret"
    network_ready: true
    tags: [web, prod]
    ssh_keys: ["ssh-ed25519 AAAA one", "ssh-ed25519 BBBB two"]
    operating_system: {slug: ubuntu_22_04, distro: ubuntu, version: "22.04", image_tag: v1, os_slug: ubuntu}
    ips:
      - {address: 10.2.0.11, netmask: 255.255.255.0, gateway: 10.2.0.1, family: 4, public: false, management: true}
      - {address: 203.0.113.11, family: 4, public: true}
      - {address: "2001:db8::11", family: 6, public: true}
    storage:
      disks: [{device: /dev/sda, wipe_table: true, partitions: [{label: ROOT, number: 1, size: 0, start: 2048, type_guid: 0FC63DAF-8483-4772-8E79-3D69D8477DE4}]}]
      raid: [{name: md0, level: "1", devices: [/dev/sdb, /dev/sdc], spare: 0}]
      filesystems: [{mount: {device: /dev/sda1, format: ext4, point: /, create: {force: true, options: ["-L", "ROOT"]}, files: [{path: /etc/motd, contents: hi, mode: 420, uid: 0, gid: 0}]}}]
`

func TestMetadata(t *testing.T) {
	f := newFixture(t, boot.Config{})
	f.put(state.KindHardware, "web-01", fullMetadata)
	f.put(state.KindHardware, "other", `
userData: other-machine
interfaces: [{dhcp: {mac: "52:54:00:bb:00:02", ip: {address: 10.2.0.12, netmask: 255.255.255.0}}}]
metadata: {instance: {id: i-other, hostname: other}}
`)
	for path, want := range map[string]string{
		"/2009-04-04":                                                     "meta-data/\nuser-data",
		"/2009-04-04/":                                                    "meta-data/\nuser-data",
		"/2009-04-04/user-data":                                           "#cloud-config\nhostname: web-01\n",
		"/2009-04-04/meta-data":                                           "facility\nhostname\ninstance-id\niqn\nlocal-hostname\nlocal-ipv4\noperating-system/\nplan\npublic-ipv4\npublic-ipv6\npublic-keys\ntags",
		"/2009-04-04/meta-data/":                                          "facility\nhostname\ninstance-id\niqn\nlocal-hostname\nlocal-ipv4\noperating-system/\nplan\npublic-ipv4\npublic-ipv6\npublic-keys\ntags",
		"/2009-04-04/meta-data/facility":                                  "ams1",
		"/2009-04-04/meta-data/hostname":                                  "web-01",
		"/2009-04-04/meta-data/instance-id":                               "i-0123",
		"/2009-04-04/meta-data/iqn":                                       "",
		"/2009-04-04/meta-data/local-hostname":                            "web-01",
		"/2009-04-04/meta-data/local-ipv4":                                "10.2.0.11",
		"/2009-04-04/meta-data/plan":                                      "c3.small.x86",
		"/2009-04-04/meta-data/public-ipv4":                               "203.0.113.11",
		"/2009-04-04/meta-data/public-ipv6":                               "2001:db8::11",
		"/2009-04-04/meta-data/public-keys":                               "ssh-ed25519 AAAA one\nssh-ed25519 BBBB two",
		"/2009-04-04/meta-data/tags":                                      "web\nprod",
		"/2009-04-04/meta-data/operating-system":                          "distro\nimage_tag\nlicense_activation/\nslug\nversion",
		"/2009-04-04/meta-data/operating-system/":                         "distro\nimage_tag\nlicense_activation/\nslug\nversion",
		"/2009-04-04/meta-data/operating-system/slug":                     "ubuntu_22_04",
		"/2009-04-04/meta-data/operating-system/distro":                   "ubuntu",
		"/2009-04-04/meta-data/operating-system/version":                  "22.04",
		"/2009-04-04/meta-data/operating-system/image_tag":                "v1",
		"/2009-04-04/meta-data/operating-system/license_activation":       "state",
		"/2009-04-04/meta-data/operating-system/license_activation/":      "state",
		"/2009-04-04/meta-data/operating-system/license_activation/state": "",
	} {
		code, body, _ := f.get(path, "10.2.0.11:5000")
		require.Equal(t, http.StatusOK, code, path)
		require.Equal(t, want, body, path)

		// A caller that is no hardware's learns nothing, not even the listing.
		code, body, _ = f.get(path, "10.2.0.99:5000")
		require.Equal(t, http.StatusNotFound, code, path)
		require.Equal(t, "no hardware has IP address 10.2.0.99\n", body, path)
	}

	// /metadata: the storage layout rootio reads, and nothing else (no
	// crypted_root_password, no other field of the instance).
	code, body, h := f.get("/metadata", "10.2.0.11:5000")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "application/json", h.Get("Content-Type"))
	require.NotContains(t, body, "secret")
	var md map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &md))
	require.Equal(t, map[string]any{"metadata": map[string]any{"instance": map[string]any{"storage": map[string]any{
		"disks": []any{map[string]any{"device": "/dev/sda", "wipe_table": true, "partitions": []any{
			map[string]any{"label": "ROOT", "number": 1.0, "start": 2048.0, "type_guid": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}}}},
		"raid": []any{map[string]any{"name": "md0", "level": "1", "devices": []any{"/dev/sdb", "/dev/sdc"}}},
		"filesystems": []any{map[string]any{"mount": map[string]any{"device": "/dev/sda1", "format": "ext4", "point": "/",
			"create": map[string]any{"force": true, "options": []any{"-L", "ROOT"}},
			"files":  []any{map[string]any{"path": "/etc/motd", "contents": "hi", "mode": 420.0}}}}},
	}}}}, md)

	// One machine never sees another's data.
	_, body, _ = f.get("/2009-04-04/meta-data/instance-id", "10.2.0.12:5000")
	require.Equal(t, "i-other", body)
	_, body, _ = f.get("/2009-04-04/user-data", "10.2.0.12:5000")
	require.Equal(t, "other-machine", body)
	_, body, _ = f.get("/metadata", "10.2.0.12:5000")
	require.JSONEq(t, `{"metadata": {"instance": {}}}`, body)

	code, _, _ = f.get("/metadata", "10.2.0.99:5000")
	require.Equal(t, http.StatusNotFound, code)
	code, _, _ = f.get("/2009-04-04/meta-data/nothing", "10.2.0.11:5000")
	require.Equal(t, http.StatusNotFound, code)
}
