package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"keel/cmd/keel-init/grow"
	"keel/image/gpt"
	"keel/rootfs/factory"
	"keel/rootfs/machineid"
)

const (
	sysroot      = "/sysroot"
	defaultInit  = "/sbin/init"
	dataWait     = 2 * time.Second // the data partition is normally on the root's disk: already there
	devicePollAt = 50 * time.Millisecond
)

// initrdMain is the initrd role: from a bare initramfs to exec'ing the
// rootfs's init. It returns only on failure.
func initrdMain(con *console) error {
	start := time.Now()
	con.logf("keel-init %s (initrd)", version)
	for _, m := range initrdMounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", m.target, err)
		}
		if _, err := mountAPI(m); err != nil {
			return err
		}
	}
	ensureConsoleFds()

	line, err := bootCmdline()
	if err != nil {
		return err
	}
	params, err := parseCmdline(line)
	if err != nil {
		return err
	}
	if err := loadModuleList(con); err != nil {
		return err
	}

	wait := params.RootWait
	if wait == 0 {
		wait = defaultRootWait
	}
	root, err := rootDevice(con, &params, wait)
	if err != nil {
		return fmt.Errorf("root partition: %w", err)
	}
	if err := os.MkdirAll(sysroot, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", sysroot, err)
	}
	src, err := mountRoot(con, root, params)
	if err != nil {
		return err
	}
	con.logf("root: %s (%s), slot %s, mounted read-only", root, src, firstNonEmpty(params.Slot, "unknown"))

	if mountData(con, params, root.Disk) {
		prepareVar(con)
	}

	for _, p := range initrdToMove {
		if err := unix.Mount(p, sysroot+p, "", unix.MS_MOVE, ""); err != nil {
			// The rootfs lacks the directory; its init will have to do
			// without. Detach ours so it is not left behind.
			con.logf("WARNING: moving %s into the rootfs: %v", p, err)
			_ = unix.Unmount(p, unix.MNT_DETACH)
		}
	}

	init := firstNonEmpty(params.Init, defaultInit)
	if err := checkInit(sysroot, init); err != nil {
		return err
	}
	con.logf("switching to the rootfs, exec %s (initrd took %v)", init, time.Since(start).Round(time.Millisecond))
	// The slot as the initrd saw it, for the rootfs's init: it is right
	// even when it came from the initrd's own cmdline file.
	env := append(os.Environ(), slotEnv+"="+params.Slot)
	return switchRoot(sysroot, init, append([]string{init}, os.Args[1:]...), env)
}

// cmdlinePath holds parameters built into the initrd, read before the
// kernel's own, so the kernel command line (the boot entry) overrides them.
const cmdlinePath = "/etc/keel/cmdline"

// slotEnv passes the booted slot from the initrd to the rootfs's init.
const slotEnv = "KEEL_SLOT"

func bootCmdline() (string, error) {
	kernel, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", fmt.Errorf("reading the kernel command line: %w", err)
	}
	built, err := os.ReadFile(cmdlinePath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", cmdlinePath, err)
	}
	return strings.TrimSpace(strings.TrimSpace(string(built)) + " " + string(kernel)), nil
}

// loadModuleList loads every module of the initrd's list. A missing list is
// fine (a kernel with everything built in); a module that fails is logged
// and the boot goes on: if it mattered, the root wait says so.
func loadModuleList(con *console) error {
	f, err := os.Open(moduleListPath)
	if errors.Is(err, os.ErrNotExist) {
		con.logf("no %s: loading no modules", moduleListPath)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the module list: %w", err)
	}
	defer f.Close()
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	mods, err := parseModuleList(f, release)
	if err != nil {
		return err
	}
	t := time.Now()
	failed := loadModules(mods, finitModule, con.logf)
	con.logf("loaded %d of %d modules in %v", len(mods)-failed, len(mods), time.Since(t).Round(time.Millisecond))
	return nil
}

