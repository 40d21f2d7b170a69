package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// testBinVersion is stamped into the keel-init the tests build.
const testBinVersion = "test-1"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  string
)

// buildTestBinaries builds keel-init as the Makefile does (static,
// trimmed, version stamped) and the stand-in service testdata/svc, once
// per test run, and returns their paths.
func buildTestBinaries(t *testing.T) (keelInit, svc string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries: skipped in -short mode")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go: not installed")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keel-init-test-")
		if err != nil {
			buildErr = err.Error()
			return
		}
		buildDir = dir
		for _, b := range [][]string{
			{"-ldflags", "-s -w -X main.version=" + testBinVersion, "-o", filepath.Join(dir, "keel-init"), "."},
			{"-o", filepath.Join(dir, "svc"), "./testdata/svc"},
		} {
			cmd := exec.Command(gobin, append([]string{"build", "-trimpath"}, b...)...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = cmd.String() + ": " + err.Error() + "\n" + string(out)
				return
			}
		}
	})
	if buildErr != "" {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "keel-init"), filepath.Join(buildDir, "svc")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
