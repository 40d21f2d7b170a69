package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"keel/image/disk"
	"keel/image/format"
	"keel/image/gpt"
	"keel/image/qemu"
)

type runOptions struct {
	timeout time.Duration
	memory  int
	accel   string
	vars    string
	disks   []string
	net     bool
	forward []string
	sb      string
	bios    bool
	arch    string
}

func newRunCmd() *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run DISK",
		Short: "Boot a disk image in QEMU with UEFI firmware, console on this terminal",
		Long: `Boot DISK in QEMU (q35 with OVMF UEFI firmware; virt with AAVMF for
aarch64 images) with the serial console on stdout and stdin. The firmware
gets a private copy of its variable store (--vars keeps one across runs, as
a real machine would). The VM stops when
the guest powers off, when --timeout runs out, or on Ctrl-A X.

Formats: DISK is a raw image, or a qcow2, vmdk or vhdx one as keel build
--format writes (told by its header; read with qemu-img, from qemu-utils,
which must find no backing file). QEMU boots it as it is; the guest's
writes go into it.

Acceleration: TCG by default. KVM is used only with --accel kvm, or with
--accel auto when a short probe boot proves it works (on some machines
/dev/kvm exists but fails inside the firmware). KEEL_ACCEL=tcg|kvm|auto sets
the default.

Secure Boot: --secure-boot snakeoil runs OVMF's Secure Boot firmware
enforcing the ovmf package's snakeoil keys (sign with keel build --sb-key
snakeoil.key --sb-cert /usr/share/ovmf/PkKek-1-snakeoil.pem, the key
decrypted first: openssl pkey -in /usr/share/ovmf/PkKek-1-snakeoil.key
-passin pass:snakeoil -out snakeoil.key); --secure-boot setup runs it in setup
mode, with no keys, where an image built with --sb-keys enrolls its own.
With --vars, enrolled keys stay for the next run.

BIOS: --bios boots with the machine's firmware other than UEFI: QEMU's own
BIOS (SeaBIOS) on x86_64, as an older machine would, for boot.loader grub
images; U-Boot (Debian's u-boot-qemu) on aarch64, for boot.loader u-boot
images.

Architecture: an image built with arch: aarch64 (which its root slots'
partition type tells) boots on QEMU's virt machine with AAVMF firmware,
always under TCG on an x86_64 host; --arch overrides the guess.

Needs qemu-system-x86 and ovmf (apt-get install qemu-system-x86 ovmf), for
aarch64 images qemu-system-arm and qemu-efi-aarch64.`,
		Example: `  keel run out/busybox.img
  keel run --timeout 60s --vars vars.fd out/busybox.img
  keel run out/busybox.qcow2                         # a keel build --format qcow2 image
  keel run --forward 2222:22 server.img     # then: ssh -p 2222 keel@127.0.0.1
  keel run --secure-boot setup --vars sb.fd my.img   # enrolls my.img's keys, then enforces them
  keel run --bios grub.img                           # a boot.loader grub image, by BIOS
  keel run --bios uboot-arm64.img                    # a boot.loader u-boot image, by U-Boot
  keel run --timeout 10m arm64.img                   # an arch: aarch64 image (virt, AAVMF)`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return usageError{err}
			}
			ft, err := detectFormat(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if ft != format.Raw {
				if _, err := imageInfo(cmd.Context(), args[0], ft); err != nil {
					return err
				}
			}
			arch, err := runArch(cmd.Context(), o.arch, args[0], ft)
			if err != nil {
				return err
			}
			cfg := qemu.Config{
				Arch: arch, Disk: args[0], DiskFormat: ft.String(), ExtraDisks: o.disks, MemoryMiB: o.memory, Accel: o.accel,
				Timeout: o.timeout, VarsCopy: o.vars, Console: os.Stdout,
				Network: o.net || len(o.forward) > 0,
			}
			for _, f := range o.forward {
				h, g, ok := strings.Cut(f, ":")
				hp, err1 := strconv.Atoi(h)
				gp, err2 := strconv.Atoi(g)
				if !ok || err1 != nil || err2 != nil || hp < 1 || hp > 65535 || gp < 1 || gp > 65535 {
					return usagef("--forward %q: want HOSTPORT:GUESTPORT, e.g. 2222:22", f)
				}
				cfg.Forwards = append(cfg.Forwards, qemu.Forward{HostPort: hp, GuestPort: gp})
			}
			switch o.sb {
			case "off":
			case "snakeoil":
				cfg.SecureBoot, cfg.OVMFCode, cfg.OVMFVars = true, qemu.SecureBootCode, qemu.SnakeoilVars
			case "setup":
				cfg.SecureBoot, cfg.OVMFCode, cfg.OVMFVars = true, qemu.SecureBootCode, qemu.SetupModeVars
			default:
				return usagef("--secure-boot %q: want off, snakeoil or setup", o.sb)
			}
			if o.bios {
				if o.sb != "off" || o.vars != "" {
					return usagef("--bios has no UEFI: no --secure-boot or --vars")
				}
				cfg.BIOS = true
			}
			if term.IsTerminal(int(os.Stdin.Fd())) {
				cfg.Stdin = os.Stdin
			}
			vm, err := qemu.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "keel: booting %s (%s); Ctrl-A X quits\n", args[0], vm.Accel())
			err = vm.Wait()
			if errors.Is(err, qemu.ErrTimeout) {
				return fmt.Errorf("the VM was still running after %s", o.timeout)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.timeout, "timeout", 0, "stop the VM after this long (0: no limit)")
	f.IntVar(&o.memory, "memory", 1024, "guest memory in MiB")
	f.StringVar(&o.accel, "accel", "", "tcg, kvm or auto (default: $KEEL_ACCEL, else auto)")
	f.StringVar(&o.vars, "vars", "", "UEFI variable store to use and keep (default: a fresh private copy)")
	f.StringSliceVar(&o.disks, "disk", nil, "extra raw disk images to attach (repeatable)")
	f.BoolVar(&o.net, "net", false, "give the guest a NIC on QEMU's user network (DHCP; restricted: nothing leaves the machine)")
	f.StringVar(&o.sb, "secure-boot", "off", "off, snakeoil (enforce the ovmf package's snakeoil keys) or setup (no keys: an image may enroll its own)")
	f.StringVar(&o.arch, "arch", "", "x86_64 or aarch64 (default: the disk's, from its root partition type)")
	f.BoolVar(&o.bios, "bios", false, "boot with SeaBIOS (x86_64, boot.loader grub) or U-Boot (aarch64, boot.loader u-boot) instead of UEFI firmware")
	f.StringArrayVar(&o.forward, "forward", nil, "forward 127.0.0.1:HOSTPORT to the guest's GUESTPORT, e.g. 2222:22 for ssh (implies --net; repeatable)")
	return cmd
}

