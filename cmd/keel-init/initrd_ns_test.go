package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"keel/rootfs/factory"
	"keel/rootfs/machineid"
	"keel/rootfs/services"
)

// TestInitrdInNamespaces boots the initrd role for real, minus the kernel:
// keel-init is /init on a fresh tmpfs, PID 1 of new namespaces; the root is
// a squashfs made by mksquashfs and the data partition an ext4 image, both
// on loop devices. It must mount them, make on /var what is missing of the
// rootfs's factory copy of /var, give the disk a machine id mounted on
// /etc/machine-id, switch_root into the squashfs and exec itself as the
// rootfs's PID 1, whose test service reads files from /var and
// /etc/machine-id and writes copies back before asking for a power-off.
// It boots the same disk twice: the second boot makes nothing and sees the
// same machine id. The data image is then checked with e2fsck (unmounted
// cleanly) and debugfs (the files the guest wrote are there).
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

	// The rootfs: keel-init as /sbin/init, a test service, the factory
	// copy of /var and the empty /etc/machine-id a keel image carries.
	rootDir := makeTestRootfs(t, keelInit, svc, []services.Service{
		{Name: "check", Command: []string{"/bin/svc", "copy",
			"/var/hello.txt", "/var/from-guest.txt",
			"/var/lib/app/config", "/var/config-seen",
			"/etc/machine-id", "/var/machine-id-seen"},
			Restart: services.Never, OnExit: services.Poweroff},
	})
	factoryFiles := map[string]string{
		"hello.txt":                      "the factory's hello, hidden by the user's\n",
		"lib/app/config":                 "factory config\n",
		"home/keel/.ssh/authorized_keys": "ssh-ed25519 AAAA keel\n",
	}
	for name, data := range factoryFiles {
		p := filepath.Join(rootDir, factory.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/run", filepath.Join(rootDir, factory.Dir, "run")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootDir, machineid.Target), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	rootImg := filepath.Join(work, "root.squashfs")
	run("mksquashfs", rootDir, rootImg, "-noappend", "-quiet", "-all-root")

	// The data partition, with a file of the user's that the factory copy
	// also has.
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
	boot := func() string {
		t.Helper()
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
			"[check] /var/lib/app/config: factory config\n",
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
		return console
	}
	machineIDLine := regexp.MustCompile(`\[check\] /etc/machine-id: ([0-9a-f]{32})\n`)

	first := boot()
	// hello.txt is the user's; lib, lib/app, lib/app/config, home,
	// home/keel, .ssh, authorized_keys and the run symlink are new.
	for _, want := range []string{
		"keel-init: /var: 8 created from the factory copy, 1 kept (",
		"keel-init: machine id: a new one in /var/lib/keel/machine-id\n",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("first boot: console lacks %q", want)
		}
	}
	m := machineIDLine.FindStringSubmatch(first)
	if m == nil {
		t.Fatal("first boot: the guest saw no machine id in /etc/machine-id")
	}
	id := m[1]

	second := boot()
	if want := "keel-init: /var: 0 created from the factory copy, 9 kept ("; !strings.Contains(second, want) {
		t.Errorf("second boot: console lacks %q", want)
	}
	if strings.Contains(second, "machine id: a new one") {
		t.Error("second boot made a new machine id")
	}
	if m := machineIDLine.FindStringSubmatch(second); m == nil || m[1] != id {
		t.Errorf("second boot: machine id %q, want the first boot's %s", m, id)
	}

	// Detach first so nothing caches the image, then check it offline.
	exec.Command(tools["losetup"], "-d", dataLoop).Run()
	if out, err := exec.Command(tools["e2fsck"], "-fn", dataImg).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn of the data partition after shutdown: %v\n%s", err, out)
	}
	for file, want := range map[string]string{
		"/from-guest.txt":                 "hello from the data partition",
		"/config-seen":                    "factory config",
		"/home/keel/.ssh/authorized_keys": "ssh-ed25519 AAAA keel",
		"/" + machineid.File:              id,
		"/machine-id-seen":                id,
	} {
		if got := run("debugfs", "-R", "cat "+file, dataImg); !strings.Contains(got, want) {
			t.Errorf("%s on the data partition: %q, want %q", file, got, want)
		}
	}
}
