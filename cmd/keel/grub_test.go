package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"keel/image/install"
)

// TestGRUBImage builds a boot.loader grub image twice (same bytes) and
// reads it with the real tools: sgdisk finds the GPT sound with the BIOS
// boot partition, the MBR carries boot code and its signature, fsck.fat
// finds the ESP clean, grub-editenv reads keel's grubenv, and keel inspect
// names the loader and slot a's blessed entry.
func TestGRUBImage(t *testing.T) {
	for _, f := range []string{"/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi", "/usr/lib/grub/i386-pc/boot.img"} {
		if _, err := os.Stat(f); err != nil {
			t.Skip("GRUB not installed: apt-get install grub-efi-amd64-bin grub-pc-bin")
		}
	}
	for _, tool := range []string{"sgdisk", "mcopy", "fsck.fat", "grub-editenv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (.ci/run installs it: gdisk, mtools, dosfstools, grub-common)", tool)
		}
	}
	dir, write := buildDir(t)
	keel := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if code := run(context.Background(), args, &out, &out); code != 0 {
			t.Fatalf("keel %s → %d\n%s", strings.Join(args, " "), code, out.String())
		}
		return out.String()
	}
	p := write("g.yaml", []byte("name: g\nversion: 1.0.0\nkernel: {file: vmlinuz, cmdline: console=ttyS0}\n"+
		"boot: {loader: grub}\ndisk: {esp: 34MiB, slot: 8MiB, data: 16MiB}\n"))
	var imgs [][]byte
	for i := range 2 {
		img := filepath.Join(dir, fmt.Sprintf("g%d.img", i))
		out := keel("build", p, "-o", img)
		if !strings.Contains(out, "grub, kernel") || !strings.Contains(out, "bios-boot") {
			t.Errorf("build summary does not show GRUB and its BIOS boot partition:\n%s", out)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, b)
	}
	if !bytes.Equal(imgs[0], imgs[1]) {
		t.Error("two builds of one GRUB profile differ")
	}
	img := filepath.Join(dir, "g0.img")
	out, err := exec.Command("sgdisk", "-v", "-p", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") || !strings.Contains(string(out), "EF02  bios-boot") {
		t.Errorf("sgdisk -v -p: %v\n%s", err, out)
	}
	mbr := imgs[0][:512]
	if bytes.Count(mbr[:440], []byte{0}) > 300 || mbr[510] != 0x55 || mbr[511] != 0xaa || mbr[450] != 0xee {
		t.Errorf("the MBR has no boot code, signature or protective partition: % x", mbr)
	}

	fd, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	l, err := install.ReadLayout(fd, int64(len(imgs[0])))
	if err != nil {
		t.Fatal(err)
	}
	esp, _ := l.Find("esp")
	espImg := write("esp.img", imgs[0][esp.Start:esp.Start+esp.Size])
	if out, err := exec.Command("fsck.fat", "-n", espImg).CombinedOutput(); err != nil {
		t.Errorf("fsck.fat -n: %v\n%s", err, out)
	}
	env := filepath.Join(dir, "grubenv")
	for src, dst := range map[string]string{"::/grub/grubenv": env, "::/grub/entry-a.cfg": filepath.Join(dir, "entry-a.cfg"), "::/EFI/BOOT/BOOTX64.EFI": filepath.Join(dir, "bootx64.efi")} {
		if out, err := exec.Command("mcopy", "-n", "-i", espImg, src, dst).CombinedOutput(); err != nil {
			t.Fatalf("mcopy %s: %v\n%s", src, err, out)
		}
	}
	out, err = exec.Command("grub-editenv", env, "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "a_OK=1\n") || !strings.Contains(string(out), "b_OK=0\n") {
		t.Errorf("grub-editenv list: %v\n%s", err, out)
	}
	if e, _ := os.ReadFile(filepath.Join(dir, "entry-a.cfg")); !strings.Contains(string(e), "set keel_a_linux='/keel/a/vmlinuz'") {
		t.Errorf("entry-a.cfg:\n%s", e)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bootx64.efi")); !bytes.HasPrefix(b, []byte("MZ")) {
		t.Error("EFI/BOOT/BOOTX64.EFI is not a PE image")
	}
	insp := keel("inspect", img)
	if !strings.Contains(insp, "boot loader: grub") || !strings.Contains(insp, "entry-a.cfg  a     1           good") {
		t.Errorf("keel inspect:\n%s", insp)
	}
}
