package main

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"keel/rootfs/services"
)

// action is how the system ends: what PID 1 asks the kernel for once the
// services are stopped.
type action int

const (
	actPoweroff action = iota + 1
	actReboot
	actHalt
)

func (a action) String() string {
	switch a {
	case actPoweroff:
		return "poweroff"
	case actReboot:
		return "reboot"
	case actHalt:
		return "halt"
	}
	return "none"
}

func actionFor(o services.OnExit) action {
	switch o {
	case services.Poweroff:
		return actPoweroff
	case services.Reboot:
		return actReboot
	}
	return 0
}

// eventKind is what the supervisor tells an observer: the ready line, and
// the health judge ("up" of every required service for the grace period
// makes the boot good, "gave up" of one makes it bad).
type eventKind int

const (
	evUp     eventKind = iota + 1 // ran for UpAfter, or finished successfully for good
	evExited                      // a run ended (it may be restarted)
	evGaveUp                      // failed and stays down: restart budget spent, or its policy does not restart it
	evReady                       // every service is up (once per boot)
)

type event struct {
	Kind    eventKind
	Service string
	Detail  string // evGaveUp: how it failed, for people
}

// procs is the supervisor's window on processes, so that tests can run it
// without forking anything.
type procs interface {
	// start starts svc and returns its pid; the process is the leader of
	// its own process group.
	start(svc services.Service) (pid int, err error)
	// signal sends sig to the process group of pid.
	signal(pid int, sig syscall.Signal) error
}

type svcState struct {
	svc       services.Service
	pid       int  // 0 when not running
	gen       int  // counts starts; a timer for an older run is stale
	up        bool // ran for UpAfter, or finished successfully for good
	restarter restarter
}

// supervisor runs the services: it starts them in name order, restarts
// them per policy, and stops them all on shutdown. All state lives in Run's
// goroutine; everything else (the reaper, timers) only posts events.
type supervisor struct {
	procs  procs
	t      timing
	logf   func(format string, args ...any)
	notify func(event) // may be nil

	svcs    []*svcState
	byPid   map[int]*svcState
	ready   bool
	pending action // an on_exit shutdown waiting for the ready line
	events  chan any
	done    chan struct{}
}

type exitEvent struct {
	pid    int
	status exitStatus
}

type timerKind int

const (
	tUpCheck timerKind = iota + 1
	tRestart
	tReadyWait
)

type timerEvent struct {
	kind timerKind
	s    *svcState
	gen  int
}

func newSupervisor(svcs []services.Service, p procs, t timing, logf func(string, ...any)) *supervisor {
	s := &supervisor{
		procs:  p,
		t:      t,
		logf:   logf,
		byPid:  map[int]*svcState{},
		events: make(chan any, 64),
		done:   make(chan struct{}),
	}
	for _, svc := range svcs {
		s.svcs = append(s.svcs, &svcState{svc: svc})
	}
	return s
}

// exited is called by the reaper for every child it reaps; pids that are not
// services (orphans reparented to PID 1) are ignored by run. Safe to call
// from any goroutine, also after run returned.
func (s *supervisor) exited(pid int, st exitStatus) {
	s.post(exitEvent{pid, st})
}

func (s *supervisor) post(ev any) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

func (s *supervisor) after(d time.Duration, ev timerEvent) {
	time.AfterFunc(d, func() { s.post(ev) })
}

// emit tells the observer, synchronously: what it does about the event
// (a verdict) is done before the supervisor acts on the service's exit.
func (s *supervisor) emit(k eventKind, name, detail string) {
	if s.notify != nil {
		s.notify(event{k, name, detail})
	}
}

// run starts every service and supervises them until a shutdown is
// requested, on requests or by a service's on_exit; then it stops them all
// and returns the action to take.
func (s *supervisor) run(requests <-chan action) action {
	defer close(s.done)
	var act action
	for _, st := range s.svcs {
		if act = s.start(st); act != 0 {
			break
		}
	}
	if act == 0 {
		s.checkReady()
	}
	for act == 0 {
		select {
		case a := <-requests:
			act = a
			if s.pending != 0 {
				// A service's on_exit decided first; it only waits for
				// the ready line.
				s.logf("%s requested while %s (on_exit) waits: %s goes first", a, s.pending, s.pending)
				act = s.pending
			} else {
				s.logf("%s requested", a)
			}
		case ev := <-s.events:
			act = s.handle(ev)
		}
	}
	s.stopAll()
	return act
}

func (s *supervisor) handle(ev any) action {
	switch ev := ev.(type) {
	case exitEvent:
		st, ok := s.byPid[ev.pid]
		if !ok {
			return 0
		}
		delete(s.byPid, ev.pid)
		st.pid = 0
		return s.afterExit(st, ev.pid, ev.status)
	case timerEvent:
		if ev.s != nil && ev.gen != ev.s.gen {
			return 0
		}
		switch ev.kind {
		case tUpCheck:
			if ev.s.pid != 0 && !ev.s.up {
				ev.s.up = true
				s.emit(evUp, ev.s.svc.Name, "")
				s.checkReady()
				return s.pendingIfReady()
			}
		case tRestart:
			return s.start(ev.s)
		case tReadyWait:
			if s.pending != 0 {
				s.logf("not every service came up in %v; going ahead with %s", s.t.ReadyWait, s.pending)
				return s.pending
			}
		}
	}
	return 0
}

