package script_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"keel/bootloader/internal/tooltest"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"keel/bootloader/uboot/script"
	"keel/bootloader/uboot/ubootenv"
)

// The probe: can Debian's U-Boot for QEMU arm64 (u-boot-qemu) keep an A/B
// try counter in a file on a FAT partition? Distro boot must find our
// boot.scr by itself, the script must import the environment file written
// by ubootenv.Marshal, decrement a counter, export and fatwrite it back, and
// the next boot must see the new value. The file U-Boot writes must be what
// ubootenv.Marshal writes for the same variables, byte for byte.

const (
	uBootQEMUArm64 = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
	envSize        = 0x4000
)

// console collects a VM's serial output and when each marker first showed.
type console struct {
	mu      sync.Mutex
	start   time.Time
	buf     bytes.Buffer
	markers []string
	seen    map[string]time.Duration
	stopAt  string
	stopped chan struct{} // closed when stopAt shows
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	for _, m := range c.markers {
		if _, ok := c.seen[m]; !ok && bytes.Contains(c.buf.Bytes(), []byte(m)) {
			c.seen[m] = time.Since(c.start)
		}
	}
	if c.stopAt != "" && bytes.Contains(c.buf.Bytes(), []byte(c.stopAt)) {
		c.stopAt = ""
		close(c.stopped)
	}
	return len(p), nil
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.ReplaceAll(c.buf.String(), "\r", "")
}

// bootVM boots disk under TCG until the guest powers off (a script ending
// with poweroff; a kernel that panics with panic=-1 resets, which
// -no-reboot turns into an exit) or, when stopAt is not empty, until the
// console shows stopAt, and returns the console.
func bootVM(t *testing.T, disk string, timeout time.Duration, stopAt string, markers ...string) *console {
	t.Helper()
	c := &console{markers: markers, seen: map[string]time.Duration{}, stopAt: stopAt, stopped: make(chan struct{})}
	cmd := exec.Command(tooltest.Need(t, "qemu-system-aarch64"),
		"-M", "virt", "-cpu", "cortex-a57", "-m", "512", "-accel", "tcg",
		"-bios", uBootQEMUArm64, "-nographic", "-no-reboot", "-nic", "none",
		"-drive", "if=virtio,format=raw,file="+strings.ReplaceAll(disk, ",", ",,")) // ",," is QEMU's escaped comma
	cmd.Stdout, cmd.Stderr = c, c
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v:\n%s", cmd, err, c)
		}
		if stopAt != "" {
			t.Fatalf("%s: exited before %q:\n%s", cmd, stopAt, c)
		}
	case <-c.stopped:
		cmd.Process.Kill()
		<-done
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s: no poweroff within %v:\n%s", cmd, timeout, c)
	}
	for _, m := range markers {
		if d, ok := c.seen[m]; ok {
			t.Logf("%-45q at %v", m, d.Round(time.Millisecond))
		}
	}
	t.Logf("VM ran %v", time.Since(c.start).Round(time.Millisecond))
	return c
}

// partition is one GPT partition of a probe disk: FAT holding files, or,
// when files is nil, left empty (no file system).
type partition struct {
	mib      int
	typ      string // sgdisk type code; "" is 8300, Linux data
	bootable bool   // GPT attribute 2, legacy BIOS bootable
	files    map[string][]byte
}

// offset is where partition i starts, in bytes: the first at 1 MiB, the
// others each after the previous one.
func offset(parts []partition, i int) int64 {
	off := int64(1 << 20)
	for _, p := range parts[:i] {
		off += int64(p.mib) << 20
	}
	return off
}

// makeDisk writes a GPT disk with parts (sgdisk, mkfs.vfat, mtools), 1 MiB
// left at the end for the backup GPT.
func makeDisk(t *testing.T, dir string, parts ...partition) string {
	t.Helper()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, offset(parts, len(parts))+1<<20); err != nil {
		t.Fatal(err)
	}
	var args []string
	for i, p := range parts {
		n := i + 1
		args = append(args, "-n", fmt.Sprintf("%d:%d:+%d", n, offset(parts, i)/512, p.mib<<11), "-c", fmt.Sprintf("%d:p%d", n, n))
		if p.typ != "" {
			args = append(args, "-t", fmt.Sprintf("%d:%s", n, p.typ))
		}
		if p.bootable {
			args = append(args, "-A", fmt.Sprintf("%d:set:2", n))
		}
	}
	tooltest.Run(t, nil, "sgdisk", append(args, disk)...)
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, p := range parts {
		if p.files == nil {
			continue
		}
		img := filepath.Join(dir, "part.img")
		os.Remove(img)
		tooltest.Run(t, nil, "mkfs.vfat", "-C", img, fmt.Sprint(p.mib<<10))
		for _, name := range slices.Sorted(maps.Keys(p.files)) {
			local := filepath.Join(dir, "file")
			if err := os.WriteFile(local, p.files[name], 0o644); err != nil {
				t.Fatal(err)
			}
			if d := filepath.Dir(name); d != "/" {
				tooltest.Run(t, nil, "mmd", "-D", "s", "-i", img, "::"+d) // -D s: skip if it exists
			}
			tooltest.Run(t, nil, "mcopy", "-i", img, local, "::"+name)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, offset(parts, i)); err != nil {
			t.Fatal(err)
		}
	}
	return disk
}

