package poll

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Updater is what a polling device does; keelctl implements it over the
// registry or https source, the installer and the init system.
type Updater interface {
	// Check says whether the source has a version to install: newer
	// than the running one and compatible with it.
	Check(ctx context.Context) (newer bool, version string, err error)
	// Install installs it into the other slot as the next boot's trial.
	Install(ctx context.Context) error
	// Reboot asks the init system for a clean reboot.
	Reboot() error
}

// Clock is time, for tests.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// FirstRetry is the wait after a first failure; it doubles with each
// failure in a row, up to the interval.
const FirstRetry = 15 * time.Second

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// Run follows c until ctx ends: the first check comes after a random part
// of the jitter (a fleet that powered up together spreads out), later ones
// after the interval plus jitter. Once something is installed it stops
// checking (the other slot holds the trial) and reboots as the policy
// says: at once, at the window's start, or never by itself, waiting then
// for the reboot someone else makes. A failed check or install is logged
// and tried again sooner: after 15 s, then 30 s, doubling up to the
// interval (a network that comes up after the service, a registry back
// from an outage), each wait with its share of jitter.
func Run(ctx context.Context, c Config, u Updater, clk Clock, r *rand.Rand, log *slog.Logger) error {
	reboot, err := ParseReboot(c.Reboot)
	if err != nil {
		return err
	}
	first := time.Duration(0)
	if c.Jitter > 0 {
		first = time.Duration(r.Int64N(int64(c.Jitter)))
	}
	log.Info("polling for updates", "source", c.Source, "interval", time.Duration(c.Interval), "reboot", c.Reboot, "first check in", first.Round(time.Second))
	wait, failures := first, 0
	retry := func() time.Duration {
		failures++
		return min(c.Next(r), FirstRetry<<min(failures-1, 16))
	}
	for {
		if err := clk.Sleep(ctx, wait); err != nil {
			return err
		}
		wait = c.Next(r)
		newer, version, err := u.Check(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait = retry()
			log.Warn("update check failed; trying again later", "source", c.Source, "err", err, "next in", wait.Round(time.Second))
			continue
		}
		failures = 0
		if !newer {
			log.Info("up to date", "source", c.Source, "next check in", wait.Round(time.Second))
			continue
		}
		log.Info("installing", "version", version)
		if err := u.Install(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait = retry()
			log.Warn("install failed; trying again later", "version", version, "err", err, "next in", wait.Round(time.Second))
			continue
		}
		return rebootWhenAllowed(ctx, reboot, version, u, clk, log)
	}
}

func rebootWhenAllowed(ctx context.Context, reboot Reboot, version string, u Updater, clk Clock, log *slog.Logger) error {
	d := reboot.Wait(clk.Now())
	if d < 0 {
		log.Info("installed; it is tried at the next reboot (reboot: manual)", "version", version)
		<-ctx.Done()
		return ctx.Err()
	}
	if d > 0 {
		log.Info("installed; rebooting in the window", "version", version, "in", d.Round(time.Minute))
		if err := clk.Sleep(ctx, d); err != nil {
			return err
		}
	}
	log.Info("rebooting into the update", "version", version)
	if err := u.Reboot(); err != nil {
		return errors.Join(errors.New("reboot into the update"), err)
	}
	<-ctx.Done()
	return ctx.Err()
}
