package main

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"keel/image/mountinfo"
)

var rebootCmd = map[action]int{
	actPoweroff: unix.LINUX_REBOOT_CMD_POWER_OFF,
	actReboot:   unix.LINUX_REBOOT_CMD_RESTART,
	actHalt:     unix.LINUX_REBOOT_CMD_HALT,
}

// shutdown ends the system once the services are stopped: every other
// process is asked to go, then killed; data is flushed and the writable
// filesystems unmounted (or made read-only) so /var is clean at the next
// boot; then the kernel powers off, reboots or halts. It does not return
// unless reboot(2) fails.
func shutdown(con *console, act action) {
	con.logf("shutting down (%s)", act)
	// What the supervisor did not start: orphans, daemons that left their
	// service's process group. kill(-1) spares PID 1.
	_ = unix.Kill(-1, unix.SIGTERM)
	if !waitNoChildren(2 * time.Second) {
		_ = unix.Kill(-1, unix.SIGKILL)
		waitNoChildren(time.Second)
	}
	unix.Sync()
	unmountAll(con)
	unix.Sync()
	con.logf("%s", map[action]string{actPoweroff: "powering off", actReboot: "rebooting", actHalt: "halting"}[act])
	if err := unix.Reboot(rebootCmd[act]); err != nil {
		con.logf("ERROR: reboot(2): %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// waitNoChildren waits until PID 1 has no children left (the reaper
// collects them) or timeout passes, and says which.
func waitNoChildren(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		// WNOHANG with no children gives ECHILD; with children that
		// have not exited, 0. Reaping one here is harmless: it is gone.
		_, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
		if errors.Is(err, unix.ECHILD) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unmountAll unmounts the writable block filesystems, last mounted first;
// one still busy is remounted read-only, which flushes it all the same.
func unmountAll(con *console) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		con.logf("WARNING: %v; unmounting only /var", err)
		unmountOrRemount(con, "/var")
		return
	}
	ms, err := mountinfo.Parse(f)
	f.Close()
	if err != nil {
		con.logf("WARNING: %v; unmounting only /var", err)
		unmountOrRemount(con, "/var")
		return
	}
	for _, target := range toUnmount(ms) {
		unmountOrRemount(con, target)
	}
}

func unmountOrRemount(con *console, target string) {
	err := unix.Unmount(target, 0)
	if err == nil || errors.Is(err, unix.EINVAL) { // EINVAL: not a mount point
		return
	}
	if err2 := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err2 != nil {
		con.logf("WARNING: unmounting %s: %v; remounting read-only: %v", target, err, err2)
	}
}