// readPart copies partition i out of disk, checks its FAT with fsck.vfat -n
// and reads name from it with mcopy.
func readPart(t *testing.T, disk string, parts []partition, i int, name string) []byte {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "part.img")
	if err := os.WriteFile(img, b[offset(parts, i):offset(parts, i+1)], 0o644); err != nil {
		t.Fatal(err)
	}
	tooltest.Run(t, nil, "fsck.vfat", "-n", img)
	out := filepath.Join(dir, "out")
	tooltest.Run(t, nil, "mcopy", "-i", img, "::"+name, out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// probeScript is the boot.scr of the probe. U-Boot loads it at
// ${scriptaddr}, which is ${loadaddr} here, but `source` runs a copy
// (run_command_list copies when given a length), so loading the
// environment file over it is safe.
var probeScript = `echo KEEL: script start
echo KEEL: loadaddr=${loadaddr} scriptaddr=${scriptaddr} kernel_addr_r=${kernel_addr_r} ramdisk_addr_r=${ramdisk_addr_r} fdt_addr=${fdt_addr} fdt_addr_r=${fdt_addr_r} fdtcontroladdr=${fdtcontroladdr}
echo KEEL: devtype=${devtype} devnum=${devnum} distro_bootpart=${distro_bootpart} prefix=${prefix} script=${script}
if load virtio 0:1 ${loadaddr} /keel/uboot.env; then echo KEEL: load ok filesize=${filesize}; else echo KEEL: load failed; fi
if env import -c ${loadaddr} ${filesize}; then echo KEEL: import ok; else echo KEEL: import failed; fi
echo KEEL: before BOOT_a_LEFT=${BOOT_a_LEFT}
if test ${BOOT_a_LEFT} -gt 0; then setexpr BOOT_a_LEFT ${BOOT_a_LEFT} - 1; fi
echo KEEL: after BOOT_a_LEFT=${BOOT_a_LEFT}
env export -c -s 0x4000 ${loadaddr} BOOT_ORDER BOOT_a_LEFT BOOT_b_LEFT keel_note
echo KEEL: export -s 0x4000 filesize=${filesize}
if fatwrite virtio 0:1 ${loadaddr} /keel/uboot.env 0x4000; then echo KEEL: fatwrite ok; else echo KEEL: fatwrite failed; fi
env export -c ${kernel_addr_r} BOOT_a_LEFT
echo KEEL: export without -s filesize=${filesize}
setexpr hex 0x10 - 1
echo KEEL: setexpr 0x10 - 1 = ${hex}
help booti
echo KEEL: script end
poweroff
`

func TestProbeUBootCounterInFAT(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: boots U-Boot in QEMU")
	}
	tooltest.Need(t, "qemu-system-aarch64")
	for _, tool := range []string{"sgdisk", "mkfs.vfat", "mcopy", "mmd", "fsck.vfat"} {
		tooltest.Need(t, tool)
	}
	if _, err := os.Stat(uBootQEMUArm64); err != nil {
		t.Skipf("%s: not installed (u-boot-qemu)", uBootQEMUArm64)
	}
	scr, err := script.Compile([]byte(probeScript), "keel probe", "arm64", 0)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"BOOT_ORDER":  "a b",
		"BOOT_a_LEFT": "3",
		"BOOT_b_LEFT": "0",
		// hexport_r escapes backslashes even in binary exports and himport_r
		// unescapes them; U-Boot's bytes must still equal Marshal's.
		"keel_note": `back\slash;semi colon`,
	}
	envFile, err := (&ubootenv.Env{Vars: vars}).Marshal(envSize)
	if err != nil {
		t.Fatal(err)
	}
	parts := []partition{{mib: 62, typ: "ef00", files: map[string][]byte{"/boot.scr": scr, "/keel/uboot.env": envFile}}}
	disk := makeDisk(t, t.TempDir(), parts...)

	for boot, want := range []string{"2", "1"} {
		t.Run(fmt.Sprintf("boot %d", boot+1), func(t *testing.T) {
			c := bootVM(t, disk, 5*time.Minute, "", "U-Boot 20", "Hit any key to stop autoboot", "Found U-Boot script /boot.scr", "KEEL: script start", "KEEL: script end")
			out := c.String()
			t.Logf("console from the script on:\n%s", out[strings.Index(out, "Found U-Boot script"):])
			for _, line := range []string{
				// Debian's qemu_arm64 defaults; QEMU puts its DTB at fdt_addr,
				// U-Boot uses its relocated copy at fdtcontroladdr.
				"KEEL: loadaddr=0x40200000 scriptaddr=0x40200000 kernel_addr_r=0x40400000 ramdisk_addr_r=0x44000000 fdt_addr=0x40000000 fdt_addr_r= fdtcontroladdr=5edb6db0",
				"KEEL: devtype=virtio devnum=0 distro_bootpart=1 prefix=/ script=boot.scr",
				"KEEL: load ok filesize=4000",
				"KEEL: import ok",
				fmt.Sprintf("KEEL: before BOOT_a_LEFT=%d", 3-boot),
				"KEEL: after BOOT_a_LEFT=" + want,
				"KEEL: fatwrite ok",
				// filesize after env export -c is ENV_SIZE+4 (0x40000 here)
				// with or without -s: -s only sets the CRC's extent.
				"KEEL: export -s 0x4000 filesize=40000",
				"KEEL: export without -s filesize=40000",
				// setexpr reads and writes hex: counters above 9 read as hex.
				"KEEL: setexpr 0x10 - 1 = f",
				"booti - boot Linux kernel 'Image' format from memory",
				"KEEL: script end",
			} {
				if !strings.Contains(out, line+"\n") {
					t.Errorf("console lacks %q", line)
				}
			}
			got := readPart(t, disk, parts, 0, "/keel/uboot.env")
			env, err := ubootenv.Parse(got, envSize, false)
			if err != nil {
				t.Fatalf("reading back U-Boot's file (%d bytes): %v", len(got), err)
			}
			vars["BOOT_a_LEFT"] = want
			if !maps.Equal(env.Vars, vars) {
				t.Errorf("U-Boot wrote %q, want %q", env.Vars, vars)
			}
			if m, _ := (&ubootenv.Env{Vars: vars}).Marshal(envSize); !bytes.Equal(got, m) {
				t.Errorf("U-Boot's env export -c differs from Marshal at byte %d", firstDiff(got, m))
			}
		})
	}
}

