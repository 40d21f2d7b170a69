// Package testagent is keel-init's side of keel test (package
// keel/image/updatetest/wire): on a boot whose kernel command line says
// keel.test=PORT, PID 1 greets the host on that serial port before any
// service starts, takes the fault to inject, reports the boot's events and
// runs the host's commands (keelctl install, status, rollback; a plan's
// own checks) as root. Without the parameter nothing here runs: no port
// is opened, nothing is read.
package testagent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"keel/image/updatetest/wire"
)

// Runner is what the agent asks of PID 1.
type Runner interface {
	// Run runs argv as root and calls out for each line of its output
	// (stdout and stderr together), returning its exit status; quiet
	// keeps the output off the console.
	Run(argv []string, quiet bool, out func(string)) (int, error)
	// Shutdown asks for a clean reboot or power off (wire.OpReboot,
	// wire.OpPoweroff).
	Shutdown(op string)
}

// Agent is the open control port.
type Agent struct {
	f    io.ReadWriteCloser
	logf func(string, ...any)
	mu   sync.Mutex // one line at a time on the port
	in   chan wire.Msg
}

// Open opens /dev/PORT in raw mode: no echo, no line editing, no
// translation of the JSON lines.
func Open(port string, logf func(string, ...any)) (*Agent, error) {
	if err := wire.ValidPort(port); err != nil {
		return nil, fmt.Errorf("%s: %w", wire.Param, err)
	}
	f, err := os.OpenFile("/dev/"+port, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("control port: %w", err)
	}
	if err := makeRaw(int(f.Fd())); err != nil {
		f.Close()
		return nil, fmt.Errorf("control port /dev/%s: %w", port, err)
	}
	return New(f, logf), nil
}

// New runs the agent over rw (a test's pipe, or the port).
func New(rw io.ReadWriteCloser, logf func(string, ...any)) *Agent {
	a := &Agent{f: rw, logf: logf, in: make(chan wire.Msg, 16)}
	go a.read()
	return a
}

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	// cfmakeraw(3).
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8 | unix.CLOCAL | unix.CREAD
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

func (a *Agent) read() {
	defer close(a.in)
	br := bufio.NewReaderSize(a.f, 4096)
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			if m, derr := wire.Decode(line); derr == nil {
				a.in <- m
			} else {
				a.logf("keel test: %v", derr)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				a.logf("keel test: control port: %v", err)
			}
			return
		}
	}
}

// readLine reads up to a newline; a line longer than wire.MaxLine is
// dropped whole.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		b, err := br.ReadSlice('\n')
		if len(line)+len(b) <= wire.MaxLine {
			line = append(line, b...)
		} else {
			line = line[:0:0]
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

func (a *Agent) send(m wire.Msg) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.f.Write(wire.Encode(m)); err != nil {
		a.logf("keel test: control port: %v", err)
	}
}

// Hello greets the host and waits up to timeout for its answer: the fault
// to inject on this boot. Without one in time the boot goes on, unchanged:
// a test boot with no host is still a boot.
func (a *Agent) Hello(h wire.Hello, timeout time.Duration) (string, error) {
	a.send(wire.Msg{Hello: &h})
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case m, ok := <-a.in:
			if !ok {
				return "", errors.New("control port closed before the host answered")
			}
			if m.Op != wire.OpBoot {
				a.logf("keel test: %q before the host's answer ignored", m.Op)
				continue
			}
			switch m.Fault {
			case wire.FaultNone, wire.FaultFail, wire.FaultHang:
				return m.Fault, nil
			}
			return "", fmt.Errorf("unknown fault %q", m.Fault)
		case <-t.C:
			return "", fmt.Errorf("no answer from the host within %v", timeout)
		}
	}
}

// Event reports one of the boot's events (wire.Event*).
func (a *Agent) Event(name, result, detail string) {
	a.send(wire.Msg{Event: name, Result: result, Detail: detail})
}

// Serve runs the host's requests until the port closes; each command in
// its own goroutine, so a long install does not hold back a status.
func (a *Agent) Serve(r Runner) {
	for m := range a.in {
		switch m.Op {
		case wire.OpExec:
			go a.exec(r, m)
		case wire.OpReboot, wire.OpPoweroff:
			a.logf("keel test: %s requested by the host", m.Op)
			a.send(wire.Msg{ID: m.ID, Exit: new(int)})
			r.Shutdown(m.Op)
		default:
			a.send(wire.Msg{ID: m.ID, Exit: ptr(-1), Error: fmt.Sprintf("unknown op %q", m.Op)})
		}
	}
}

func (a *Agent) exec(r Runner, m wire.Msg) {
	if len(m.Argv) == 0 {
		a.send(wire.Msg{ID: m.ID, Exit: ptr(-1), Error: "exec: no command"})
		return
	}
	code, err := r.Run(m.Argv, m.Quiet, func(line string) { a.send(wire.Msg{ID: m.ID, Out: line}) })
	reply := wire.Msg{ID: m.ID, Exit: ptr(code)}
	if err != nil {
		reply.Exit, reply.Error = ptr(-1), err.Error()
	}
	a.send(reply)
}

func ptr(n int) *int { return &n }

// Close closes the port.
func (a *Agent) Close() error { return a.f.Close() }
