package testagent

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"keel/image/updatetest/wire"
)

type fakeRunner struct {
	mu   sync.Mutex
	down []string
}

func (f *fakeRunner) Run(argv []string, _ bool, out func(string)) (int, error) {
	for _, a := range argv[1:] {
		out(a)
	}
	if argv[0] == "false" {
		return 1, nil
	}
	return 0, nil
}

func (f *fakeRunner) Shutdown(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = append(f.down, op)
}

// host is the other end of the port.
type host struct {
	t  *testing.T
	c  net.Conn
	sc *bufio.Scanner
}

func (h *host) send(m wire.Msg) {
	if _, err := h.c.Write(wire.Encode(m)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) recv() wire.Msg {
	h.t.Helper()
	if !h.sc.Scan() {
		h.t.Fatalf("port closed: %v", h.sc.Err())
	}
	m, err := wire.Decode(h.sc.Bytes())
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func newPair(t *testing.T) (*Agent, *host, *[]string) {
	a, b := net.Pipe()
	var logs []string
	var mu sync.Mutex
	ag := New(a, func(f string, args ...any) {
		mu.Lock()
		logs = append(logs, f)
		mu.Unlock()
	})
	t.Cleanup(func() { a.Close(); b.Close() })
	return ag, &host{t: t, c: b, sc: bufio.NewScanner(b)}, &logs
}

func TestHelloExecShutdown(t *testing.T) {
	ag, h, _ := newPair(t)
	got := make(chan string, 1)
	go func() {
		f, err := ag.Hello(wire.Hello{Name: "n", Version: "1", Slot: "a"}, 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- f
	}()
	if m := h.recv(); m.Hello == nil || m.Hello.Slot != "a" {
		t.Fatalf("first message %+v, want a hello", m)
	}
	h.send(wire.Msg{Op: wire.OpExec, ID: 1, Argv: []string{"early"}}) // before the answer: ignored
	h.send(wire.Msg{Op: wire.OpBoot, Fault: wire.FaultFail})
	if f := <-got; f != wire.FaultFail {
		t.Fatalf("fault %q, want fail", f)
	}
	r := &fakeRunner{}
	go ag.Serve(r)
	h.send(wire.Msg{Op: wire.OpExec, ID: 2, Argv: []string{"false", "x", "y"}})
	var out []string
	for {
		m := h.recv()
		if m.ID != 2 {
			t.Fatalf("answer %+v, want id 2", m)
		}
		if m.Exit != nil {
			if *m.Exit != 1 {
				t.Errorf("exit %d, want 1", *m.Exit)
			}
			break
		}
		out = append(out, m.Out)
	}
	if strings.Join(out, ",") != "x,y" {
		t.Errorf("output %q", out)
	}
	h.send(wire.Msg{Op: "format-disk", ID: 3})
	if m := h.recv(); m.ID != 3 || m.Exit == nil || *m.Exit != -1 || !strings.Contains(m.Error, "unknown op") {
		t.Errorf("unknown op answered %+v", m)
	}
	h.send(wire.Msg{Op: wire.OpReboot, ID: 4})
	if m := h.recv(); m.ID != 4 || m.Exit == nil || *m.Exit != 0 {
		t.Errorf("reboot answered %+v", m)
	}
	go ag.Event(wire.EventReady, "", "keel: ready") // the pipe has no buffer
	if m := h.recv(); m.Event != wire.EventReady {
		t.Errorf("event %+v", m)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.down) != 1 || r.down[0] != wire.OpReboot {
		t.Errorf("shutdowns %v, want [reboot]", r.down)
	}
}

// TestHelloNoHost: a test boot whose host never answers boots on, untested.
func TestHelloNoHost(t *testing.T) {
	ag, h, _ := newPair(t)
	go h.recv()
	start := time.Now()
	f, err := ag.Hello(wire.Hello{}, 200*time.Millisecond)
	if err == nil || f != "" {
		t.Fatalf("Hello without an answer: %q, %v", f, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestHelloBadFault(t *testing.T) {
	ag, h, _ := newPair(t)
	go func() {
		h.recv()
		h.send(wire.Msg{Op: wire.OpBoot, Fault: "explode"})
	}()
	if _, err := ag.Hello(wire.Hello{}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "explode") {
		t.Fatalf("unknown fault: %v", err)
	}
}

func TestNoise(t *testing.T) {
	ag, h, logs := newPair(t)
	go h.recv()
	go func() {
		_, _ = h.c.Write([]byte("\x00garbage before the agent opened the port\n" + strings.Repeat("x", wire.MaxLine+10) + "\n"))
		h.send(wire.Msg{Op: wire.OpBoot})
	}()
	if f, err := ag.Hello(wire.Hello{}, 5*time.Second); err != nil || f != "" {
		t.Fatalf("Hello after noise: %q, %v", f, err)
	}
	if len(*logs) == 0 {
		t.Errorf("noise not logged")
	}
}
