package main

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"keel/rootfs/services"
)

func TestWantsRestart(t *testing.T) {
	ok := exitStatus{}
	fail := exitStatus{Code: 3}
	sig := exitStatus{Signal: syscall.SIGSEGV}
	noStart := exitStatus{StartErr: errors.New("ENOENT")}
	for _, tc := range []struct {
		p    services.Restart
		st   exitStatus
		want bool
	}{
		{services.Always, ok, true},
		{services.Always, fail, true},
		{services.OnFailure, ok, false},
		{services.OnFailure, fail, true},
		{services.OnFailure, sig, true},
		{services.OnFailure, noStart, true},
		{services.Never, fail, false},
		{services.Never, ok, false},
	} {
		if got := wantsRestart(tc.p, tc.st); got != tc.want {
			t.Errorf("wantsRestart(%s, %v) = %v, want %v", tc.p, tc.st, got, tc.want)
		}
	}
}

func TestRestarterBudgetAndBackoff(t *testing.T) {
	tm := defaultTiming
	t0 := time.Unix(1000, 0)
	var r restarter
	fail := exitStatus{Code: 1}
	// Five quick crashes: delays double from the base.
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond}
	now := t0
	for i, w := range want {
		d := r.next(services.Always, fail, now, tm)
		if !d.Restart || d.Delay != w || d.Count != i+1 {
			t.Fatalf("crash %d: %+v, want restart after %v", i+1, d, w)
		}
		now = now.Add(time.Second)
	}
	// The sixth within the window: give up.
	if d := r.next(services.Always, fail, now, tm); d.Restart || !d.GaveUp {
		t.Fatalf("sixth crash in the window: %+v, want give up", d)
	}
	// Long after, the window is empty again: restarted with the base delay.
	if d := r.next(services.Always, fail, now.Add(time.Minute), tm); !d.Restart || d.Delay != tm.BackoffBase || d.Count != 1 {
		t.Fatalf("crash after a quiet minute: %+v", d)
	}
}

func TestBackoffCapped(t *testing.T) {
	tm := defaultTiming
	tm.BudgetCount = 100
	var r restarter
	var d decision
	for i := range 20 {
		d = r.next(services.Always, exitStatus{}, time.Unix(int64(i), 0), tm)
	}
	if d.Delay != tm.BackoffMax {
		t.Errorf("delay after 20 restarts %v, want the cap %v", d.Delay, tm.BackoffMax)
	}
}

func TestExitStatusString(t *testing.T) {
	for _, tc := range []struct {
		st   exitStatus
		want string
	}{
		{exitStatus{}, "exited with status 0"},
		{exitStatus{Code: 2}, "exited with status 2"},
		{exitStatus{Signal: syscall.SIGKILL}, "killed by signal 9 (killed)"},
		{exitStatus{StartErr: errors.New("boom")}, "failed to start: boom"},
		{fromWaitStatus(syscall.WaitStatus(3 << 8)), "exited with status 3"},
		{fromWaitStatus(syscall.WaitStatus(syscall.SIGTERM)), "killed by signal 15 (terminated)"},
	} {
		if got := tc.st.String(); got != tc.want {
			t.Errorf("%#v: %q, want %q", tc.st, got, tc.want)
		}
	}
}
