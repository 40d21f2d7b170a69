package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// buildDir prepares what a `keel build` test needs without a real kernel:
// a temporary directory holding a fake vmlinuz, and fake keel-init and
// keelctl binaries named by $KEEL_INIT and $KEEL_CTL. It skips when the
// host has no systemd-boot to install. write adds a file to the directory
// and returns its path.
func buildDir(t *testing.T) (dir string, write func(name string, b []byte) string) {
	t.Helper()
	if _, err := os.Stat("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"); err != nil {
		t.Skip("systemd-boot not installed: apt-get install systemd-boot-efi")
	}
	dir = t.TempDir()
	write = func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Builds keep their images in the cache: this test's own.
	t.Setenv("KEEL_CACHE", filepath.Join(dir, "cache"))
	write("vmlinuz", []byte("not really a kernel"))
	t.Setenv("KEEL_INIT", write("keel-init", fakeELF(elf.EM_X86_64, "not really")))
	t.Setenv("KEEL_CTL", write("keelctl", fakeELF(elf.EM_X86_64, "not really either")))
	return dir, write
}

// fakeELF is an ELF header for machine and nothing else that runs: enough
// for keel's check that a helper binary is for the image's architecture.
func fakeELF(machine elf.Machine, rest string) []byte {
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT), Ehsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, h)
	return append(b.Bytes(), rest...)
}

// TestHelperBinaryArch: each architecture takes its helper from its own
// variable, and a binary for another machine is refused.
func TestHelperBinaryArch(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	amd, arm := fakeELF(elf.EM_X86_64, "amd64"), fakeELF(elf.EM_AARCH64, "arm64")
	for _, c := range []struct {
		name            string
		initEnv, armEnv []byte
		arch            string
		want            []byte
		wantErr         string
	}{
		{"x86_64 from KEEL_INIT", amd, arm, "x86_64", amd, ""},
		{"aarch64 from KEEL_INIT_ARM64", amd, arm, "aarch64", arm, ""},
		{"arm64 binary for x86_64", arm, arm, "x86_64", nil, "keel-init ($KEEL_INIT) for x86_64: built for EM_AARCH64, want EM_X86_64"},
		{"amd64 binary for aarch64", amd, amd, "aarch64", nil, "keel-init-arm64 ($KEEL_INIT_ARM64) for aarch64: built for EM_X86_64, want EM_AARCH64"},
		{"not ELF", []byte("#!/bin/sh\n"), arm, "x86_64", nil, "keel-init ($KEEL_INIT) for x86_64: not an ELF executable"},
		{"unknown arch", amd, arm, "riscv64", nil, `keel-init: no build for architecture "riscv64"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("KEEL_INIT", write("init", c.initEnv))
			t.Setenv("KEEL_INIT_ARM64", write("init-arm64", c.armEnv))
			b, err := keelInit(t.Context(), c.arch)
			if c.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, c.want) {
				t.Errorf("got %q, want %q", b, c.want)
			}
		})
	}
}
