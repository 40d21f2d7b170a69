package main

import (
	"errors"
	"fmt"
	"keel/bootloader"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"keel/bootloader/systemdboot"
	"keel/rootfs/services"
)

func TestHealthTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	type step struct {
		at   float64
		ev   event
		want outcome // after the event, checked at the same time
	}
	for _, tc := range []struct {
		name    string
		require []string
		steps   []step
		dueAt   float64 // -1: not due
		reason  string  // what the reason says, if set
	}{
		{
			name:    "both up: healthy a grace after the later",
			require: []string{"a", "b"},
			steps: []step{
				{1, event{Kind: evUp, Service: "a"}, undecided},
				{3, event{Kind: evUp, Service: "b"}, undecided},
				{12.9, event{Kind: evUp, Service: "unrelated"}, undecided},
				{13, event{Kind: evUp, Service: "unrelated"}, healthy},
			},
			dueAt: -1,
		},
		{
			name:    "an exit restarts the clock",
			require: []string{"a"},
			steps: []step{
				{1, event{Kind: evUp, Service: "a"}, undecided},
				{5, event{Kind: evExited, Service: "a"}, undecided},
				{11, event{Kind: evUp, Service: "unrelated"}, undecided},
				{12, event{Kind: evUp, Service: "a"}, undecided},
			},
			dueAt: 22,
		},
		{
			name:    "a required service given up on: unhealthy",
			require: []string{"a", "b"},
			steps: []step{
				{1, event{Kind: evUp, Service: "a"}, undecided},
				{4, event{Kind: evGaveUp, Service: "b"}, unhealthy},
				{30, event{Kind: evUp, Service: "b"}, unhealthy},
			},
			dueAt: -1,
		},
		{
			name:    "an unrequired service given up on does not matter",
			require: []string{"a"},
			steps: []step{
				{1, event{Kind: evGaveUp, Service: "other"}, undecided},
				{2, event{Kind: evUp, Service: "a"}, undecided},
			},
			dueAt: 12,
		},
		{
			name:    "a required service that fails and is not restarted: unhealthy, saying how",
			require: []string{"a"},
			steps: []step{
				{1, event{Kind: evExited, Service: "a"}, undecided},
				{1, event{Kind: evGaveUp, Service: "a", Detail: "exited with status 1; not restarted (restart=never)"}, unhealthy},
			},
			dueAt:  -1,
			reason: "required service a failed: exited with status 1; not restarted (restart=never)",
		},
		{
			name:    "restarting within its budget forever: unhealthy at the deadline",
			require: []string{"a", "b"},
			steps: []step{
				{1, event{Kind: evUp, Service: "b"}, undecided},
				{2, event{Kind: evUp, Service: "a"}, undecided},
				{9, event{Kind: evExited, Service: "a"}, undecided},
				{10, event{Kind: evUp, Service: "a"}, undecided},
				{17, event{Kind: evExited, Service: "a"}, undecided},
				{99.9, event{Kind: evUp, Service: "a"}, undecided},
				{100, event{Kind: evReady}, unhealthy},
			},
			dueAt:  -1,
			reason: "not healthy within 1m40s of the start: a up for only 0s (ended 2 times)",
		},
		{
			name: "nothing required: healthy after the grace",
			steps: []step{
				{9, event{Kind: evReady, Service: ""}, undecided},
				{10, event{Kind: evReady, Service: ""}, healthy},
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
			if tc.reason != "" && tr.reason != tc.reason {
				t.Errorf("reason %q, want %q", tr.reason, tc.reason)
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
	mu         sync.Mutex
	calls      []string
	failRecord bool
	log        func(string) // where the calls also go, if set: to see their order
}

func (r *recordingBlesser) markGood(t bootloader.Trial) error { r.add("good " + t.Entry); return nil }
func (r *recordingBlesser) record(t bootloader.Trial, result, stage, reason string) (string, error) {
	r.add("record " + result + " " + stage + " " + t.Entry)
	if r.failRecord {
		return "", errors.New("no ESP")
	}
	return "/keel/b/verdict.json", nil
}
func (r *recordingBlesser) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	if r.log != nil {
		r.log(s)
	}
}

func TestHealthJudge(t *testing.T) {
	const entry = "keel-b+2-1.conf"
	const last = "keel-b+0-2.conf"
	up := []event{{Kind: evUp, Service: "a"}}
	failed := []event{{Kind: evGaveUp, Service: "a", Detail: "exited with status 1; not restarted (restart=never)"}}
	for _, tc := range []struct {
		name       string
		countPath  string
		events     []event
		failRecord bool
		wantCalls  string
		wantReboot bool
		wantLogs   []string
	}{
		{
			name: "trial boot, healthy after the grace: recorded, then blessed", countPath: entry, events: up,
			wantCalls: "record good health " + entry + ";good " + entry,
			wantLogs:  []string{"health: boot is good: a up for 50ms", "verdict recorded in /keel/b/verdict.json", "entry blessed"},
		},
		{
			name: "trial boot, required service fails: recorded, not marked, reboot", countPath: entry, events: failed,
			wantCalls: "record bad health " + entry, wantReboot: true,
			wantLogs: []string{"health: boot is BAD: required service a failed: exited with status 1; not restarted (restart=never)",
				"rebooting: 2 tries left for this entry before the boot loader falls back"},
		},
		{
			name: "last try fails: the same, the loader falls back", countPath: last, events: failed,
			wantCalls: "record bad health " + last, wantReboot: true,
			wantLogs: []string{"rebooting: no tries left: the boot loader falls back to the other slot"},
		},
		{
			name: "the verdict cannot be recorded: reboot all the same", countPath: entry, events: failed, failRecord: true,
			wantCalls: "record bad health " + entry, wantReboot: true,
			wantLogs: []string{"health: recording the verdict: no ESP", "rebooting"},
		},
		{
			name: "blessed boot, required service fails: no reboot loop", events: failed,
			wantLogs: []string{"not a trial boot: staying up"},
		},
		{
			name: "blessed boot, healthy: nothing to mark", events: up,
			wantLogs: []string{"health: boot is good"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &recordingBlesser{failRecord: tc.failRecord}
			var mu sync.Mutex
			var logs []string
			rebooted := make(chan struct{}, 1)
			j := newHealthJudge(services.Health{Require: []string{"a"}, Grace: 50 * time.Millisecond}, mustTrial(t, tc.countPath), b,
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
			for _, w := range tc.wantLogs {
				if !strings.Contains(all, w) {
					t.Errorf("log %q lacks %q", all, w)
				}
			}
			// One verdict only, whatever comes later.
			j.observe(event{Kind: evGaveUp, Service: "a"})
			j.stop()
			if b.mu.Lock(); strings.Join(b.calls, ";") != tc.wantCalls {
				t.Errorf("acted twice: %q", b.calls)
			}
			b.mu.Unlock()
		})
	}
}

// TestHealthJudgeStop: a shutdown before the verdict ends judging; on a
// trial the console says the boot used a try.
func TestHealthJudgeStop(t *testing.T) {
	b := &recordingBlesser{}
	var logs []string
	j := newHealthJudge(services.Health{Require: []string{"a"}, Grace: 50 * time.Millisecond}, mustTrial(t, "keel-b+1-1.conf"), b,
		func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }, func() { t.Error("rebooted") })
	j.stop()
	j.observe(event{Kind: evUp, Service: "a"})
	time.Sleep(100 * time.Millisecond)
	if len(b.calls) != 0 || len(logs) != 1 || !strings.Contains(logs[0], "shutting down before a verdict") {
		t.Errorf("calls %q, logs %q", b.calls, logs)
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
		got, err := systemdboot.ReadEFIStringVar(dir, tc.name)
		if got != tc.want || (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %q, %v; want %q, error %q", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestVerdictBeforeOnExit: a required service gone for good during a
// trial (restart never, on_exit poweroff) is a failed boot, recorded
// before the supervisor acts on on_exit; on_exit still decides how the
// system goes down. A boot that is not a trial behaves as before: no
// record, no reboot, on_exit acts.
func TestVerdictBeforeOnExit(t *testing.T) {
	const entry = "keel-b+1-1.conf"
	for _, tc := range []struct {
		name      string
		countPath string
		runFor    time.Duration // how long app runs before it fails
		wantCalls string
	}{
		{"trial, fails before the ready line", entry, 0, "record bad health " + entry},
		{"trial, fails after the ready line", entry, 100 * time.Millisecond, "record bad health " + entry},
		{"not a trial", "", 0, ""},
		{"not a trial, after the ready line", "", 100 * time.Millisecond, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var logs []string
			logf := func(f string, a ...any) { mu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); mu.Unlock() }
			b := &recordingBlesser{log: func(s string) { logf("%s", s) }}
			requests := make(chan action, 1)
			j := newHealthJudge(services.Health{Require: []string{"app"}, Grace: time.Minute}, mustTrial(t, tc.countPath), b, logf,
				func() {
					select {
					case requests <- actReboot:
					default:
					}
				})
			f := newFake(map[string]func(int) behaviour{
				"app":     func(int) behaviour { return exits(tc.runFor, 1) },
				"console": func(int) behaviour { return forever() },
			})
			s := newSupervisor([]services.Service{svc("app", services.Never, services.Poweroff), svc("console", "", "")}, f, testTiming, logf)
			s.notify = j.observe
			f.sup = s
			done := make(chan action)
			go func() { done <- s.run(requests) }()
			var act action
			select {
			case act = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("supervisor did not return")
			}
			j.stop()
			mu.Lock()
			defer mu.Unlock()
			all := strings.Join(logs, "\n")
			if act != actPoweroff {
				t.Errorf("action %v, want poweroff (on_exit)\n%s", act, all)
			}
			if calls := strings.Join(b.calls, ";"); calls != tc.wantCalls {
				t.Errorf("blesser calls %q, want %q", calls, tc.wantCalls)
			}
			verdict := slices.IndexFunc(logs, func(l string) bool { return strings.HasPrefix(l, "health: boot is BAD: required service app failed") })
			onExit := slices.IndexFunc(logs, func(l string) bool { return strings.Contains(l, "app is gone and asks for poweroff (on_exit)") })
			if verdict < 0 || onExit < 0 || verdict > onExit {
				t.Errorf("want the verdict (line %d) before on_exit acts (line %d):\n%s", verdict, onExit, all)
			}
			if tc.countPath != "" {
				if rec := slices.Index(logs, "record bad health "+entry); rec < 0 || rec > onExit {
					t.Errorf("want the verdict recorded before on_exit acts:\n%s", all)
				}
			} else if !strings.Contains(all, "not a trial boot: staying up") {
				t.Errorf("not a trial: log lacks %q:\n%s", "staying up", all)
			}
		})
	}
}
