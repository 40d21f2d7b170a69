package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/bundle"
)

// TestUpdate builds v1 and v2 of a profile with keel build, applies v2's
// bundle to v1's disk with keel update, and checks the exit codes of the
// ways it can be refused.
func TestUpdate(t *testing.T) {
	dir, write := buildDir(t)
	pub, priv, _ := bundle.GenerateKey(rand.Reader)
	if err := bundle.WriteKeyPair(dir, "release", pub, priv); err != nil {
		t.Fatal(err)
	}
	opub, opriv, _ := bundle.GenerateKey(rand.Reader)
	if err := bundle.WriteKeyPair(dir, "other", opub, opriv); err != nil {
		t.Fatal(err)
	}
	keel := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(context.Background(), args, &out, &out)
		t.Logf("keel %s → %d\n%s", strings.Join(args, " "), code, out.String())
		return code, out.String()
	}
	for _, v := range []string{"1.0.0", "2.0.0", "0.9.0"} {
		p := write(v+".yaml", []byte(fmt.Sprintf("name: t\nversion: %s\nkernel: {file: vmlinuz}\ndisk: {esp: 34MiB, slot: 4MiB, data: 16MiB}\n", v)))
		if code, _ := keel("build", p, "-o", filepath.Join(dir, v+".img"), "--sign-key", filepath.Join(dir, "release.key")); code != 0 {
			t.Fatal("build failed")
		}
	}
	disk, v2, old := filepath.Join(dir, "1.0.0.img"), filepath.Join(dir, "t-2.0.0.keel"), filepath.Join(dir, "t-0.9.0.keel")
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"update", disk, v2}, exitUsage, "no --key"},
		{[]string{"update", disk, filepath.Join(dir, "none.keel"), "--key", filepath.Join(dir, "release.pub")}, exitUsage, "none.keel"},
		{[]string{"update", disk, v2, "--key", filepath.Join(dir, "other.pub")}, exitRefused, "untrusted key"},
		{[]string{"update", disk, old, "--key", filepath.Join(dir, "release.pub")}, exitRefused, "older than the running image"},
		{[]string{"update", disk, v2, "--key", filepath.Join(dir, "release.pub")}, exitOK, "installed t 2.0.0 into slot b of " + disk + ": entry keel-b+3.conf, generation 2"},
		{[]string{"update", disk, old, "--key", filepath.Join(dir, "release.pub"), "--allow-downgrade", "--tries", "1"}, exitOK, "installed t 0.9.0 into slot b of " + disk + ": entry keel-b+1.conf, generation 3"},
		{[]string{"inspect", disk}, exitOK, "keel-b+1.conf"},
		{[]string{"inspect", v2}, exitFailure, v2 + ": not a keel disk (no GPT)"},
	}
	for _, tt := range tests {
		code, out := keel(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.out) {
			t.Errorf("keel %v: exit %d, want %d; output does not contain %q", tt.args, code, tt.code, tt.out)
		}
	}
}
