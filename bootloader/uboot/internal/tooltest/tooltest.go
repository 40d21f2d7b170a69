// Package tooltest runs the real U-Boot tools the uboot packages' tests
// check their output with: mkimage and dumpimage and mkenvimage from
// u-boot-tools; fw_printenv and fw_setenv, on Debian, from
// libubootenv-tool (libubootenv, which reads and writes the same format as
// fw_env.c).
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
		t.Skipf("%s: not installed", name)
	}
	return p
}

// Run runs the tool with env added to the environment and returns its
// standard output, failing the test on an error.
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
