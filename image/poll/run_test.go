package poll

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock advances on Sleep; it stops the run once it has slept past end.
type fakeClock struct {
	now    time.Time
	end    time.Time
	cancel context.CancelFunc
	slept  []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	if c.now.After(c.end) {
		c.cancel()
		return context.Canceled
	}
	return ctx.Err()
}

// fakeUpdater has an update from the third check on; its first install
// fails.
type fakeUpdater struct {
	clk              *fakeClock
	checks, installs int
	installFails     int
	rebootedAt       time.Time
	checkErr         error
}

func (u *fakeUpdater) Check(context.Context) (bool, string, error) {
	u.checks++
	if u.checkErr != nil && u.checks == 1 {
		return false, "", u.checkErr
	}
	return u.checks >= 3, "2.0.0", nil
}

func (u *fakeUpdater) Install(context.Context) error {
	u.installs++
	if u.installs <= u.installFails {
		return errors.New("network down")
	}
	return nil
}

// Reboot ends the run, as a reboot would.
func (u *fakeUpdater) Reboot() error { u.rebootedAt = u.clk.now; u.clk.cancel(); return nil }

func TestRun(t *testing.T) {
	start := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		reboot       string
		installFails int
		checkErr     error
		wantChecks   int
		wantInstalls int
		wantReboot   time.Time // zero: none
	}{
		{"immediate", "immediate", 0, nil, 3, 1, start.Add(2 * time.Hour)},
		{"a failed install is tried again soon", "immediate", 1, nil, 4, 2, start.Add(2*time.Hour + FirstRetry)},
		{"a failed check is tried again soon", "immediate", 0, errors.New("503"), 3, 1, start.Add(time.Hour + FirstRetry)},
		{"window", "window 02:00-04:00", 0, nil, 3, 1, time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)},
		{"manual", "manual", 0, nil, 3, 1, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clk := &fakeClock{now: start, end: start.Add(48 * time.Hour), cancel: cancel}
			u := &fakeUpdater{clk: clk, installFails: tc.installFails, checkErr: tc.checkErr}
			c := Config{Source: "oci://r/x:stable", Interval: Duration(time.Hour), Reboot: tc.reboot}
			if tc.reboot == "manual" {
				go func() { time.Sleep(50 * time.Millisecond); cancel() }()
			}
			err := Run(ctx, c, u, clk, rand.New(rand.NewPCG(1, 1)), slog.New(slog.DiscardHandler))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v, want it to run until cancelled", err)
			}
			if u.checks != tc.wantChecks || u.installs != tc.wantInstalls || !u.rebootedAt.Equal(tc.wantReboot) {
				t.Errorf("%d checks, %d installs, reboot at %v; want %d, %d, %v", u.checks, u.installs, u.rebootedAt, tc.wantChecks, tc.wantInstalls, tc.wantReboot)
			}
		})
	}
}

func TestRunJitter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{now: start, end: start.Add(10 * time.Hour), cancel: cancel}
	u := &fakeUpdater{clk: clk}
	u.checks = -100 // never newer within the run
	c := Config{Source: "oci://r/x:stable", Interval: Duration(time.Hour), Jitter: Duration(6 * time.Minute), Reboot: "manual"}
	_ = Run(ctx, c, u, clk, rand.New(rand.NewPCG(3, 4)), slog.New(slog.DiscardHandler))
	if first := clk.slept[0]; first < 0 || first >= 6*time.Minute {
		t.Errorf("first check after %v, want within the jitter", first)
	}
	for _, d := range clk.slept[1:] {
		if d < time.Hour || d >= time.Hour+6*time.Minute {
			t.Errorf("waited %v between checks, want within [1h, 1h6m)", d)
		}
	}
}
