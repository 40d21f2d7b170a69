package main

import (
	"debug/elf"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestStaticBinary builds keel-init the way the Makefile does and checks
// that it needs nothing from the initrd: no program interpreter, no shared
// libraries. The initrd holds keel-init and kernel modules only.
func TestStaticBinary(t *testing.T) {
	bin, _ := buildTestBinaries(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("has a PT_INTERP program header: dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("imported libraries %v (%v), want none", libs, err)
	}

	// Outside PID 1 it refuses to run, but still answers --version.
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "keel-init "+testBinVersion {
		t.Errorf("--version: %q, %v", out, err)
	}
	out, err = exec.Command(bin).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "must run as PID 1") {
		t.Errorf("run as an ordinary process: %q, %v; want exit 2 and a message", out, err)
	}
}
