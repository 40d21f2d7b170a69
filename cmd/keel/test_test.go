package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestUsage: keel test refuses what it cannot run with exit 2 and a
// line that says why, before it builds or boots anything. (The runs
// themselves are qemu-tests' TestKeelTest.)
func TestTestUsage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if code := run(context.Background(), []string{"key", "generate", "--dir", dir, "k"}, new(bytes.Buffer), new(bytes.Buffer)); code != exitOK {
		t.Fatalf("key generate: %d", code)
	}
	bundle := write("b.keel", "KEELBNDL not really")
	disk := write("disk.img", strings.Repeat("\x00", 4096))
	plan := write("plan.yaml", "images: {a: a.yaml}\nboot: a\nsteps:\n  - install: b\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no arguments", []string{"test"}, "want FROM and TO (or --plan PLAN), got 0"},
		{"plan and arguments", []string{"test", "--plan", plan, "a", "b"}, "give FROM and TO, or --plan, not both"},
		{"unknown fault", []string{"test", "a.yaml", "b.yaml", "--fault", "meteor"}, "--fault: \"meteor\": want cut@install:N, cut@install:random, fail, hang, rollback"},
		{"bad cut", []string{"test", "a.yaml", "b.yaml", "--fault", "cut@install:-1"}, "want cut@install:N"},
		{"plan with --fault", []string{"test", "--plan", plan, "--fault", "hang"}, "a plan names its faults per step"},
		{"bad plan", []string{"test", "--plan", plan}, "plan.yaml:4: steps[0].install: \"b\" is not one of the images (a)"},
		{"missing plan", []string{"test", "--plan", filepath.Join(dir, "none.yaml")}, "no such file"},
		{"bad accel", []string{"test", "a.yaml", "b.yaml", "--accel", "fast"}, "--accel \"fast\""},
		{"bad key", []string{"test", "a.yaml", "b.yaml", "--sign-key", filepath.Join(dir, "k.pub")}, "k.pub"},
		{"profile to install without a key", []string{"test", disk, "b.yaml", "--dir", filepath.Join(dir, "out")}, "image TO (b.yaml) is installed: give --sign-key"},
		{"missing FROM", []string{"test", filepath.Join(dir, "nothing.img"), bundle}, "image FROM: open"},
		{"disk to install", []string{"test", disk, disk}, "image TO (" + disk + ") is installed: give a profile or an update bundle, not a disk image"},
		{"both missing: FROM named", []string{"test", filepath.Join(dir, "nothing.img"), filepath.Join(dir, "none.img")}, "image FROM: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), tc.args, new(bytes.Buffer), &stderr); code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q, want it to say %q", stderr.String(), tc.want)
			}
		})
	}
}
