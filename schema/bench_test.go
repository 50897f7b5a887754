package schema_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tinkops/tinkops/schema"
)

// writeFleet writes a repository of nHW hardware, nT templates and nWF
// workflows (one per hardware), shaped like a real fleet's files.
func writeFleet(tb testing.TB, dir string, nHW, nT int) {
	tb.Helper()
	for _, d := range []string{"hardware", "templates", "workflows"} {
		require.NoError(tb, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	for t := 0; t < nT; t++ {
		tmpl := fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
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
		require.NoError(tb, os.WriteFile(filepath.Join(dir, "templates", fmt.Sprintf("tmpl-%03d.yaml", t)), []byte(tmpl), 0o644))
	}
	for i := 0; i < nHW; i++ {
		mac := fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", (i>>24)&0xff, (i>>16)&0xff, (i>>8)&0xff, i&0xff)
		ip := fmt.Sprintf("10.%d.%d.%d", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
		hw := fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
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
          address: %s
          netmask: 255.255.0.0
          gateway: 10.0.0.1
        name_servers: [1.1.1.1]
        uefi: true
      netboot:
        allowPXE: true
        allowWorkflow: true
`, i, i%100, (i>>8)&0xff, i&0xff, i, i, mac, ip)
		require.NoError(tb, os.WriteFile(filepath.Join(dir, "hardware", fmt.Sprintf("node-%05d.yaml", i)), []byte(hw), 0o644))
		wf := fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
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
`, i, i%nT, i, mac)
		require.NoError(tb, os.WriteFile(filepath.Join(dir, "workflows", fmt.Sprintf("wf-%05d.yaml", i)), []byte(wf), 0o644))
	}
}

// BenchmarkLoadFleet times schema.Load (validation and rendering included)
// on 10,000 hardware, 100 templates and 10,000 workflows: 20,100 objects.
func BenchmarkLoadFleet(b *testing.B) {
	dir := b.TempDir()
	writeFleet(b, dir, 10_000, 100)
	fsys := os.DirFS(dir)
	l := schema.NewLoader()
	// Warm the definitions and the file cache so the figure is Load itself.
	_, err := l.Load(context.Background(), os.DirFS(b.TempDir()))
	require.NoError(b, err)
	old := debug.SetGCPercent(gcPercent())
	defer debug.SetGCPercent(old)
	b.ResetTimer()
	var peak uint64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := sampleHeap(&peak)
		start := time.Now()
		set, err := l.Load(context.Background(), fsys)
		elapsed := time.Since(start)
		stop()
		require.NoError(b, err)
		require.Equal(b, 20_100, set.Len())
		b.ReportMetric(float64(set.Len())/elapsed.Seconds(), "objects/s")
		b.ReportMetric(elapsed.Seconds(), "s/load")
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// sampleHeap records the largest heap in use until stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > *peak {
					*peak = ms.HeapInuse
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// gcPercent is the GC setting of the benchmark: tink validate and
// tink-server load with GOGC=400 (see cmd/), BENCH_GOGC overrides it.
func gcPercent() int {
	if v, err := strconv.Atoi(os.Getenv("BENCH_GOGC")); err == nil {
		return v
	}
	return 400
}
