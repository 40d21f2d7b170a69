package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"keel/rootfs/services"
)

func TestHealthTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	type step struct {
		at   float64
		ev   event
		want verdict // after the event, checked at the same time
	}
	for _, tc := range []struct {
		name    string
		require []string
		steps   []step
		dueAt   float64 // -1: not due
	}{
		{
			name:    "both up: healthy a grace after the later",
			require: []string{"a", "b"},
			steps: []step{
				{1, event{evUp, "a"}, undecided},
				{3, event{evUp, "b"}, undecided},
				{12.9, event{evUp, "unrelated"}, undecided},
				{13, event{evUp, "unrelated"}, healthy},
			},
			dueAt: -1,
		},
		{
			name:    "an exit restarts the clock",
			require: []string{"a"},
			steps: []step{
				{1, event{evUp, "a"}, undecided},
				{5, event{evExited, "a"}, undecided},
				{11, event{evUp, "unrelated"}, undecided},
				{12, event{evUp, "a"}, undecided},
			},
			dueAt: 22,
		},
		{
			name:    "a required service given up on: unhealthy",
			require: []string{"a", "b"},
			steps: []step{
				{1, event{evUp, "a"}, undecided},
				{4, event{evGaveUp, "b"}, unhealthy},
				{30, event{evUp, "b"}, unhealthy},
			},
			dueAt: -1,
		},
		{
			name:    "an unrequired service given up on does not matter",
			require: []string{"a"},
			steps: []step{
				{1, event{evGaveUp, "other"}, undecided},
				{2, event{evUp, "a"}, undecided},
			},
			dueAt: 12,
		},
		{
			name: "nothing required: healthy after the grace",
			steps: []step{
				{9, event{evReady, ""}, undecided},
				{10, event{evReady, ""}, healthy},
			},
			dueAt: -1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newHealthTracker(services.Health{Require: tc.require}, t0)
			for i, s := range tc.steps {
				tr.observe(s.ev, at(s.at))
				if got := tr.check(at(s.at)); got != s.want {
					t.Fatalf("step %d (%v at %vs): verdict %v, want %v", i, s.ev, s.at, got, s.want)
				}
			}
			due, ok := tr.due()
			switch {
			case tc.dueAt < 0 && ok:
				t.Errorf("due at %v, want not due", due.Sub(t0))
			case tc.dueAt >= 0 && (!ok || !due.Equal(at(tc.dueAt))):
				t.Errorf("due %v (%v), want %vs", due.Sub(t0), ok, tc.dueAt)
			}
		})
	}
}

type recordingBlesser struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingBlesser) markGood(p string) error { r.add("good " + p); return nil }
func (r *recordingBlesser) markBad(p string) error  { r.add("bad " + p); return nil }
func (r *recordingBlesser) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
}

func TestHealthJudge(t *testing.T) {
	const entry = `\loader\entries\keel-b+2-1.conf`
	for _, tc := range []struct {
		name       string
		countPath  string
		events     []event
		wantCalls  string
		wantReboot bool
		wantLog    string
	}{
		{"trial boot, healthy after the grace", entry, []event{{evUp, "a"}}, "good " + entry, false, "health: boot is good: a up for 50ms"},
		{"trial boot, required service fails", entry, []event{{evGaveUp, "a"}}, "bad " + entry, true, "health: boot is BAD: required service a failed"},
		{"blessed boot, required service fails: no reboot loop", "", []event{{evGaveUp, "a"}}, "", false, "not a trial boot: staying up"},
		{"blessed boot, healthy: nothing to mark", "", []event{{evUp, "a"}}, "", false, "health: boot is good"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &recordingBlesser{}
			var mu sync.Mutex
			var logs []string
			rebooted := make(chan struct{}, 1)
			j := newHealthJudge(services.Health{Require: []string{"a"}, Grace: 50 * time.Millisecond}, tc.countPath, b,
				func(f string, a ...any) { mu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); mu.Unlock() },
				func() { rebooted <- struct{}{} })
			for _, e := range tc.events {
				j.observe(e)
			}
			time.Sleep(200 * time.Millisecond)
			b.mu.Lock()
			calls := strings.Join(b.calls, ";")
			b.mu.Unlock()
			if calls != tc.wantCalls {
				t.Errorf("blesser calls %q, want %q", calls, tc.wantCalls)
			}
			if got := len(rebooted) == 1; got != tc.wantReboot {
				t.Errorf("rebooted %v, want %v", got, tc.wantReboot)
			}
			mu.Lock()
			all := strings.Join(logs, "\n")
			mu.Unlock()
			if !strings.Contains(all, tc.wantLog) {
				t.Errorf("log %q lacks %q", all, tc.wantLog)
			}
			// One verdict only, whatever comes later.
			j.observe(event{evGaveUp, "a"})
			if b.mu.Lock(); strings.Join(b.calls, ";") != tc.wantCalls {
				t.Errorf("acted twice: %q", b.calls)
			}
			b.mu.Unlock()
		})
	}
}

func TestReadEFIStringVar(t *testing.T) {
	dir := t.TempDir()
	encode := func(s string, nul bool) []byte {
		b := []byte{0x06, 0, 0, 0} // attributes: boot service + runtime access
		u := utf16.Encode([]rune(s))
		if nul {
			u = append(u, 0)
		}
		for _, c := range u {
			b = append(b, byte(c), byte(c>>8))
		}
		return b
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("WithNul-x", encode(`\loader\entries\keel-b+2-1.conf`, true))
	write("NoNul-x", encode(`\loader\entries\ké.conf`, false))
	write("Short-x", []byte{1, 2})
	write("Odd-x", []byte{6, 0, 0, 0, 'a'})
	for _, tc := range []struct{ name, want, wantErr string }{
		{"WithNul-x", `\loader\entries\keel-b+2-1.conf`, ""},
		{"NoNul-x", `\loader\entries\ké.conf`, ""},
		{"Missing-x", "", ""},
		{"Short-x", "", "not attributes"},
		{"Odd-x", "", "not attributes"},
	} {
		got, err := readEFIStringVar(dir, tc.name)
		if got != tc.want || (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %q, %v; want %q, error %q", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}
