package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("keel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.squashfs")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no args", []string{"mksquashfs"}, exitUsage},
		{"unknown flag", []string{"mksquashfs", "--nope", src, out}, exitUsage},
		{"bad compressor", []string{"mksquashfs", "--comp", "lz4", src, out}, exitUsage},
		{"bad level", []string{"mksquashfs", "--comp", "gzip", "--level", "12", src, out}, exitUsage},
		{"zstd level without an encoder of its own", []string{"mksquashfs", "--level", "15", src, out}, exitUsage},
		{"xz level other than its one", []string{"mksquashfs", "--comp", "xz", "--level", "9", src, out}, exitUsage},
		{"zstd best", []string{"mksquashfs", "--all-root", "--level", "11", src, out}, exitOK},
		{"missing source", []string{"mksquashfs", filepath.Join(dir, "nope"), out}, exitFailure},
		{"unknown command", []string{"frobnicate"}, exitUsage},
		{"ok", []string{"mksquashfs", "--all-root", src, out}, exitOK},
		{"version", []string{"version"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(out)
			if got := run(context.Background(), tt.args, io.Discard, io.Discard); got != tt.code {
				t.Fatalf("keel %v: exit %d, want %d", tt.args, got, tt.code)
			}
			_, err := os.Stat(out)
			if tt.code != exitOK && err == nil {
				t.Errorf("keel %v failed but left %s", tt.args, out)
			}
		})
	}
	// Nothing but the output may be left in the directory: no temp files.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "src" && e.Name() != "out.squashfs" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestMksquashfsReadable(t *testing.T) {
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		t.Skip("unsquashfs not installed: apt-get install squashfs-tools")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.squashfs")
	if code := run(context.Background(), []string{"mksquashfs", "--mtime", "0", "testdata", out}, io.Discard, io.Discard); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	b, err := exec.Command("unsquashfs", "-cat", out, "hello.txt").CombinedOutput()
	if err != nil || string(b) != "hello from keel\n" {
		t.Fatalf("unsquashfs -cat: %v: %q", err, b)
	}
}

// TestExitCodesDocumented holds README's exit-code line and keel's --help
// to the exitCodes table the code returns.
func TestExitCodesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &help, io.Discard); code != exitOK {
		t.Fatalf("keel --help: exit %d", code)
	}
	for _, c := range exitCodes {
		if want := fmt.Sprintf("**%d** %s", c.code, c.meaning); !strings.Contains(string(readme), want) {
			t.Errorf("README does not say %q", want)
		}
		if want := fmt.Sprintf("%d %s", c.code, c.meaning); !strings.Contains(help.String(), want) {
			t.Errorf("keel --help does not say %q:\n%s", want, help.String())
		}
	}
}
