// Command guest is the /init of the initrd that qemu-tests/dmverity_test.go
// boots: it loads the kernel modules the initrd carries, then for each case
// of /etc/dmverity.json creates a dm-verity device with package dmverity,
// reads it block by block, and prints what happened on the console for the
// test to check. Then it powers the machine off.
//
// It lives under testdata so that `go build ./...` leaves it alone; the test
// builds it with CGO_ENABLED=0, as keel-init is built.
package main

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"keel/cmd/keel-init/dmverity"
	"keel/rootfs/kmod"
)

// Config is /etc/dmverity.json, written by the test.
type Config struct {
	Disks []string `json:"disks"` // virtio disks to wait for, e.g. "vda"
	Cases []Case   `json:"cases"`
}

// Case is one device to create.
type Case struct {
	Name     string `json:"name"`     // the device-mapper name
	Sectors  uint64 `json:"sectors"`  // the target's length
	Table    string `json:"table"`    // verity's parameter line
	Devtmpfs bool   `json:"devtmpfs"` // mount devtmpfs on /dev before this case
	Mount    string `json:"mount"`    // if set, mount the device (squashfs) and print this file
}

const prefix = "dmverity-guest:"

func say(format string, args ...any) {
	fmt.Printf(prefix+" "+format+"\n", args...)
}

func main() {
	if err := run(); err != nil {
		say("FAILED: %v", err)
	}
	say("done")
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		say("power off: %v", err)
	}
	select {}
}

func run() error {
	for _, m := range []struct{ fstype, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, 0, ""); err != nil {
			return fmt.Errorf("mounting %s: %w", m.dir, err)
		}
	}
	b, err := os.ReadFile("/etc/dmverity.json")
	if err != nil {
		return err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("/etc/dmverity.json: %w", err)
	}
	if err := loadModules(); err != nil {
		return err
	}
	devtmpfs := false
	for _, c := range cfg.Cases {
		if c.Devtmpfs && !devtmpfs {
			if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err != nil {
				return fmt.Errorf("mounting devtmpfs: %w", err)
			}
			devtmpfs = true
		}
		// /dev is the initrd's own directory until devtmpfs is mounted:
		// the disks' nodes are made here, and package dmverity must make
		// the control node and the dm-N node itself.
		for _, d := range cfg.Disks {
			if err := diskNode(d); err != nil {
				return err
			}
		}
		runCase(c, devtmpfs)
	}
	return nil
}

// loadModules loads what kmod.AddToTree put into the initrd, in its order.
func loadModules() error {
	f, err := os.Open(kmod.LoadOrderPath)
	if err != nil {
		return err
	}
	defer f.Close()
	paths, err := kmod.ParseLoadOrder(f)
	if err != nil {
		return err
	}
	for _, p := range paths {
		m, err := os.Open(p)
		if err != nil {
			return err
		}
		flags := 0
		if !strings.HasSuffix(p, ".ko") {
			flags |= unix.MODULE_INIT_COMPRESSED_FILE
		}
		err = unix.FinitModule(int(m.Fd()), "", flags)
		m.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading %s: %w", p, err)
		}
	}
	say("loaded %d modules", len(paths))
	return nil
}

// diskNode waits for the virtio disk name to appear and makes /dev/name if
// it is not there.
func diskNode(name string) error {
	devFile := filepath.Join("/sys/block", name, "dev")
	var b []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if b, err = os.ReadFile(devFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("disk %s did not appear: %w", name, err)
		}
	}
	maj, min, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	major, err1 := strconv.ParseUint(maj, 10, 32)
	minor, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("%s: %q", devFile, b)
	}
	node := filepath.Join("/dev", name)
	if _, err := os.Stat(node); err == nil {
		return nil
	}
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(major), uint32(minor)))); err != nil {
		return fmt.Errorf("mknod %s: %w", node, err)
	}
	return nil
}

// runCase creates the device, reads it, prints the results and removes it.
func runCase(c Case, devtmpfs bool) {
	say("case %s: devtmpfs=%v", c.Name, devtmpfs)
	path, dev, err := dmverity.Create(c.Name, "verity", c.Sectors, c.Table, "/dev")
	if err != nil {
		say("case %s: create error: %v", c.Name, err)
		// A failed Create leaves no device behind.
		if _, serr := dmverity.Status(c.Name); serr != nil {
			say("case %s: status after failed create: %v", c.Name, serr)
		} else {
			say("case %s: status after failed create: the device exists", c.Name)
		}
		return
	}
	say("case %s: created %s %d:%d", c.Name, path, unix.Major(dev), unix.Minor(dev))
	status(c.Name, "before read")
	readAll(c.Name, path, c.Sectors*512)
	status(c.Name, "after read")
	if c.Mount != "" {
		mountAndRead(c.Name, path, c.Mount)
	}
	if err := dmverity.Remove(c.Name); err != nil {
		say("case %s: remove error: %v", c.Name, err)
		return
	}
	say("case %s: removed", c.Name)
}

func status(name, when string) {
	s, err := dmverity.Status(name)
	if err != nil {
		say("case %s: status %s: error %v", name, when, err)
		return
	}
	say("case %s: status %s: %s", name, when, s)
}

// readAll reads the device one 4 KiB block at a time, so that a corrupted
// block fails alone, and prints the sha256 of what it read and the blocks
// that failed.
func readAll(name, path string, size uint64) {
	f, err := os.Open(path)
	if err != nil {
		say("case %s: open %s: %v", name, path, err)
		return
	}
	defer f.Close()
	h := sha256.New()
	var failed []string
	buf := make([]byte, 4096)
	for off := int64(0); off < int64(size); off += int64(len(buf)) {
		n, err := f.ReadAt(buf, off)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%d(%v)", off/4096, errors.Unwrap(err)))
			buf = make([]byte, 4096) // zeros in the sum where the block failed
			h.Write(buf)
			continue
		}
		h.Write(buf[:n])
	}
	say("case %s: read sha256=%x failed=[%s]", name, h.Sum(nil), strings.Join(failed, " "))
}

// mountAndRead mounts the device as squashfs and prints file's content.
func mountAndRead(name, path, file string) {
	dir := "/mnt/" + name
	if err := os.MkdirAll(dir, 0o755); err != nil {
		say("case %s: mount: %v", name, err)
		return
	}
	if err := unix.Mount(path, dir, "squashfs", unix.MS_RDONLY, ""); err != nil {
		say("case %s: mount: %v", name, err)
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		say("case %s: mounted, reading %s: %v", name, file, err)
	} else {
		say("case %s: mounted, %s=%q", name, file, b)
	}
	// A mounted device cannot be removed.
	if err := dmverity.Remove(name); err != nil {
		say("case %s: remove while mounted: %v", name, err)
	} else {
		say("case %s: remove while mounted: removed", name)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		say("case %s: umount: %v", name, err)
	}
}
