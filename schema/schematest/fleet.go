// Package schematest generates repositories for tests and benchmarks: a
// fleet shaped like a real one, one object per file.
package schematest

import (
	"fmt"
	"os"
	"path/filepath"
)

// Fleet generates a repository of nHW hardware, nT templates and a workflow
// per hardware (file path -> content), shaped like a real fleet's: one object
// per file, every workflow rendering a template with the hardware's disk.
func Fleet(nHW, nT int) map[string]string {
	files := make(map[string]string, nHW*2+nT)
	for t := 0; t < nT; t++ {
		files[fmt.Sprintf("templates/tmpl-%03d.yaml", t)] = fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Template
metadata:
  name: tmpl-%03d
spec:
  data: |
    version: "0.1"
    name: tmpl-%03d
    global_timeout: 3600
    tasks:
      - name: os-installation
        worker: "{{.device_1}}"
        volumes:
          - /dev:/dev
        actions:
          - name: stream-image
            image: quay.io/tinkerbell/actions/image2disk:v1.0.0
            timeout: 600
            environment:
              DEST_DISK: {{ index .Hardware.Disks 0 }}
              IMG_URL: http://10.0.0.2/image-%03d.raw.gz
              COMPRESSED: true
          - name: write-config
            image: quay.io/tinkerbell/actions/writefile:v1.0.0
            timeout: 90
            environment:
              DEST_DISK: {{ formatPartition (index .Hardware.Disks 0) 1 }}
              MODE: 0644
`, t, t, t)
	}
	for i := 0; i < nHW; i++ {
		files[fmt.Sprintf("hardware/node-%05d.yaml", i)] = Hardware(i, "")
		files[fmt.Sprintf("workflows/wf-%05d.yaml", i)] = fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Workflow
metadata:
  name: wf-%05d
spec:
  templateRef: tmpl-%03d
  hardwareRef: node-%05d
  hardwareMap:
    device_1: %s
  bootOptions:
    toggleAllowNetboot: true
    bootMode: netboot
`, i, i%nT, i, MAC(i))
	}
	return files
}

// MAC is hardware i's MAC address.
func MAC(i int) string {
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", (i>>24)&0xff, (i>>16)&0xff, (i>>8)&0xff, i&0xff)
}

// Hardware is hardware i; userData varies it between commits.
func Hardware(i int, userData string) string {
	s := fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: node-%05d
  labels:
    rack: r%d
spec:
  bmc:
    address: 10.250.%d.%d
    protocol: ipmi
    credentialsRef: bmc-%05d
  disks:
    - device: /dev/sda
  interfaces:
    - dhcp:
        arch: x86_64
        hostname: node-%05d
        mac: %s
        ip:
          address: 10.%d.%d.%d
          netmask: 255.255.0.0
          gateway: 10.0.0.1
        name_servers: [1.1.1.1]
        uefi: true
      netboot:
        allowPXE: true
        allowWorkflow: true
`, i, i%100, (i>>8)&0xff, i&0xff, i, i, MAC(i), (i>>16)&0xff, (i>>8)&0xff, i&0xff)
	if userData != "" {
		s += "  userData: " + userData + "\n"
	}
	return s
}

// Write writes files (path -> content, as Fleet returns) under dir.
func Write(dir string, files map[string]string) error {
	made := map[string]bool{}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if d := filepath.Dir(p); !made[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			made[d] = true
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
