package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"keel/rootfs/services"
)

// outcome is the judgement on a boot (issue 4, "blessing").
type outcome int

const (
	undecided outcome = iota
	healthy           // every required service stayed up for the grace period
	unhealthy         // a required service failed for good, or the deadline passed first
)

// healthTracker judges the boot from the supervisor's events: healthy
// once every required service has been up, without exiting, for the grace
// period; unhealthy if one of them fails for good before that (its
// restart budget spent, or its policy does not restart it), or if the
// boot is not healthy by the deadline (services.Health.Deadline: a service
// that keeps restarting within its budget never passes otherwise). It
// only judges once. Pure: the caller supplies the time and runs the timer.
type healthTracker struct {
	require  map[string]bool
	grace    time.Duration
	start    time.Time
	deadline time.Time
	upSince  map[string]time.Time // required services up now, since when
	ended    map[string]int       // runs of each required service that ended
	outcome  outcome
	reason   string
}

func newHealthTracker(h services.Health, start time.Time) *healthTracker {
	t := &healthTracker{
		require:  map[string]bool{},
		grace:    h.EffectiveGrace(),
		start:    start,
		deadline: start.Add(h.Deadline()),
		upSince:  map[string]time.Time{},
		ended:    map[string]int{},
	}
	for _, r := range h.Require {
		t.require[r] = true
	}
	return t
}

// observe takes one supervisor event. A finished one-shot counts as up for
// good (its evUp comes after its evExited).
func (t *healthTracker) observe(e event, now time.Time) {
	if t.outcome != undecided || !t.require[e.Service] {
		return
	}
	switch e.Kind {
	case evUp:
		t.upSince[e.Service] = now
	case evExited:
		delete(t.upSince, e.Service)
		t.ended[e.Service]++
	case evGaveUp:
		t.outcome, t.reason = unhealthy, "required service "+e.Service+" failed"
		if e.Detail != "" {
			t.reason += ": " + e.Detail
		}
	}
}

// due returns when the boot will be healthy if nothing changes; ok is
// false while a required service is down or a verdict is in.
func (t *healthTracker) due() (at time.Time, ok bool) {
	if t.outcome != undecided {
		return time.Time{}, false
	}
	at = t.start.Add(t.grace) // with nothing required: alive for the grace period
	for r := range t.require {
		since, up := t.upSince[r]
		if !up {
			return time.Time{}, false
		}
		if s := since.Add(t.grace); s.After(at) {
			at = s
		}
	}
	return at, true
}

// next returns when check should run next: when the boot would be healthy,
// or the deadline, whichever comes first; ok is false once decided.
func (t *healthTracker) next() (at time.Time, ok bool) {
	if t.outcome != undecided {
		return time.Time{}, false
	}
	if at, ok := t.due(); ok && at.Before(t.deadline) {
		return at, true
	}
	return t.deadline, true
}

// check decides healthy if the grace period has passed for everything,
// unhealthy if the deadline has passed first.
func (t *healthTracker) check(now time.Time) outcome {
	if t.outcome != undecided {
		return t.outcome
	}
	names := make([]string, 0, len(t.require))
	for r := range t.require {
		names = append(names, r)
	}
	sort.Strings(names)
	if at, ok := t.due(); ok && !now.Before(at) {
		t.outcome = healthy
		t.reason = "up for " + t.grace.String()
		if len(names) > 0 {
			t.reason = strings.Join(names, ", ") + " " + t.reason
		}
		return t.outcome
	}
	if now.Before(t.deadline) {
		return undecided
	}
	var late []string
	for _, r := range names {
		s := r + " not up"
		if since, up := t.upSince[r]; up {
			if now.Sub(since) >= t.grace {
				continue
			}
			s = fmt.Sprintf("%s up for only %v", r, now.Sub(since).Round(time.Second))
		}
		if n := t.ended[r]; n > 0 {
			s += fmt.Sprintf(" (ended %d times)", n)
		}
		late = append(late, s)
	}
	t.outcome = unhealthy
	t.reason = fmt.Sprintf("not healthy within %v of the start: %s", t.deadline.Sub(t.start), strings.Join(late, ", "))
	return t.outcome
}