// Which partitions and names distro boot scans: boot_targets (qfw usb0
// scsi0 virtio0 nvme0 dhcp), then for virtio0 the partitions that
// `part list -bootable` lists (on GPT: the ESP type, or attribute 2, legacy
// BIOS bootable; on MBR type 0xef or the boot flag) or partition 1 when none
// is, then prefixes / and /boot/, names boot.scr.uimg and boot.scr.
func TestProbeDistroBootScan(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: boots U-Boot in QEMU")
	}
	tooltest.Need(t, "qemu-system-aarch64")
	for _, tool := range []string{"sgdisk", "mkfs.vfat", "mcopy", "mmd"} {
		tooltest.Need(t, tool)
	}
	if _, err := os.Stat(uBootQEMUArm64); err != nil {
		t.Skipf("%s: not installed (u-boot-qemu)", uBootQEMUArm64)
	}
	scr, err := script.Compile([]byte("echo KEEL: found on ${devtype} ${devnum}:${distro_bootpart} as ${prefix}${script}\npoweroff\n"), "scan", "arm64", 0)
	if err != nil {
		t.Fatal(err)
	}
	esp := func(files map[string][]byte) partition { return partition{mib: 30, typ: "ef00", files: files} }
	bootScr := map[string][]byte{"/boot.scr": scr}
	for _, c := range []struct {
		name  string
		parts []partition
		want  string // "" when distro boot must not find the script
	}{
		{"/boot/boot.scr on partition 1", []partition{esp(map[string][]byte{"/boot/boot.scr": scr})}, "KEEL: found on virtio 0:1 as /boot/boot.scr"},
		{"/boot.scr.uimg on partition 1", []partition{esp(map[string][]byte{"/boot.scr.uimg": scr})}, "KEEL: found on virtio 0:1 as /boot.scr.uimg"},
		{"Linux type on partition 1", []partition{{mib: 30, files: bootScr}}, "KEEL: found on virtio 0:1 as /boot.scr"},
		{"ESP type on partition 2", []partition{{mib: 8}, esp(bootScr)}, "KEEL: found on virtio 0:2 as /boot.scr"},
		{"Linux type on partition 2 with legacy BIOS bootable", []partition{{mib: 8}, {mib: 30, bootable: true, files: bootScr}}, "KEEL: found on virtio 0:2 as /boot.scr"},
		{"Linux type on partition 2 without attribute", []partition{{mib: 8}, {mib: 30, files: bootScr}}, ""},
		{"empty ESP on partition 1, Linux type on 2", []partition{esp(map[string][]byte{}), {mib: 30, files: bootScr}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			disk := makeDisk(t, t.TempDir(), c.parts...)
			stopAt := ""
			if c.want == "" {
				stopAt = "=> " // distro boot gave up: U-Boot's prompt
			}
			out := bootVM(t, disk, 5*time.Minute, stopAt, "Found U-Boot script").String()
			if c.want != "" && !strings.Contains(out, c.want+"\n") {
				t.Errorf("console lacks %q:\n%s", c.want, out)
			}
			if c.want == "" && strings.Contains(out, "KEEL: found") {
				t.Errorf("distro boot found the script:\n%s", out)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// KernelEnv names a Debian arm64 kernel (the vmlinuz of linux-image-*-arm64,
// an uncompressed Image) for TestProbeBootiDebianKernel, which then boots
// it with booti, as it is and gzipped, with a small initrd.
const KernelEnv = "KEEL_UBOOT_ARM64_KERNEL"

// Booting a Debian arm64 kernel from a U-Boot script: it must reach the
// kernel's first messages on ttyAMA0, take the initrd, and (virtio_blk being
// a module, no root given) panic, which panic=-1 and -no-reboot turn into
// QEMU's exit.
func TestProbeBootiDebianKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: boots U-Boot and Linux in QEMU")
	}
	kernelPath := os.Getenv(KernelEnv)
	if kernelPath == "" {
		t.Skipf("%s: not set (the vmlinuz of a Debian linux-image-*-arm64)", KernelEnv)
	}
	tooltest.Need(t, "qemu-system-aarch64")
	for _, tool := range []string{"sgdisk", "mkfs.vfat", "mcopy", "mmd", "fsck.vfat", "cpio"} {
		tooltest.Need(t, tool)
	}
	if _, err := os.Stat(uBootQEMUArm64); err != nil {
		t.Skipf("%s: not installed (u-boot-qemu)", uBootQEMUArm64)
	}
	kernel, err := os.ReadFile(kernelPath)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(kernel); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	// An initrd of one file and no /init: the kernel unpacks it, then
	// looks for a root device.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("keel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cpio := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	cpio.Dir, cpio.Stdin = dir, strings.NewReader("hello\n")
	initrd, err := cpio.Output()
	if err != nil {
		t.Fatalf("%s: %v", cpio, err)
	}

	const common = `echo KEEL: script start
setenv bootargs console=ttyAMA0 panic=-1
load virtio 0:1 ${ramdisk_addr_r} /initrd.cpio
setenv initrd_size ${filesize}
`
	const boot = `booti ${kernel_addr_r} ${ramdisk_addr_r}:${initrd_size} ${fdtcontroladdr}
echo KEEL: booti failed
poweroff
`
	for _, c := range []struct {
		name, kernel string
		data         []byte
		script       string
	}{
		{"Image", "/vmlinuz", kernel, common + "load virtio 0:1 ${kernel_addr_r} /vmlinuz\n" + boot},
		// booti decompresses to kernel_comp_addr_r, then moves the Image to
		// kernel_addr_r; kernel_comp_size is the compressed size.
		{"gzip Image", "/vmlinuz.gz", gz.Bytes(), common + "load virtio 0:1 ${kernel_addr_r} /vmlinuz.gz\nsetenv kernel_comp_addr_r 0x48000000\nsetenv kernel_comp_size ${filesize}\n" + boot},
	} {
		t.Run(c.name, func(t *testing.T) {
			scr, err := script.Compile([]byte(c.script), "keel booti", "arm64", 0)
			if err != nil {
				t.Fatal(err)
			}
			disk := makeDisk(t, t.TempDir(), partition{mib: 126, typ: "ef00", files: map[string][]byte{"/boot.scr": scr, c.kernel: c.data, "/initrd.cpio": initrd}})
			con := bootVM(t, disk, 10*time.Minute, "", "KEEL: script start", "Starting kernel", "Booting Linux on physical CPU", "Linux version",
				"Trying to unpack rootfs image as initramfs", "Kernel panic")
			out := con.String()
			t.Logf("console from the script on (cut):\n%s", cut(out[strings.Index(out, "Found U-Boot script"):], 4000))
			for _, want := range []string{"Starting kernel", "Booting Linux on physical CPU 0x0000000000", "Kernel command line: console=ttyAMA0 panic=-1", "Trying to unpack rootfs image as initramfs", "Kernel panic"} {
				if !strings.Contains(out, want) {
					t.Errorf("console lacks %q", want)
				}
			}
			if strings.Contains(out, "KEEL: booti failed") {
				t.Error("booti returned")
			}
		})
	}
}

func cut(s string, n int) string {
	if len(s) <= 2*n {
		return s
	}
	return s[:n] + "\n[...]\n" + s[len(s)-n:]
}
