package pcimage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	qemu := needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	sgdisk := needTool(t, "sgdisk", "gdisk")
	mkfs := needTool(t, "mkfs.vfat", "dosfstools")
	mcopy := needTool(t, "mcopy", "mtools")
	mmd := needTool(t, "mmd", "mtools")
	mtype := needTool(t, "mtype", "mtools")

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
			run(t, sgdisk, "-o",
				"-n", fmt.Sprintf("1:%d:%d", biosBootStart, biosBootStart+biosBootLen-1), "-t", "1:EF02", "-c", "1:BIOS boot",
				"-n", fmt.Sprintf("2:%d:%d", fatStart, fatStart+fatLen-1), "-t", "2:EF00", "-c", "2:boot",
				disk)

			fat := filepath.Join(dir, "fat.img")
			run(t, mkfs, "-i", fatVolumeID, "-n", "KEELBOOT", "-C", fat, fmt.Sprint(fatLen/2))
			for name, data := range map[string][]byte{"grub.cfg": []byte(grubCfg), "grubenv": grubenv("keel_tries=2\n")} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run(t, mmd, "-i", fat, "::/grub")
			run(t, mcopy, "-i", fat, filepath.Join(dir, "grub.cfg"), filepath.Join(dir, "grubenv"), "::/grub/")
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
			if out := run(t, sgdisk, "-v", disk); !bytes.Contains(out, []byte("No problems found")) {
				t.Fatalf("sgdisk -v after Embed:\n%s", out)
			}

			out := bootQEMU(t, qemu, disk, tc.drive)
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

			env := run(t, mtype, "-i", disk+fmt.Sprintf("@@%d", fatStart*512), "::/grub/grubenv")
			if !bytes.Contains(env, []byte("\nkeel_tries=1\n")) || len(env) != 1024 {
				t.Errorf("grubenv on the disk after boot (%d bytes):\n%s", len(env), env)
			}
		})
	}
}

// bootQEMU boots disk and returns the serial console once QEMU has
// powered off (GRUB's halt). It fails the test when GRUB does not print
// its marker in time or the machine does not power off after it.
func bootQEMU(t *testing.T, qemu, disk, drive string) string {
	t.Helper()
	// Generous: TCG on a loaded 2-core machine. A boot takes seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "q35", "-accel", "tcg", "-m", "256",
		"-display", "none", "-serial", "stdio", "-monitor", "none",
		"-no-reboot", "-nic", "none",
		"-drive", "if="+drive+",format=raw,file="+disk)
	var console lockedBuffer
	cmd.Stdout = &console
	cmd.Stderr = &console
	start := time.Now()
	err := cmd.Run()
	out := console.String()
	t.Logf("QEMU (%s disk) ran %.1fs", drive, time.Since(start).Seconds())
	if ctx.Err() != nil {
		t.Fatalf("QEMU did not power off within 4 minutes; serial console:\n%s", out)
	}
	if err != nil {
		t.Fatalf("QEMU: %v\n%s", err, out)
	}
	return out
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
