// Package tooltest runs the real tools the boot loaders' tests check
// their output with (mkimage, mkenvimage, fw_printenv, grub-mkimage,
// sgdisk, mtools...): .ci/run installs them; a test without one skips,
// naming it.
package tooltest

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// Need returns the tool's path, or skips the test when it is absent.
func Need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s: not installed (.ci/run installs it)", name)
	}
	return p
}

// Run runs the tool (a name or a path) with env added to the environment
// and returns its standard output, failing the test on an error.
func Run(t testing.TB, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(Need(t, name), args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, stderr.Bytes())
	}
	return out
}
