package citest

import (
	"testing"
)

// recorder sees whether Missing failed or skipped.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.fatal = args[0].(string) }
func (r *recorder) Skip(args ...any)  { r.skip = args[0].(string) }

func TestMissingFailsUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recorder{}
	Missing(r, "haproxy not found")
	if r.fatal != "haproxy not found" || r.skip != "" {
		t.Fatalf("under CI=true a missing component must fail the test: fatal %q, skip %q", r.fatal, r.skip)
	}
}

func TestMissingSkipsElsewhere(t *testing.T) {
	t.Setenv("CI", "")
	r := &recorder{}
	Missing(r, "haproxy not found")
	if r.skip != "haproxy not found" || r.fatal != "" {
		t.Fatalf("off CI a missing component skips the test: fatal %q, skip %q", r.fatal, r.skip)
	}
}
