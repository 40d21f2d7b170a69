package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBadProfiles checks that every kind of bad profile gives one line
// naming the file, the line and the field, the right exit code, and no
// output file.
func TestBadProfiles(t *testing.T) {
	dir, write := buildDir(t)
	big := make([]byte, 3<<20)
	rand.Read(big) // incompressible, so it cannot fit a 1 MiB slot
	write("big", big)
	write("bigkernel", make([]byte, 20<<20))
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)

	const head = "name: t\nversion: \"1\"\nkernel: {file: vmlinuz}\n"
	tests := []struct {
		name    string
		profile string
		code    int
		want    string // regexp the single error line must match
	}{
		{"unknown field", head + "nme: x\n", exitUsage, `p\.yaml:4:1: nme: unknown field`},
		{"wrong type", head + "disk: {esp: [1]}\n", exitUsage, `p\.yaml:4:\d+: disk\.esp: `},
		{"bad size", head + "disk: {slot: 12Q}\n", exitUsage, `p\.yaml:4:\d+: disk\.slot: .*12Q.*not a size`},
		{"missing kernel", "name: t\nversion: \"1\"\nkernel: {file: nope}\n", exitUsage, `p\.yaml:3:\d+: kernel\.file: .*nope.*no such file`},
		{"unreadable source", head + "sources:\n  - {file: /x, source: adir}\n", exitUsage, `p\.yaml:5:\d+: sources\[0\]\.source: .*adir`},
		{"slot too small", head + "sources:\n  - {file: /big, source: big}\ndisk: {slot: 1MiB}\n", exitUsage, `p\.yaml:\d+:\d+: disk\.slot: .*too small`},
		// Slot a's kernel fits, but an update could not write slot b's.
		{"ESP too small for two kernels", "name: t\nversion: \"1\"\nkernel: {file: bigkernel}\ndisk: {esp: 34MiB}\n", exitUsage, `p\.yaml:4:\d+: disk\.esp: an ESP of 34MiB holds slot a's boot files \(20\.\d MiB\) with \d+\.\d MiB free: an update needs as much again for slot b: raise disk\.esp`},
		// The profile is fine; fetching the image fails: a runtime failure
		// (exit 1), still at the field.
		{"missing OCI layout", head + "sources:\n  - image: oci:" + filepath.Join(dir, "nothing") + ":latest\n", exitUsage, `p\.yaml:5:\d+: sources\[0\].*nothing`},
		{"unknown OCI reference", head + "sources:\n  - image: docker://127.0.0.1:1/nothing:latest\n", exitFailure, `p\.yaml:5:\d+: sources\[0\].*127\.0\.0\.1:1/nothing`},
		{"OCI layout without index.json", head + "sources:\n  - image: oci:" + filepath.Join(dir, "adir") + ":latest\n", exitFailure, `p\.yaml:5:\d+: sources\[0\]: .*adir`},
		{"source writes /etc/keel", head + "sources:\n  - {file: /etc/keel/keys/x.pub, content: planted}\n", exitFailure, `p\.yaml:5:\d+: sources\[0\]: writes /etc/keel, which is keel's own`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write("p.yaml", []byte(tt.profile))
			out := filepath.Join(dir, "out", "disk.img")
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"build", p, "-o", out}, io.Discard, &stderr)
			msg := strings.TrimSpace(stderr.String())
			t.Log(msg)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, msg)
			}
			if strings.Count(msg, "\n") != 0 {
				t.Errorf("error is not one line:\n%s", msg)
			}
			if !regexp.MustCompile(tt.want).MatchString(msg) {
				t.Errorf("error %q does not match %q", msg, tt.want)
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
				t.Errorf("left behind in the output directory: %v", ents)
			}
		})
	}
}
