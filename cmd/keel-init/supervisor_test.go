package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"keel/rootfs/services"
)

// testTiming runs the real state machine in milliseconds.
var testTiming = timing{
	UpAfter:      40 * time.Millisecond,
	BudgetCount:  3,
	BudgetWindow: 10 * time.Second,
	BackoffBase:  time.Millisecond,
	BackoffMax:   4 * time.Millisecond,
	StopTimeout:  100 * time.Millisecond,
	ReadyWait:    300 * time.Millisecond,
}

// behaviour is what a fake service does on its n-th run (n from 1).
type behaviour struct {
	startErr   error
	exitAfter  time.Duration // < 0: runs until signalled
	status     exitStatus
	ignoreTerm bool
}

func forever() behaviour { return behaviour{exitAfter: -1} }

func exits(after time.Duration, code int) behaviour {
	return behaviour{exitAfter: after, status: exitStatus{Code: code}}
}

// fakeProcs stands in for fork/exec and kill: each service follows a
// script, and its exits reach the supervisor the way the reaper's do.
type fakeProcs struct {
	mu      sync.Mutex
	sup     *supervisor
	script  map[string]func(run int) behaviour
	runs    map[string]int
	pids    map[int]behaviour
	signals []string // "name SIG"
	names   map[int]string
	nextPid int
}

func newFake(script map[string]func(int) behaviour) *fakeProcs {
	return &fakeProcs{script: script, runs: map[string]int{}, pids: map[int]behaviour{}, names: map[int]string{}, nextPid: 100}
}

func (f *fakeProcs) start(svc services.Service) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[svc.Name]++
	b := f.script[svc.Name](f.runs[svc.Name])
	if b.startErr != nil {
		return 0, b.startErr
	}
	f.nextPid++
	pid := f.nextPid
	f.pids[pid] = b
	f.names[pid] = svc.Name
	if b.exitAfter >= 0 {
		time.AfterFunc(b.exitAfter, func() { f.sup.exited(pid, b.status) })
	}
	return pid, nil
}

func (f *fakeProcs) signal(pid int, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.pids[pid]
	if !ok {
		return errors.New("no such process")
	}
	f.signals = append(f.signals, fmt.Sprintf("%s %d", f.names[pid], sig))
	if sig == syscall.SIGKILL || !b.ignoreTerm {
		go f.sup.exited(pid, exitStatus{Signal: sig})
	}
	return nil
}

func (f *fakeProcs) runCount(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[name]
}

type result struct {
	act    action
	events []event
	logs   []string
}

// runSupervisor runs svcs against script; if request is non-zero it is sent
// after requestAfter. It fails the test if Run does not return in time.
func runSupervisor(t *testing.T, svcs []services.Service, script map[string]func(int) behaviour, request action, requestAfter time.Duration) (result, *fakeProcs) {
	t.Helper()
	f := newFake(script)
	var mu sync.Mutex
	var res result
	s := newSupervisor(svcs, f, testTiming, func(format string, args ...any) {
		mu.Lock()
		res.logs = append(res.logs, fmt.Sprintf(format, args...))
		mu.Unlock()
	})
	s.notify = func(e event) { res.events = append(res.events, e) } // Run's goroutine only
	f.sup = s
	req := make(chan action, 1)
	if request != 0 {
		time.AfterFunc(requestAfter, func() { req <- request })
	}
	done := make(chan action)
	go func() { done <- s.run(req) }()
	select {
	case res.act = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("supervisor did not return")
	}
	// Orphans reaped after Run returned must not block the reaper.
	s.exited(99999, exitStatus{})
	return res, f
}

func svc(name string, restart services.Restart, onExit services.OnExit) services.Service {
	return services.Service{Name: name, Command: []string{"/bin/" + name}, Restart: restart, OnExit: onExit}
}

func count(evs []event, k eventKind, name string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k && e.Service == name {
			n++
		}
	}
	return n
}

