package main

import (
	"sort"
	"strings"
	"time"

	"keel/rootfs/services"
)

// verdict is the judgement on a boot (issue 4, "blessing").
type verdict int

const (
	undecided verdict = iota
	healthy           // every required service stayed up for the grace period
	unhealthy         // a required service spent its restart budget first
)

// healthTracker judges the boot from the supervisor's events: healthy
// once every required service has been up, without exiting, for the grace
// period; unhealthy if one of them is given up on before that. It only
// judges once. Pure: the caller supplies the time and runs the timer.
type healthTracker struct {
	require map[string]bool
	grace   time.Duration
	start   time.Time
	upSince map[string]time.Time // required services up now, since when
	verdict verdict
	reason  string
}

func newHealthTracker(h services.Health, start time.Time) *healthTracker {
	t := &healthTracker{
		require: map[string]bool{},
		grace:   h.EffectiveGrace(),
		start:   start,
		upSince: map[string]time.Time{},
	}
	for _, r := range h.Require {
		t.require[r] = true
	}
	return t
}

// observe takes one supervisor event. A finished one-shot counts as up for
// good (its evUp comes after its evExited).
func (t *healthTracker) observe(e event, now time.Time) {
	if t.verdict != undecided || !t.require[e.Service] {
		return
	}
	switch e.Kind {
	case evUp:
		t.upSince[e.Service] = now
	case evExited:
		delete(t.upSince, e.Service)
	case evGaveUp:
		t.verdict, t.reason = unhealthy, "required service "+e.Service+" failed"
	}
}

// due returns when the boot will be healthy if nothing changes; ok is
// false while a required service is down or a verdict is in.
func (t *healthTracker) due() (at time.Time, ok bool) {
	if t.verdict != undecided {
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

// check decides healthy if the grace period has passed for everything.
func (t *healthTracker) check(now time.Time) verdict {
	if at, ok := t.due(); ok && !now.Before(at) {
		names := make([]string, 0, len(t.require))
		for r := range t.require {
			names = append(names, r)
		}
		sort.Strings(names)
		t.verdict = healthy
		t.reason = "up for " + t.grace.String()
		if len(names) > 0 {
			t.reason = strings.Join(names, ", ") + " " + t.reason
		}
	}
	return t.verdict
}
