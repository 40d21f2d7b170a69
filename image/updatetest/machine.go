package updatetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keel/image/qemu"
	"keel/image/updatetest/wire"
)

// machine is the device under test: its disk (keel test's copy), its
// firmware variables, and the bundle disks attached after it.
type machine struct {
	disk, vars string
	bundles    []string // raw images attached as vdb, vdc, …
	dir        string   // where the consoles go
	sockDir    string   // the control sockets' (a unix socket's path is short)
	accel      string
	boots      int
}

// boot is one power-on of the machine, up to its power-off, reboot or kill.
type boot struct {
	vm      *qemu.VM
	console string // file, relative to the report's directory
	conn    net.Conn
	in      chan wire.Msg
	hello   wire.Hello
	start   time.Time
	greeted time.Duration // power on to Hello
	nextID  int
	events  []wire.Msg // events seen so far, in order
}

// powerOn starts QEMU and waits for the guest's Hello, then answers it
// with the fault fault chooses for that boot.
func (m *machine) powerOn(ctx context.Context, name string, fault func(wire.Hello) string, timeout time.Duration) (*boot, error) {
	m.boots++
	sock := filepath.Join(m.sockDir, fmt.Sprintf("control-%d.sock", m.boots))
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer os.Remove(sock)
	defer ln.Close()
	rel := filepath.Join("console", fmt.Sprintf("%02d-%s.log", m.boots, Slug(name)))
	if err := os.MkdirAll(filepath.Join(m.dir, "console"), 0o755); err != nil {
		return nil, err
	}
	con, err := os.Create(filepath.Join(m.dir, rel))
	if err != nil {
		return nil, err
	}
	b := &boot{console: rel, in: make(chan wire.Msg, 64), start: time.Now()}
	// QEMU connects to our socket as it starts: the guest's ttyS1.
	b.vm, err = qemu.Start(ctx, qemu.Config{
		Disk: m.disk, VarsCopy: m.vars, ExtraDisks: m.bundles, Accel: m.accel,
		Console:   con,
		ExtraArgs: []string{"-chardev", "socket,id=keeltest,path=" + sock, "-serial", "chardev:keeltest"},
	})
	if err != nil {
		con.Close()
		return nil, err
	}
	go func() { <-b.vm.Done(); con.Close() }()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	select {
	case b.conn = <-accepted:
	case <-b.vm.Done():
		return b, fmt.Errorf("QEMU exited before it connected the control port: %v", b.vm.Wait())
	case <-time.After(30 * time.Second):
		b.vm.Kill()
		return b, errors.New("QEMU did not connect the control port within 30s")
	}
	go b.read()
	msg, err := b.wait(ctx, timeout, "hello from keel-init's test agent", func(m wire.Msg) bool { return m.Hello != nil })
	if err != nil && !errors.Is(err, errExited) && ctx.Err() == nil {
		err = fmt.Errorf("%w (keel test needs keel-init as the image's init, PID 1: an image with systemd has no test agent yet; and an entry that keeps keel.test=%s on its command line)", err, ControlPort)
	}
	if err != nil {
		return b, err
	}
	b.hello = *msg.Hello
	b.greeted = time.Since(b.start)
	f := ""
	if fault != nil {
		f = fault(b.hello)
	}
	b.send(wire.Msg{Op: wire.OpBoot, Fault: f})
	return b, nil
}

// Slug is s as a file name: lower case, every other rune than a letter,
// digit, dot or dash a dash.
func Slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r - 'A' + 'a'
		}
		return '-'
	}, s)
}

func (b *boot) read() {
	defer close(b.in)
	sc := bufio.NewScanner(b.conn)
	sc.Buffer(make([]byte, 4096), wire.MaxLine)
	for sc.Scan() {
		if m, err := wire.Decode(sc.Bytes()); err == nil {
			b.in <- m
		}
	}
}

func (b *boot) send(m wire.Msg) {
	_, _ = b.conn.Write(wire.Encode(m))
}

// errExited: the guest went away (rebooted, powered off, killed) while
// something was awaited.
var errExited = errors.New("the machine went down")

// wait returns the first message match accepts, remembering the events it
// passes over.
func (b *boot) wait(ctx context.Context, timeout time.Duration, what string, match func(wire.Msg) bool) (wire.Msg, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case m, ok := <-b.in:
			if !ok {
				return wire.Msg{}, fmt.Errorf("waiting for %s: %w", what, errExited)
			}
			if m.Event != "" {
				b.events = append(b.events, m)
			}
			if match(m) {
				return m, nil
			}
		case <-t.C:
			return wire.Msg{}, fmt.Errorf("no %s within %v", what, timeout)
		case <-ctx.Done():
			return wire.Msg{}, ctx.Err()
		}
	}
}

// event waits for an event, or finds it among those already seen.
func (b *boot) event(ctx context.Context, name string, timeout time.Duration) (wire.Msg, error) {
	for _, e := range b.events {
		if e.Event == name {
			return e, nil
		}
	}
	return b.wait(ctx, timeout, "event "+name, func(m wire.Msg) bool { return m.Event == name })
}

// exec runs argv in the guest; line, if set, sees each line of output as
// it comes and may stop the wait by returning true (the caller then kills
// the machine).
func (b *boot) exec(ctx context.Context, argv []string, timeout time.Duration, line func(string) bool) (out []string, exit int, err error) {
	return b.execQuiet(ctx, argv, false, timeout, line)
}

// execQuiet is exec, the output kept off the guest's console if quiet.
func (b *boot) execQuiet(ctx context.Context, argv []string, quiet bool, timeout time.Duration, line func(string) bool) (out []string, exit int, err error) {
	b.nextID++
	id := b.nextID
	b.send(wire.Msg{Op: wire.OpExec, Argv: argv, ID: id, Quiet: quiet})
	stopped := false
	m, err := b.wait(ctx, timeout, strings.Join(argv, " "), func(m wire.Msg) bool {
		if m.ID != id {
			return false
		}
		if m.Exit == nil {
			out = append(out, m.Out)
			if line != nil && line(m.Out) {
				stopped = true
				return true
			}
			return false
		}
		return true
	})
	if err != nil || stopped {
		return out, -1, err
	}
	if m.Error != "" {
		return out, *m.Exit, fmt.Errorf("%s: %s", argv[0], m.Error)
	}
	return out, *m.Exit, nil
}

// down asks the guest to reboot or power off and waits for QEMU to exit
// (-no-reboot: a reboot ends it too).
func (b *boot) down(ctx context.Context, op string, timeout time.Duration) error {
	b.nextID++
	b.send(wire.Msg{Op: op, ID: b.nextID})
	select {
	case <-b.vm.Done():
		b.conn.Close()
		return nil
	case <-time.After(timeout):
		b.kill()
		return fmt.Errorf("%s: the machine was still up after %v", op, timeout)
	case <-ctx.Done():
		b.kill()
		return ctx.Err()
	}
}

// exited waits for the guest to go down by itself (a reboot after a bad
// verdict).
func (b *boot) exited(ctx context.Context, timeout time.Duration) error {
	select {
	case <-b.vm.Done():
		b.conn.Close()
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("the machine did not reboot within %v", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kill cuts the power.
func (b *boot) kill() {
	b.vm.Kill()
	if b.conn != nil {
		b.conn.Close()
	}
}

// tail is the console's last lines.
func (b *boot) tail(n int) []string {
	if b == nil || b.vm == nil {
		return nil
	}
	return b.vm.Tail(n)
}