func TestSupervisor(t *testing.T) {
	always := func(b behaviour) func(int) behaviour { return func(int) behaviour { return b } }
	tests := []struct {
		name         string
		svcs         []services.Service
		script       map[string]func(int) behaviour
		request      action
		requestAfter time.Duration
		check        func(t *testing.T, r result, f *fakeProcs)
	}{
		{
			name:    "long-running services are up, then stopped by a request",
			svcs:    []services.Service{svc("a", "", ""), svc("b", services.Always, "")},
			script:  map[string]func(int) behaviour{"a": always(forever()), "b": always(forever())},
			request: actReboot, requestAfter: 600 * time.Millisecond,
			check: func(t *testing.T, r result, f *fakeProcs) {
				if r.act != actReboot {
					t.Errorf("action %v", r.act)
				}
				if count(r.events, evReady, "") != 1 {
					t.Errorf("events %v: want one ready", r.events)
				}
				slices.Sort(f.signals)
				if want := []string{"a 15", "b 15"}; !slices.Equal(f.signals, want) {
					t.Errorf("signals %v, want %v", f.signals, want)
				}
			},
		},
		{
			name:    "no services: ready at once",
			script:  map[string]func(int) behaviour{},
			request: actPoweroff, requestAfter: 10 * time.Millisecond,
			check: func(t *testing.T, r result, f *fakeProcs) {
				if len(r.events) != 1 || r.events[0].Kind != evReady || r.act != actPoweroff {
					t.Errorf("events %v, action %v", r.events, r.act)
				}
			},
		},
		{
			name:    "crash loop: restarted up to the budget, then given up",
			svcs:    []services.Service{svc("crash", services.Always, "")},
			script:  map[string]func(int) behaviour{"crash": always(exits(0, 1))},
			request: actPoweroff, requestAfter: 1200 * time.Millisecond,
			check: func(t *testing.T, r result, f *fakeProcs) {
				if n := f.runCount("crash"); n != 1+testTiming.BudgetCount {
					t.Errorf("%d runs, want %d", n, 1+testTiming.BudgetCount)
				}
				if count(r.events, evGaveUp, "crash") != 1 || count(r.events, evReady, "") != 0 {
					t.Errorf("events %v", r.events)
				}
			},
		},
		{
			name:    "always restarts after a clean exit too",
			svcs:    []services.Service{svc("a", services.Always, "")},
			script:  map[string]func(int) behaviour{"a": func(n int) behaviour { return map[bool]behaviour{true: exits(0, 0), false: forever()}[n == 1] }},
			request: actPoweroff, requestAfter: 600 * time.Millisecond,
			check: func(t *testing.T, r result, f *fakeProcs) {
				if f.runCount("a") != 2 || count(r.events, evReady, "") != 1 {
					t.Errorf("%d runs, events %v", f.runCount("a"), r.events)
				}
			},
		},
		{
			name:    "on-failure: a failure is restarted, a success is not and counts as up",
			svcs:    []services.Service{svc("job", services.OnFailure, "")},
			script:  map[string]func(int) behaviour{"job": func(n int) behaviour { return exits(time.Millisecond, 2-n) }},
			request: actPoweroff, requestAfter: 600 * time.Millisecond,
			check: func(t *testing.T, r result, f *fakeProcs) {
				if f.runCount("job") != 2 {
					t.Errorf("%d runs, want 2", f.runCount("job"))
				}
				if count(r.events, evUp, "job") != 1 || count(r.events, evReady, "") != 1 {
					t.Errorf("events %v", r.events)
				}
				if len(f.signals) != 0 {
					t.Errorf("signalled %v; nothing was running", f.signals)
				}
			},
		},
		{
			name: "on_exit poweroff waits for the ready line, then stops the rest",
			svcs: []services.Service{svc("daemon", "", ""), svc("test", services.Never, services.Poweroff)},
			script: map[string]func(int) behaviour{
				"daemon": always(forever()),
				"test":   always(exits(5*time.Millisecond, 0)),
			},
			check: func(t *testing.T, r result, f *fakeProcs) {
				if r.act != actPoweroff {
					t.Errorf("action %v", r.act)
				}
				if count(r.events, evReady, "") != 1 {
					t.Errorf("events %v: want ready before the poweroff", r.events)
				}
				if !slices.Equal(f.signals, []string{"daemon 15"}) {
					t.Errorf("signals %v", f.signals)
				}
			},
		},
		{
			name: "on_exit reboot goes ahead after ReadyWait when another service never comes up",
			svcs: []services.Service{svc("broken", services.Always, ""), svc("test", services.Never, services.Reboot)},
			script: map[string]func(int) behaviour{
				"broken": always(exits(0, 1)),
				"test":   always(exits(0, 0)),
			},
			check: func(t *testing.T, r result, f *fakeProcs) {
				if r.act != actReboot || count(r.events, evReady, "") != 0 {
					t.Errorf("action %v, events %v", r.act, r.events)
				}
			},
		},
		{
			name:   "a service that cannot start counts as failed and still triggers on_exit",
			svcs:   []services.Service{svc("missing", services.Never, services.Poweroff)},
			script: map[string]func(int) behaviour{"missing": always(behaviour{startErr: errors.New("no such file")})},
			check: func(t *testing.T, r result, f *fakeProcs) {
				if r.act != actPoweroff || f.runCount("missing") != 1 {
					t.Errorf("action %v, runs %d", r.act, f.runCount("missing"))
				}
			},
		},
		{
			name:    "a failure that is not restarted is given up on, saying how",
			svcs:    []services.Service{svc("job", services.Never, ""), svc("daemon", "", "")},
			script:  map[string]func(int) behaviour{"job": always(exits(time.Millisecond, 3)), "daemon": always(forever())},
			request: actPoweroff, requestAfter: 400 * time.Millisecond,
			check: func(t *testing.T, r result, f *fakeProcs) {
				i := slices.IndexFunc(r.events, func(e event) bool { return e.Kind == evGaveUp })
				if i < 0 || r.events[i].Service != "job" || r.events[i].Detail != "exited with status 3; not restarted (restart=never)" {
					t.Errorf("events %+v: want job given up on", r.events)
				}
				if count(r.events, evUp, "job") != 0 || count(r.events, evReady, "") != 0 {
					t.Errorf("events %+v: a failed job is not up", r.events)
				}
			},
		},
		{
			name: "a request while on_exit waits for the ready line: on_exit goes first",
			svcs: []services.Service{svc("slow", "", ""), svc("test", services.Never, services.Poweroff)},
			script: map[string]func(int) behaviour{
				"slow": always(behaviour{exitAfter: -1}),
				"test": always(exits(0, 1)),
			},
			// Before UpAfter: slow is not up, so the poweroff waits.
			request: actReboot, requestAfter: 10 * time.Millisecond,
			check: func(t *testing.T, r result, f *fakeProcs) {
				if r.act != actPoweroff {
					t.Errorf("action %v, want poweroff", r.act)
				}
			},
		},
		{
			name:    "a service ignoring SIGTERM is killed after StopTimeout",
			svcs:    []services.Service{svc("stubborn", "", "")},
			script:  map[string]func(int) behaviour{"stubborn": always(behaviour{exitAfter: -1, ignoreTerm: true})},
			request: actHalt, requestAfter: 60 * time.Millisecond,
			check: func(t *testing.T, r result, f *fakeProcs) {
				if !slices.Equal(f.signals, []string{"stubborn 15", "stubborn 9"}) || r.act != actHalt {
					t.Errorf("signals %v, action %v", f.signals, r.act)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, f := runSupervisor(t, tc.svcs, tc.script, tc.request, tc.requestAfter)
			tc.check(t, r, f)
			if t.Failed() {
				for _, l := range r.logs {
					t.Log(l)
				}
			}
		})
	}
}

func TestOrphanExitIgnored(t *testing.T) {
	f := newFake(map[string]func(int) behaviour{"a": func(int) behaviour { return forever() }})
	s := newSupervisor([]services.Service{svc("a", "", "")}, f, testTiming, func(string, ...any) {})
	f.sup = s
	if act := s.handle(exitEvent{pid: 4242, status: exitStatus{Code: 1}}); act != 0 {
		t.Errorf("orphan exit gave action %v", act)
	}
}