// runArch is the guest architecture for the disk image name, of format
// ft: flag if set, else the one its root-a partition's type names. A disk
// that is not a keel disk (no GPT, no root-a, another type) boots as
// x86_64.
func runArch(ctx context.Context, flag, name string, ft format.Format) (string, error) {
	switch flag {
	case "x86_64", "aarch64":
		return flag, nil
	case "":
	default:
		return "", usagef("--arch %q: want x86_64 or aarch64", flag)
	}
	var t *gpt.Table
	if ft == format.Raw {
		t, _ = gpt.ReadFile(name)
	} else {
		b, size, err := readHead(ctx, name, ft)
		if err != nil {
			return "", err
		}
		// The backup GPT at the end is not in b: the primary, which
		// the firmware reads first, is what tells.
		t, _ = gpt.Read(bytes.NewReader(b), size)
	}
	if t != nil {
		if p, ok := t.Find(disk.LabelRootA); ok && disk.RootArch(p.Type) != "" {
			return disk.RootArch(p.Type), nil
		}
	}
	return "x86_64", nil
}

// headSize is how much of a qcow2, vmdk or vhdx disk readHead reads: the
// primary GPT (34 sectors) with room to spare.
const headSize = 1 << 20

// readHead reads the first headSize bytes of the virtual disk inside the
// image name, of format ft (not raw), and its virtual size. keel has no
// reader of these formats, so QEMU's own does it: qemu-img dd.
func readHead(ctx context.Context, name string, ft format.Format) ([]byte, int64, error) {
	size, err := imageInfo(ctx, name, ft)
	if err != nil {
		return nil, 0, err
	}
	// qemu-img dd writes a file only, not a pipe.
	dir, err := os.MkdirTemp("", "keel-run-")
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(dir)
	head := filepath.Join(dir, "head")
	count := min(headSize, size) / gpt.SectorSize
	dd := exec.CommandContext(ctx, "qemu-img", "dd", "-f", ft.String(), "-O", "raw", "bs="+strconv.Itoa(gpt.SectorSize),
		"count="+strconv.FormatInt(count, 10), "if="+qemuImgPath(name), "of="+head)
	if b, err := dd.CombinedOutput(); err != nil {
		return nil, 0, fmt.Errorf("qemu-img dd %s: %w\n%s", name, err, b)
	}
	b, err := os.ReadFile(head)
	if err != nil {
		return nil, 0, err
	}
	return b, size, nil
}

// imageInfo is the virtual size of the image name, of format ft (not
// raw), from qemu-img info, which QEMU's packages recommend. An image
// that names a backing file is refused: keel build writes none, and
// keel run tells the format from the file's header, so a raw disk whose
// guest wrote a qcow2 header into it would otherwise hand that guest
// whatever host file it named.
func imageInfo(ctx context.Context, name string, ft format.Format) (int64, error) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		return 0, usagef("%s is a %s image: keel run reads it with qemu-img first, which is not installed "+
			"(apt-get install qemu-utils)", name, ft)
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "-f", ft.String(), "--output", "json", qemuImgPath(name)).Output()
	if err != nil {
		return 0, fmt.Errorf("qemu-img info %s: %w%s", name, err, stderrOf(err))
	}
	var info struct {
		VirtualSize int64  `json:"virtual-size"`
		Backing     string `json:"backing-filename"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return 0, fmt.Errorf("qemu-img info %s: %w", name, err)
	}
	if info.Backing != "" {
		return 0, fmt.Errorf("%s is a %s image over the backing file %s: keel run boots self-contained images only", name, ft, info.Backing)
	}
	return info.VirtualSize, nil
}

// qemuImgPath is name as qemu-img takes it: absolute, as it reads
// "proto:..." in a name as a protocol.
func qemuImgPath(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return name
}

// stderrOf is what a failed command said on stderr, after a newline.
func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return "\n" + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// detectFormat is the disk image format of the file name.
func detectFormat(name string) (format.Format, error) {
	f, err := os.Open(name)
	if err != nil {
		return format.Raw, err
	}
	defer f.Close()
	return format.Detect(f)
}
