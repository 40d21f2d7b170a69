package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"keel/rootfs/services"
)

// TestInitrdInNamespaces boots the initrd role for real, minus the kernel:
// keel-init is /init on a fresh tmpfs, PID 1 of new namespaces; the root is
// a squashfs made by mksquashfs and the data partition an ext4 image, both
// on loop devices. It must mount them, switch_root into the squashfs and
// exec itself as the rootfs's PID 1, whose test service reads a file from
// /var and writes one back before asking for a power-off. The data image
// is then checked with e2fsck (unmounted cleanly) and debugfs (the file
// the guest wrote is there).
//
// This kernel has no partition scanning on loop devices, so the devices are
// named by path (root=/dev/loopN); PARTUUID and PARTLABEL lookups are
// covered against testdata/sys and, for real, by the QEMU tests.
func TestInitrdInNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and namespaces: not root")
	}
	tools := map[string]string{}
	for _, tool := range []string{"unshare", "losetup", "mksquashfs", "mkfs.ext4", "e2fsck", "debugfs", "sh"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s: not installed", tool)
		}
		tools[tool] = p
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("loop devices: not available")
	}
	keelInit, svc := buildTestBinaries(t)
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(tools[name], args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	work := t.TempDir()

	// The rootfs: keel-init as /sbin/init, and a test service.
	rootDir := makeTestRootfs(t, keelInit, svc, []services.Service{
		{Name: "check", Command: []string{"/bin/svc", "copy", "/var/hello.txt", "/var/from-guest.txt"},
			Restart: services.Never, OnExit: services.Poweroff},
	})
	rootImg := filepath.Join(work, "root.squashfs")
	run("mksquashfs", rootDir, rootImg, "-noappend", "-quiet", "-all-root")

	// The data partition, with a file for the guest to read.
	dataDir := filepath.Join(work, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "hello.txt"), []byte("hello from the data partition\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dataImg := filepath.Join(work, "data.ext4")
	run("mkfs.ext4", "-q", "-F", "-d", dataDir, dataImg, "16M")

	rootLoop := run("losetup", "--find", "--show", "--read-only", rootImg)
	t.Cleanup(func() { exec.Command(tools["losetup"], "-d", rootLoop).Run() })
	dataLoop := run("losetup", "--find", "--show", dataImg)
	t.Cleanup(func() { exec.Command(tools["losetup"], "-d", dataLoop).Run() })

	// The initramfs: keel-init as /init, parameters in its cmdline file
	// (the host's own command line has no root=), and a module list whose
	// one entry does not exist, which must be reported and survived.
	initramfs := filepath.Join(work, "initramfs")
	if err := os.MkdirAll(initramfs, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount -t tmpfs -o mode=0755 initramfs "$1"
mkdir -p "$1/etc/keel"
echo "NAME=keel-initrd" > "$1/etc/initrd-release"
cp "$2" "$1/init"
echo "root=$3 keel.data=$4 keel.slot=b keel.rootwait=3" > "$1/etc/keel/cmdline"
echo "kernel/fs/nope/nope.ko" > "$1/etc/keel/modules"
exec chroot "$1" /init`
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools["unshare"], "--pid", "--mount", "--uts", "--net", "--ipc", "--fork",
		"--propagation", "private", "--kill-child",
		tools["sh"], "-c", script, "sh", initramfs, keelInit, rootLoop, dataLoop)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	console := out.String()
	t.Logf("console:\n%s", console)
	if ctx.Err() != nil {
		t.Fatal("did not power off within 60 s")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("unshare: %v; want it killed by SIGINT (power-off in a PID namespace)", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("ended with %v, want killed by SIGINT", ws)
	}
	for _, want := range []string{
		"keel-init: keel-init " + testBinVersion + " (initrd)\n",
		"keel-init: loading module /lib/modules/",
		"keel-init: loaded 0 of 1 modules",
		"keel-init: root: " + strings.TrimPrefix(rootLoop, "/dev/") + " (7:",
		", slot b, mounted read-only\n",
		"keel-init: data: " + strings.TrimPrefix(dataLoop, "/dev/") + " (7:",
		"keel-init: switching to the rootfs, exec /sbin/init",
		"keel-init: keel-init " + testBinVersion + " (PID 1)\n",
		"[check] /var/hello.txt: hello from the data partition\n",
		"keel: ready keel-test 1.2.3 slot=b\n",
		"keel-init: powering off\n",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if strings.Contains(console, "WARNING") {
		t.Errorf("warnings on the console")
	}

	// Detach first so nothing caches the image, then check it offline.
	exec.Command(tools["losetup"], "-d", dataLoop).Run()
	if out, err := exec.Command(tools["e2fsck"], "-fn", dataImg).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn of the data partition after shutdown: %v\n%s", err, out)
	}
	got := run("debugfs", "-R", "cat /from-guest.txt", dataImg)
	if !strings.Contains(got, "hello from the data partition") {
		t.Errorf("file the guest wrote to /var: %q", got)
	}
}