// start starts one run of st; a failure to start is handled like an exit,
// so it may return a shutdown action.
func (s *supervisor) start(st *svcState) action {
	st.gen++
	st.up = false
	pid, err := s.procs.start(st.svc)
	if err != nil {
		return s.afterExit(st, 0, exitStatus{StartErr: err})
	}
	st.pid = pid
	s.byPid[pid] = st
	s.logf("started %s (pid %d): %s", st.svc.Name, pid, strings.Join(st.svc.Command, " "))
	s.after(s.t.UpAfter, timerEvent{tUpCheck, st, st.gen})
	return 0
}

// afterExit decides what follows the end of a run and returns a shutdown
// action if the service's on_exit asks for one now.
func (s *supervisor) afterExit(st *svcState, pid int, es exitStatus) action {
	name := st.svc.Name
	if pid != 0 {
		name += " (pid " + strconv.Itoa(pid) + ")"
	}
	s.emit(evExited, st.svc.Name, "")
	d := st.restarter.next(st.svc.RestartPolicy(), es, time.Now(), s.t)
	switch {
	case d.Restart:
		s.logf("%s %v; restarting in %v (restart %d of %d within %v)",
			name, es, d.Delay, d.Count, s.t.BudgetCount, s.t.BudgetWindow)
		s.after(d.Delay, timerEvent{tRestart, st, st.gen})
		return 0
	case d.GaveUp:
		s.logf("%s %v; FAILED: restarted %d times within %v, giving up", name, es, d.Count, s.t.BudgetWindow)
		s.emit(evGaveUp, st.svc.Name, fmt.Sprintf("%v; restarted %d times within %v, given up", es, d.Count, s.t.BudgetWindow))
	default:
		s.logf("%s %v; not restarting (restart=%s)", name, es, st.svc.RestartPolicy())
		if es.success() {
			// A one-shot that finished its job counts as up, for good
			// (for the health judge too, which saw the exit).
			st.up = true
			s.emit(evUp, st.svc.Name, "")
			s.checkReady()
		} else {
			// Gone for good after a failure: for the health judge as
			// final as a spent budget, and judged before on_exit acts.
			s.emit(evGaveUp, st.svc.Name, fmt.Sprintf("%v; not restarted (restart=%s)", es, st.svc.RestartPolicy()))
		}
	}
	act := actionFor(st.svc.OnExit)
	if act == 0 {
		return s.pendingIfReady()
	}
	s.logf("%s is gone and asks for %s (on_exit)", st.svc.Name, act)
	if s.ready {
		return act
	}
	// The line a watcher waits for should come before the system goes
	// down, so wait a little for the other services to come up.
	s.pending = act
	s.after(s.t.ReadyWait, timerEvent{kind: tReadyWait})
	return 0
}

func (s *supervisor) pendingIfReady() action {
	if s.ready && s.pending != 0 {
		return s.pending
	}
	return 0
}

func (s *supervisor) checkReady() {
	if s.ready {
		return
	}
	for _, st := range s.svcs {
		if !st.up {
			return
		}
	}
	s.ready = true
	s.emit(evReady, "", "")
}

// stopAll sends SIGTERM to every running service's process group, waits up
// to StopTimeout for them to exit, then sends SIGKILL to what is left and
// waits for those exits too (SIGKILL cannot be refused, so this ends).
func (s *supervisor) stopAll() {
	for _, st := range s.svcs {
		st.gen++ // pending restarts and up checks are now stale
	}
	running := func() int { return len(s.byPid) }
	if running() == 0 {
		return
	}
	for pid, st := range s.byPid {
		s.logf("stopping %s (pid %d)", st.svc.Name, pid)
		if err := s.procs.signal(pid, syscall.SIGTERM); err != nil {
			s.logf("stopping %s: %v", st.svc.Name, err)
		}
	}
	timeout := time.NewTimer(s.t.StopTimeout)
	defer timeout.Stop()
	killed := false
	for running() > 0 {
		select {
		case ev := <-s.events:
			if e, ok := ev.(exitEvent); ok {
				if st, ok := s.byPid[e.pid]; ok {
					delete(s.byPid, e.pid)
					st.pid = 0
					s.logf("%s (pid %d) %v", st.svc.Name, e.pid, e.status)
				}
			}
		case <-timeout.C:
			if killed {
				// Unkillable (stuck in the kernel, D state): nothing more to
				// do; the reboot will end it.
				s.logf("%d service(s) did not die after SIGKILL; going on", running())
				return
			}
			for pid, st := range s.byPid {
				s.logf("%s (pid %d) did not stop in %v; killing it", st.svc.Name, pid, s.t.StopTimeout)
				_ = s.procs.signal(pid, syscall.SIGKILL)
			}
			killed = true
			timeout.Reset(s.t.StopTimeout)
		}
	}
}
