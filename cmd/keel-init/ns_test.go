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

	"golang.org/x/sys/unix"

	"keel/rootfs/services"
)

// TestPID1InNamespaces runs the built keel-init as PID 1 of new PID, mount,
// UTS and network namespaces, chrooted into a tiny rootfs: the rootfs role
// end to end (API mounts, hostname, services as a user, output prefixes,
// the ready line, busybox-style shutdown signals, reboot(2)) without a VM.
// In a child PID namespace reboot(2) ends the namespace instead of the
// machine, and its init dies by SIGINT for power-off/halt and SIGHUP for
// restart, which is what the test checks.
//
// The rootfs holds only static binaries, with no bind mount of the host's
// filesystems, because keel-init's shutdown remounts what it cannot
// unmount read-only, and that would reach the host's superblock.
func TestPID1InNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for mount and PID namespaces: not root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux): not installed")
	}
	keelInit, svc := buildTestBinaries(t)

	for _, tc := range []struct {
		name     string
		svcs     []services.Service
		health   string // /etc/keel/health.json, "" for none
		wantSig  syscall.Signal
		wantText []string
	}{
		{
			name: "test service powers off",
			svcs: []services.Service{
				{Name: "daemon", Command: []string{"/bin/svc", "report"}, User: "app", WorkingDir: "/srv", Env: map[string]string{"MODE": "ns"}},
				{Name: "test", Command: []string{"svc", "exit", "0"}, Restart: services.Never, OnExit: services.Poweroff},
			},
			wantSig: syscall.SIGINT,
			wantText: []string{
				"keel-init: keel-init " + testBinVersion + " (PID 1)\n",
				"[daemon] hostname=keel-ns uid=1000 gid=1000 groups=[2000] cwd=/srv MODE=ns\n",
				"[daemon] fs /proc=proc\n", "[daemon] fs /sys=sysfs\n", "[daemon] fs /dev/pts=devpts\n",
				"[daemon] fs /run=tmpfs\n", "[daemon] fs /tmp=tmpfs\n",
				"[daemon] lo up=true\n",
				"[daemon] report done (stderr)\n",
				"[test] exiting with 0\n",
				"keel: ready keel-test 1.2.3 slot=",
				"keel-init: shutting down (poweroff)\n",
				"keel-init: powering off\n",
			},
		},
		{
			name: "busybox reboot: SIGTERM to PID 1",
			svcs: []services.Service{
				{Name: "reboot", Command: []string{"/bin/svc", "signal-init", "15"}, Restart: services.Never},
			},
			health:  `{"require": ["reboot"], "grace": "200ms"}`,
			wantSig: syscall.SIGHUP,
			wantText: []string{
				"keel-init: health: judging the boot: [reboot] must stay up for 200ms, within 1m30.2s; try counter: none\n",
				"keel: ready keel-test 1.2.3 slot=",
				"keel-init: health: boot is good: reboot up for 200ms; entry none (no try counter: not a trial boot)\n",
				"keel-init: reboot requested\n", "keel-init: rebooting\n",
			},
		},
		{
			name: "busybox poweroff: SIGUSR2 to PID 1",
			svcs: []services.Service{
				{Name: "poweroff", Command: []string{"/bin/svc", "signal-init", "12"}, Restart: services.Never},
			},
			wantSig:  syscall.SIGINT,
			wantText: []string{"keel-init: poweroff requested\n", "keel-init: powering off\n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := makeTestRootfs(t, keelInit, svc, tc.svcs)
			if tc.health != "" {
				if err := os.WriteFile(filepath.Join(root, services.HealthFile), []byte(tc.health), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, unshare, "--pid", "--mount", "--uts", "--net", "--ipc", "--fork",
				"--propagation", "private", "--kill-child", "--root", root, "/sbin/init")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			console := out.String()
			t.Logf("console:\n%s", console)
			if ctx.Err() != nil {
				t.Fatal("keel-init did not shut down within 30 s")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("unshare: %v; want it killed by %v", err, tc.wantSig)
			}
			ws := ee.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != tc.wantSig {
				t.Errorf("ended with %v, want killed by %v", ws, tc.wantSig)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(console, w) {
					t.Errorf("console lacks %q", w)
				}
			}
			if n := strings.Count(console, "keel: ready "); n != 1 {
				t.Errorf("%d ready lines, want 1", n)
			}
		})
	}
}

// makeTestRootfs lays out a rootfs the way a keel image has it, holding
// keel-init as /sbin/init and the stand-in service as /bin/svc. It must not
// be on a tmpfs, or keel-init would take it for an initramfs.
func makeTestRootfs(t *testing.T, keelInit, svc string, svcs []services.Service) string {
	t.Helper()
	root := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC) {
		dir, err := os.MkdirTemp("/var/tmp", "keel-init-rootfs-")
		if err != nil {
			t.Skipf("%s is a tmpfs and /var/tmp is not usable: %v", root, err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		root = dir
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var", "srv", "sbin", "bin", "etc/keel/services"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/hostname":   "keel-ns\n",
		"etc/os-release": "ID=debian\nIMAGE_ID=keel-test\nIMAGE_VERSION=\"1.2.3\"\n",
		"etc/passwd":     "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":      "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for from, to := range map[string]string{keelInit: "sbin/init", svc: "bin/svc"} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, to), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range svcs {
		b, err := services.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, services.Dir, services.FileName(s.Name)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}
