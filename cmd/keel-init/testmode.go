package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"keel/bootloader"
	"keel/cmd/keel-init/testagent"
	"keel/image/updatetest/wire"
	"keel/rootfs/services"
)

// helloTimeout is how long a keel test boot waits for the host's answer
// before it boots as if untested.
const helloTimeout = 30 * time.Second

// testBoot is keel test's hold on this boot (package testagent), set up
// only when the kernel command line names a control port.
type testBoot struct {
	agent   *testagent.Agent
	fault   string
	require []string // the services the health rule requires
	procs   *agentProcs
}

// startTestBoot greets keel test when the command line asks for it (and
// returns nil otherwise, having opened nothing).
func startTestBoot(con *console, cmdline string, osRelease map[string]string, slot string) *testBoot {
	port := cmdlineValue(cmdline, wire.Param)
	if port == "" {
		return nil
	}
	a, err := testagent.Open(port, con.logf)
	if err != nil {
		con.logf("WARNING: keel test: %v", err)
		return nil
	}
	h := wire.Hello{Name: osRelease["IMAGE_ID"], Version: osRelease["IMAGE_VERSION"], Slot: slot}
	if health, ok, err := services.LoadHealth(os.DirFS("/")); err == nil && ok {
		h.Require = health.Require
	}
	if _, boot := bootInfo(con); boot.Trial != nil {
		h.Trial = boot.Trial.Entry
	}
	con.logf("keel test: control port /dev/%s", port)
	fault, err := a.Hello(h, helloTimeout)
	if err != nil {
		con.logf("WARNING: keel test: %v; booting without it", err)
	}
	if fault != "" {
		con.logf("keel test: fault %q injected into this boot", fault)
	}
	return &testBoot{agent: a, fault: fault, require: h.Require, procs: &agentProcs{con: con, waiting: map[int]chan exitStatus{}}}
}

// failRequired is FaultFail: each service the health rule requires gets a
// command that cannot start, which the supervisor treats as a failed run,
// restart after restart, until it gives up on it.
func failRequired(con *console, svcs []services.Service, require []string) []services.Service {
	req := map[string]bool{}
	for _, r := range require {
		req[r] = true
	}
	out := make([]services.Service, len(svcs))
	for i, s := range svcs {
		if req[s.Name] {
			con.logf("keel test: service %s made to fail", s.Name)
			s.Command = []string{"/keel test fault: fail"}
		}
		out[i] = s
	}
	return out
}

// hang is FaultHang: the boot stops here, before any service, with no
// verdict ever; the host plays the watchdog that resets the machine.
func (tb *testBoot) hang(con *console) {
	con.logf("keel test: hanging on purpose: no service starts, no verdict comes")
	tb.agent.Event(wire.EventHung, "", "")
	for {
		time.Sleep(time.Hour)
	}
}

// serve runs the host's requests; shutdown asks PID 1's main loop.
func (tb *testBoot) serve(requests chan<- action) {
	go tb.agent.Serve(agentRunner{tb.procs, requests})
}

type agentRunner struct {
	procs    *agentProcs
	requests chan<- action
}

func (r agentRunner) Run(argv []string, quiet bool, out func(string)) (int, error) {
	return r.procs.run(argv, quiet, out)
}

func (r agentRunner) Shutdown(op string) {
	a := actReboot
	if op == wire.OpPoweroff {
		a = actPoweroff
	}
	select {
	case r.requests <- a:
	default: // a shutdown is already under way
	}
}

// agentProcs runs the host's commands. PID 1's reaper waits for every
// child; claim hands it the exits of these.
type agentProcs struct {
	con     *console
	mu      sync.Mutex
	waiting map[int]chan exitStatus
}

func (p *agentProcs) run(argv []string, quiet bool, out func(string)) (int, error) {
	argv0, err := lookPath(argv[0], defaultPath)
	if err != nil {
		return -1, err
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return -1, err
	}
	defer devnull.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{"PATH=" + defaultPath, "HOME=/root", "TERM=dumb"},
		Files: []uintptr{devnull.Fd(), pw.Fd(), pw.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	// Registered before the reaper can see the exit: it takes the lock
	// first.
	done := make(chan exitStatus, 1)
	p.mu.Lock()
	pid, err := syscall.ForkExec(argv0, argv, attr)
	if err == nil {
		p.waiting[pid] = done
	}
	p.mu.Unlock()
	pw.Close()
	if err != nil {
		pr.Close()
		return -1, fmt.Errorf("exec %s: %w", argv0, err)
	}
	p.con.logf("keel test: running %s (pid %d)", strings.Join(argv, " "), pid)
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 4096), wire.MaxLine/2)
	for sc.Scan() {
		if !quiet {
			p.con.line("[keel test] " + sc.Text())
		}
		out(sc.Text())
	}
	pr.Close()
	st := <-done
	if st.StartErr != nil {
		return -1, st.StartErr
	}
	code := st.Code
	if st.Signal != 0 {
		code = 128 + int(st.Signal)
	}
	p.con.logf("keel test: %s: exit status %d", argv[0], code)
	return code, nil
}

// claim takes pid's exit if it is one of ours.
func (p *agentProcs) claim(pid int, st exitStatus) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, ok := p.waiting[pid]
	if ok {
		delete(p.waiting, pid)
		ch <- st
	}
	return ok
}

// agentBlesser tells keel test the health judge's verdict and the
// blessing as they are recorded.
type agentBlesser struct {
	blesser
	agent *testagent.Agent
}

func (b agentBlesser) markGood(t bootloader.Trial) error {
	err := b.blesser.markGood(t)
	if err == nil {
		b.agent.Event(wire.EventBlessed, "", t.Entry)
	}
	return err
}

func (b agentBlesser) record(t bootloader.Trial, result, stage, reason string) (string, error) {
	where, err := b.blesser.record(t, result, stage, reason)
	b.agent.Event(wire.EventVerdict, result, reason)
	return where, err
}
