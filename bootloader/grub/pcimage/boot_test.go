package pcimage

import (
	"bytes"
	"context"
	"fmt"
	"keel/bootloader/internal/tooltest"
	"keel/image/qemu"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The boot disk of TestBootSeaBIOS (512-byte sectors): GPT with a 1 MiB
// BIOS boot partition and a 32 MiB FAT partition.
const (
	diskSectors   = 131072 // 64 MiB
	biosBootStart = 2048
	biosBootLen   = 2048
	fatStart      = 4096
	fatLen        = 65536
	fatVolumeID   = "1234ABCD" // mkfs.vfat -i; GRUB spells it 1234-ABCD
)

// embeddedCfg runs before normal.mod: the serial console first, so that
// anything that goes wrong after it shows on the test's output, then a
// search by file system UUID, as keel's own embedded configuration finds
// its boot partition.
const embeddedCfg = `serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set keel_embedded=yes
search --no-floppy --fs-uuid --set=keel_found 1234-ABCD
`

// grubCfg is read by normal.mod from $prefix ((,gpt2)/grub, the boot
// drive's second partition): a try counter in a FAT grubenv, counted
// down with test's -gt/-eq, written back with save_env and read again.
const grubCfg = `load_env -f ${prefix}/grubenv keel_tries
if [ "${keel_tries}" -gt 1 ]; then
  set keel_tries=1
elif [ "${keel_tries}" -eq 1 ]; then
  set keel_tries=0
fi
save_env -f ${prefix}/grubenv keel_tries
unset keel_tries
load_env -f ${prefix}/grubenv keel_tries
regexp --set=1:keel_disk '^(hd[0-9]+),gpt2$' "${keel_found}"
echo "KEEL-GRUB-OK tries=${keel_tries} embedded=${keel_embedded} found=${keel_found} disk=${keel_disk}"
halt
`

// grubenv is a GRUB environment block: 1024 bytes, padded with '#'
// (what grub-editenv writes).
func grubenv(vars string) []byte {
	b := []byte("# GRUB Environment Block\n" + vars)
	return append(b, bytes.Repeat([]byte("#"), 1024-len(b))...)
}

// TestBootSeaBIOS boots a GPT disk made with CoreImage and Embed under
// QEMU's default firmware, SeaBIOS, on an AHCI and on a virtio-blk disk
// (and once with a sector of the embedded core zeroed), and reads GRUB's own report from the serial console: the embedded
// configuration ran, search --fs-uuid found the FAT partition,
// normal.mod read grub.cfg from the prefix, and loadenv read and wrote
// grubenv on FAT (checked again from the host with mtools).
func TestBootSeaBIOS(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; skipped with -short")
	}
	files := grubFiles(t)
	if err := qemu.Available(); err != nil {
		t.Skipf("QEMU: %v", err)
	}
	sgdisk := tooltest.Need(t, "sgdisk")
	mkfs := tooltest.Need(t, "mkfs.vfat")
	mcopy := tooltest.Need(t, "mcopy")
	mmd := tooltest.Need(t, "mmd")
	mtype := tooltest.Need(t, "mtype")

	core, err := CoreImage(files, keelModules, "(,gpt2)/grub", []byte(embeddedCfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("core.img: %d bytes, %d sectors; modules %v", len(core), (len(core)+511)/512, keelModules)

	tests := []struct {
		name, drive string
		damage      bool // zero a sector in the middle of the embedded core
	}{
		{"ahci", "ide", false},
		{"virtio", "virtio", false},
		// The Reed-Solomon codes Embed writes after the core repair it:
		// lzma_decompress.img decodes them before inflating the kernel.
		{"ahci damaged core", "ide", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			disk := filepath.Join(dir, "disk.img")
			if err := os.WriteFile(disk, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(disk, diskSectors*512); err != nil {
				t.Fatal(err)
			}
			tooltest.Run(t, nil, sgdisk, "-o",
				"-n", fmt.Sprintf("1:%d:%d", biosBootStart, biosBootStart+biosBootLen-1), "-t", "1:EF02", "-c", "1:BIOS boot",
				"-n", fmt.Sprintf("2:%d:%d", fatStart, fatStart+fatLen-1), "-t", "2:EF00", "-c", "2:boot",
				disk)

			fat := filepath.Join(dir, "fat.img")
			tooltest.Run(t, nil, mkfs, "-i", fatVolumeID, "-n", "KEELBOOT", "-C", fat, fmt.Sprint(fatLen/2))
			for name, data := range map[string][]byte{"grub.cfg": []byte(grubCfg), "grubenv": grubenv("keel_tries=2\n")} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tooltest.Run(t, nil, mmd, "-i", fat, "::/grub")
			tooltest.Run(t, nil, mcopy, "-i", fat, filepath.Join(dir, "grub.cfg"), filepath.Join(dir, "grubenv"), "::/grub/")
			fatData, err := os.ReadFile(fat)
			if err != nil {
				t.Fatal(err)
			}

			f, err := os.OpenFile(disk, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(fatData, fatStart*512); err != nil {
				t.Fatal(err)
			}
			if err := Embed(f, files, core, biosBootStart, biosBootLen); err != nil {
				t.Fatal(err)
			}
			if tc.damage {
				sector := int64(biosBootStart + (len(core)/512)/2)
				if _, err := f.WriteAt(make([]byte, 512), sector*512); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			// The GPT (and its protective MBR) survive Embed.
			if out := tooltest.Run(t, nil, sgdisk, "-v", disk); !bytes.Contains(out, []byte("No problems found")) {
				t.Fatalf("sgdisk -v after Embed:\n%s", out)
			}

			out := bootQEMU(t, disk, tc.drive)
			const want = "KEEL-GRUB-OK tries=1 embedded=yes found=hd0,gpt2 disk=hd0"
			if !strings.Contains(out, want) {
				t.Fatalf("serial console has no %q:\n%s", want, out)
			}
			// A command from a module not embedded, or one that fails,
			// prints "error: ..." and the script carries on.
			if strings.Contains(out, "error:") {
				t.Errorf("GRUB reported an error:\n%s", out)
			}
			t.Logf("serial console:\n%s", out)

			env := tooltest.Run(t, nil, mtype, "-i", disk+fmt.Sprintf("@@%d", fatStart*512), "::/grub/grubenv")
			if !bytes.Contains(env, []byte("\nkeel_tries=1\n")) || len(env) != 1024 {
				t.Errorf("grubenv on the disk after boot (%d bytes):\n%s", len(env), env)
			}
		})
	}
}

// bootQEMU boots disk by SeaBIOS (image/qemu with BIOS set; the drive on
// drive's interface, ide or virtio) and returns the serial console once
// QEMU has powered off (GRUB's halt). It fails the test when the machine
// does not power off in time.
func bootQEMU(t *testing.T, disk, drive string) string {
	t.Helper()
	start := time.Now()
	// Generous: TCG on a loaded 2-core machine. A boot takes seconds.
	vm, err := qemu.Start(context.Background(), qemu.Config{
		BIOS: true, Accel: "tcg", MemoryMiB: 256, Timeout: 4 * time.Minute,
		ExtraArgs: []string{"-drive", "if=" + drive + ",format=raw,file=" + disk},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = vm.Wait()
	out := vm.Log()
	t.Logf("QEMU (%s disk) ran %.1fs", drive, time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("QEMU: %v; serial console:\n%s", err, out)
	}
	return out
}
