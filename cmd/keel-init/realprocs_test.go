package main

import (
	"bytes"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"keel/rootfs/services"
)

// syncBuffer is a console the test can read while services write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRealProcesses runs the supervisor with real fork/exec, the real
// reaper and the console prefixing, as PID 1 would, but in the test
// process: as a child subreaper it inherits orphans the way PID 1 does.
func TestRealProcesses(t *testing.T) {
	sh, err := lookPath("sh", defaultPath)
	if err != nil {
		t.Skip("sh: not installed")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	marker := filepath.Join(t.TempDir(), "orphan-ran")
	svcs := []services.Service{
		// Long-running, with a child in its process group that must be
		// stopped with it.
		{Name: "daemon", Command: []string{sh, "-c", `echo "hello from $USER $MODE"; echo to stderr >&2; sleep 30 & wait`},
			Env: map[string]string{"MODE": "test"}},
		// Leaves an orphan behind, which the reaper must collect.
		{Name: "forker", Command: []string{"sh", "-c", "(sleep 0.1; touch " + marker + ") & exit 0"}, Restart: services.Never},
		// The test: prints, exits, and asks for a poweroff.
		{Name: "test", Command: []string{"sh", "-c", "printf 'no newline at the end'"}, Restart: services.Never, OnExit: services.Poweroff},
	}
	var out syncBuffer
	con := newConsole(&out)
	tm := testTiming
	tm.UpAfter = 200 * time.Millisecond
	tm.ReadyWait = time.Second
	sup := newSupervisor(svcs, &realProcs{con: con}, tm, con.logf)
	var readyAt int
	sup.notify = func(e event) {
		if e.Kind == evReady {
			con.line("READY")
			readyAt = len(out.String())
		}
	}

	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	reaped := make(chan struct{})
	go func() { reap(sigchld, sup.exited); close(reaped) }()
	defer func() {
		signal.Stop(sigchld)
		close(sigchld)
		<-reaped
	}()

	done := make(chan action)
	go func() { done <- sup.run(nil) }()
	var act action
	select {
	case act = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("supervisor did not return; console:\n%s", out.String())
	}
	// Let the orphan finish and be reaped.
	time.Sleep(300 * time.Millisecond)
	console := out.String()
	t.Logf("console:\n%s", console)

	if act != actPoweroff {
		t.Errorf("action %v, want poweroff", act)
	}
	for _, want := range []string{
		"[daemon] hello from root test\n",
		"[daemon] to stderr\n",
		"[test] no newline at the end\n",
		"keel-init: test is gone and asks for poweroff (on_exit)\n",
		"keel-init: stopping daemon",
	} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// The test service is done long before the daemon has run for
	// UpAfter: the poweroff waits for the ready line.
	if readyAt == 0 || readyAt > strings.Index(console, "stopping daemon") {
		t.Errorf("no ready line before the shutdown")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the orphan did not run: %v", err)
	}
	if z := zombieChildren(t); len(z) > 0 {
		t.Errorf("zombies left: %v", z)
	}
}

func TestRealStartFailure(t *testing.T) {
	r := &realProcs{con: newConsole(&syncBuffer{})}
	for _, tc := range []struct {
		svc  services.Service
		want string
	}{
		{services.Service{Name: "a", Command: []string{"/nonexistent/bin"}}, "exec /nonexistent/bin: no such file"},
		{services.Service{Name: "a", Command: []string{"no-such-tool-anywhere"}}, "not found in PATH"},
		{services.Service{Name: "a", Command: []string{"/bin/sh"}, User: "no-such-user-here"}, "no-such-user-here"},
		{services.Service{Name: "a", Command: []string{"/bin/sh"}, WorkingDir: "/nonexistent"}, "no such file"},
	} {
		pid, err := r.start(tc.svc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("start(%+v) = %d, %v; want an error containing %q", tc.svc, pid, err, tc.want)
		}
	}
}

// zombieChildren lists our children in state Z.
func zombieChildren(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var z []int
	me := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) S ppid ...: comm may hold spaces, so cut at the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) >= 2 && f[0] == "Z" && f[1] == strconv.Itoa(me) {
			z = append(z, pid)
		}
	}
	return z
}
