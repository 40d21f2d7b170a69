package main

import (
	"bytes"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"keel/image/updatetest/wire"
	"keel/rootfs/services"
)

// signalAction maps the signals PID 1 gets to what they ask for. It follows
// busybox init, so busybox's halt, poweroff and reboot applets (which
// signal PID 1: SIGUSR1, SIGUSR2, SIGTERM) work in an image; SIGINT is the
// kernel's ctrl-alt-del once reboot(CAD_OFF) is set.
var signalAction = map[os.Signal]action{
	syscall.SIGUSR1: actHalt,
	syscall.SIGUSR2: actPoweroff,
	syscall.SIGTERM: actReboot,
	syscall.SIGINT:  actReboot,
}

// pid1Main is the rootfs role. It returns only on an error that leaves
// nothing to supervise; shutdown ends in reboot(2).
func pid1Main(con *console) error {
	con.logf("keel-init %s (PID 1)", version)
	// ctrl-alt-del becomes SIGINT to us instead of an instant reset, so it
	// reboots cleanly.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	for _, m := range rootfsMounts {
		if _, err := mountAPI(m); err != nil {
			con.logf("WARNING: %v", err)
		}
	}
	ensureConsoleFds()
	setHostname(con)
	if err := bringUpLoopback(); err != nil {
		con.logf("WARNING: %v", err)
	}

	svcs, err := services.Load(os.DirFS("/"), services.Dir)
	if err != nil {
		// Run nothing rather than half: the console says why, and a
		// system with no services still shuts down on request.
		con.logf("ERROR: %v; starting no services", err)
		svcs = nil
	}
	osRelease := readOSRelease()
	cmdline, _ := os.ReadFile("/proc/cmdline")
	slot := os.Getenv(slotEnv)
	if slot == "" {
		slot = cmdlineValue(string(cmdline), "keel.slot")
	}
	con.logf("%d service(s), slot %s", len(svcs), firstNonEmpty(slot, "unknown"))
	if slot != "" {
		cleanESP(con)
	}
	// Only on a keel test boot: the command line names its control port.
	tb := startTestBoot(con, string(cmdline), osRelease, slot)
	if tb != nil {
		switch tb.fault {
		case wire.FaultHang:
			tb.hang(con)
		case wire.FaultFail:
			svcs = failRequired(con, svcs, tb.require)
		}
	}

	// Signals first: a child that exits before Notify would stay a zombie
	// until the next SIGCHLD, and a poweroff sent early would be lost.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// Left to the Go runtime, SIGQUIT dumps goroutines and exits, and
	// SIGPIPE on a console write exits: PID 1 exiting panics the kernel.
	// Notify, not Ignore: an ignored signal stays ignored in the services.
	signal.Notify(sigs, syscall.SIGQUIT, syscall.SIGPIPE)

	requests := make(chan action, 1)
	judge := setUpHealth(con, tb, func() {
		select {
		case requests <- actReboot:
		default:
		}
	})
	sup := newSupervisor(svcs, &realProcs{con: con}, defaultTiming, con.logf)
	sup.notify = func(e event) {
		if e.Kind == evReady {
			con.line(readyLine(osRelease, slot))
			if tb != nil {
				tb.agent.Event(wire.EventReady, "", readyLine(osRelease, slot))
			}
		}
		if judge != nil {
			judge.observe(e)
		}
	}
	exited := sup.exited
	if tb != nil {
		exited = func(pid int, st exitStatus) {
			if !tb.procs.claim(pid, st) {
				sup.exited(pid, st)
			}
		}
		tb.serve(requests)
	}
	go reap(sigchld, exited)
	go func() {
		for sig := range sigs {
			a, ok := signalAction[sig]
			if sig == syscall.SIGPIPE {
				continue
			}
			if !ok {
				con.logf("%v ignored (halt: SIGUSR1, poweroff: SIGUSR2, reboot: SIGTERM or SIGINT)", sig)
				continue
			}
			select {
			case requests <- a:
			default: // a shutdown is already under way
			}
		}
	}()
	act := sup.run(requests)
	if judge != nil {
		judge.stop()
	}
	shutdown(con, act)
	return errors.New("shutdown returned")
}

// reap waits for every child that exits, services and orphans alike: as
// PID 1 every orphan in the system becomes ours. It is the only caller of
// wait, so no exit is lost to a competing waiter.
func reap(sigchld <-chan os.Signal, exited func(int, exitStatus)) {
	for range sigchld {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			exited(pid, fromWaitStatus(syscall.WaitStatus(ws)))
		}
	}
}

func setHostname(con *console) {
	b, err := os.ReadFile("/etc/hostname")
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			con.logf("WARNING: hostname: %v", err)
		}
		return
	}
	name, _, _ := bytes.Cut(b, []byte("\n"))
	name = bytes.TrimSpace(name)
	if len(name) == 0 {
		return
	}
	if err := unix.Sethostname(name); err != nil {
		con.logf("WARNING: setting hostname %q: %v", name, err)
	}
}

// readOSRelease reads /etc/os-release, or /usr/lib/os-release as
// os-release(5) says to fall back to.
func readOSRelease() map[string]string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			return parseOSRelease(f)
		}
	}
	return map[string]string{}
}

// setUpHealth prepares boot judging if the image has a health rule; nil
// if it has none. The try counter's path comes from systemd-boot through
// efivarfs, mounted here if the machine booted through EFI.
func setUpHealth(con *console, tb *testBoot, reboot func()) *healthJudge {
	h, ok, err := services.LoadHealth(os.DirFS("/"))
	if err != nil {
		con.logf("ERROR: %v; boot health is not judged", err)
		return nil
	}
	if !ok {
		return nil
	}
	loader, boot := bootInfo(con)
	counter := "none"
	if boot.Trial != nil {
		counter = boot.Trial.Entry
	}
	con.logf("health: judging the boot: %v must stay up for %v, within %v; try counter: %s",
		h.Require, h.EffectiveGrace(), h.Deadline(), counter)
	var b blesser = espBlesser{loader}
	if tb != nil {
		b = agentBlesser{b, tb.agent}
	}
	return newHealthJudge(h, boot.Trial, b, con.logf, reboot)
}