func finitModule(m moduleLoad) error {
	fd, err := unix.Open(m.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer unix.Close(fd)
	flags := 0
	if isCompressedModule(m.Path) {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(fd, m.Params, flags)
	if errors.Is(err, unix.EEXIST) {
		return errModuleLoaded
	}
	return err
}

// waitForDevice polls sysDir (/sys/class/block) until spec appears and its /dev
// node exists, or timeout passes; then the error lists what the kernel did
// show, which is usually enough to see a missing driver or a wrong UUID.
func waitForDevice(sysDir string, spec devSpec, preferDisk string, timeout time.Duration) (blockDev, error) {
	deadline := time.Now().Add(timeout)
	var devs []blockDev
	for {
		var err error
		devs, err = scanBlockDevices(sysDir)
		if err == nil {
			if b, ok := findDevice(devs, spec, preferDisk); ok {
				if err := ensureDevNode(b); err != nil {
					return blockDev{}, err
				}
				return b, nil
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(devicePollAt)
	}
	var seen []string
	for _, b := range devs {
		seen = append(seen, "  "+b.String())
	}
	if len(seen) == 0 {
		seen = []string{"  (none: is the disk driver, e.g. virtio_blk, in the module list?)"}
	}
	return blockDev{}, fmt.Errorf("%s did not appear within %v; block devices seen:\n%s", spec, timeout, strings.Join(seen, "\n"))
}

// ensureDevNode makes /dev/<name> if devtmpfs has not (it normally has by
// the time sysfs shows the device).
func ensureDevNode(b blockDev) error {
	p := "/dev/" + b.Name
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(b.Major, b.Minor))); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}

// mountData mounts the data partition (ext4) on the rootfs's /var, or a
// tmpfs in its place, and reports whether /var is writable. Nothing here
// stops the boot: a system that comes up without its data, saying so
// loudly, can still be reached, updated or rolled back.
func mountData(con *console, params bootParams, rootDisk string) (writable bool) {
	target := sysroot + "/var"
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		con.logf("WARNING: the rootfs has no /var directory: data partition not mounted")
		return false
	}
	if params.NoData {
		con.logf("keel.data=none: /var is a tmpfs")
		return mountVarTmpfs(con, target)
	}
	spec := params.Data
	if spec.Kind == "" {
		spec = devSpec{"PARTLABEL", "data"}
	}
	dev, err := waitForDevice(sysClassBlock, spec, rootDisk, dataWait)
	if err == nil {
		growPartition(con, params, dev)
		err = unix.Mount("/dev/"+dev.Name, target, "ext4", unix.MS_NOSUID|unix.MS_NODEV, "")
		if err != nil {
			err = fmt.Errorf("mounting %s (ext4) on /var: %w", dev, err)
		}
	}
	if err != nil {
		con.logf("WARNING: data partition: %v", err)
		con.logf("WARNING: /var is a tmpfs: NOTHING WRITTEN TO /var WILL SURVIVE A REBOOT")
		return mountVarTmpfs(con, target)
	}
	con.logf("data: %s mounted on /var", dev)
	if !params.NoGrow {
		growFilesystem(con, dev, target)
	}
	return true
}

// growPartition extends the data partition to the end of a disk larger than
// the image (see package grow). A failure costs the space, not the boot.
func growPartition(con *console, params bootParams, dev blockDev) {
	if params.NoGrow || !dev.Partition || dev.Disk == "" || dev.PartN == 0 {
		return
	}
	from, to, err := grow.Partition("/dev/"+dev.Disk, dev.PartN, dev.Name)
	switch {
	case errors.Is(err, gpt.ErrNotLast):
		// Another partition after data: the disk's owner laid it out.
	case err != nil:
		con.logf("WARNING: data partition not grown: %v", err)
	case to != from:
		con.logf("data: partition %s grown from %s to %s, to the end of the disk", dev.Name, mib(from), mib(to))
	}
}

// growFilesystem grows the ext4 on dev, mounted at dir, to fill its
// partition.
func growFilesystem(con *console, dev blockDev, dir string) {
	from, to, took, err := grow.Filesystem("/dev/"+dev.Name, dir, func(from, to int64) {
		con.logf("data: growing ext4 on %s from %s to %s", dev.Name, mib(from), mib(to))
	})
	switch {
	case err != nil:
		con.logf("WARNING: data filesystem not grown: %v", err)
	case to != from:
		con.logf("data: ext4 on %s grown to %s in %v", dev.Name, mib(to), took.Round(time.Millisecond))
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func mountVarTmpfs(con *console, target string) bool {
	if err := unix.Mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		con.logf("WARNING: mounting a tmpfs on /var: %v; /var is read-only", err)
		return false
	}
	return true
}

// prepareVar runs once /var is writable, before the rootfs's init starts:
// what the image keeps under /var (its factory copy) is made where /var
// lacks it, and the disk gets its machine id, made at its first boot and
// mounted over the image's empty /etc/machine-id. Nothing here stops the
// boot either.
func prepareVar(con *console) {
	start := time.Now()
	st, err := factory.Populate(sysroot+factory.Dir, sysroot+factory.Var, con.logf)
	took := time.Since(start).Round(100 * time.Microsecond)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		con.logf("/var: the image has no factory copy (%s)", factory.Dir)
	case err != nil:
		con.logf("WARNING: /var: %v", err)
	default:
		line := fmt.Sprintf("/var: %d created from the factory copy, %d kept", st.Created, st.Kept)
		if st.Skipped > 0 {
			line += fmt.Sprintf(", %d skipped", st.Skipped)
		}
		if st.Failed > 0 {
			line = fmt.Sprintf("WARNING: %s, %d NOT CREATED (see above)", line, st.Failed)
		}
		con.logf("%s (%v)", line, took)
	}

	created, err := machineid.Ensure(sysroot+"/var", con.logf)
	if err != nil {
		con.logf("WARNING: machine id: %v", err)
		return
	}
	if created {
		con.logf("machine id: a new one in /var/%s", machineid.File)
	}
	err = machineid.Mount(sysroot+"/var", sysroot+machineid.Target)
	switch {
	case errors.Is(err, machineid.ErrNoTarget):
		con.logf("machine id: not mounted: %v", err)
	case err != nil:
		con.logf("WARNING: machine id: %v", err)
	}
}
