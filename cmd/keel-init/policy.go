package main

import (
	"fmt"
	"syscall"
	"time"

	"keel/rootfs/services"
)

// timing holds every duration the supervisor works with, so tests can run
// the same state machine in milliseconds.
type timing struct {
	UpAfter      time.Duration // running this long counts as started
	BudgetCount  int           // at most this many restarts ...
	BudgetWindow time.Duration // ... within this window, then give up
	BackoffBase  time.Duration // delay before the first restart in the window
	BackoffMax   time.Duration // delays double up to this
	StopTimeout  time.Duration // SIGTERM to SIGKILL at shutdown
	ReadyWait    time.Duration // an on_exit shutdown waits this long for the ready line
}

var defaultTiming = timing{
	UpAfter:      time.Second,
	BudgetCount:  5,
	BudgetWindow: 30 * time.Second,
	BackoffBase:  200 * time.Millisecond,
	BackoffMax:   5 * time.Second,
	StopTimeout:  5 * time.Second,
	ReadyWait:    5 * time.Second,
}

// exitStatus is how a service run ended: an exit code, a signal, or a
// failure to start at all.
type exitStatus struct {
	Code     int
	Signal   syscall.Signal // non-zero if killed by a signal
	StartErr error          // non-nil if the process never ran
}

func (e exitStatus) success() bool {
	return e.StartErr == nil && e.Signal == 0 && e.Code == 0
}

func (e exitStatus) String() string {
	switch {
	case e.StartErr != nil:
		return "failed to start: " + e.StartErr.Error()
	case e.Signal != 0:
		return fmt.Sprintf("killed by signal %d (%v)", int(e.Signal), e.Signal)
	}
	return fmt.Sprintf("exited with status %d", e.Code)
}

func fromWaitStatus(ws syscall.WaitStatus) exitStatus {
	if ws.Signaled() {
		return exitStatus{Signal: ws.Signal()}
	}
	return exitStatus{Code: ws.ExitStatus()}
}

// decision is what to do after a service exited.
type decision struct {
	Restart bool
	Delay   time.Duration // before restarting
	GaveUp  bool          // the policy wanted a restart but the budget is spent
	Count   int           // restarts in the current window, this one included
}

// restarter is one service's restart budget: the times of its recent
// restarts. Restarts older than the window drop out, so a service that
// crashes now and then is restarted forever, with a short delay, while one
// that crashes in a loop is given up on within seconds.
type restarter struct {
	recent []time.Time
}

// wantsRestart applies the policy alone, without the budget.
func wantsRestart(p services.Restart, st exitStatus) bool {
	switch p {
	case services.Always:
		return true
	case services.OnFailure:
		return !st.success()
	}
	return false
}

func (r *restarter) next(p services.Restart, st exitStatus, now time.Time, t timing) decision {
	if !wantsRestart(p, st) {
		return decision{}
	}
	kept := r.recent[:0]
	for _, at := range r.recent {
		if now.Sub(at) < t.BudgetWindow {
			kept = append(kept, at)
		}
	}
	r.recent = kept
	if len(r.recent) >= t.BudgetCount {
		return decision{GaveUp: true, Count: len(r.recent)}
	}
	r.recent = append(r.recent, now)
	delay := t.BackoffBase
	for i := 1; i < len(r.recent) && delay < t.BackoffMax; i++ {
		delay *= 2
	}
	return decision{Restart: true, Delay: min(delay, t.BackoffMax), Count: len(r.recent)}
}
