package qemu

import (
	"strings"
	"sync"
)

// tailLines is how many console lines an Error shows: enough to see where
// a boot stopped, few enough to read in a test log.
const tailLines = 40

// Error is what Start, Expect and Wait return when QEMU or the guest
// misbehaves. It carries what is needed to see why without rerunning:
// QEMU's command line, its stderr and the end of the console.
type Error struct {
	// Op says what was being done: `waiting 2m0s for "keel: ready"`.
	Op string
	// Err is the cause: ErrTimeout, ErrExited, ErrKilled, a context
	// error, or the process's exit error.
	Err error
	// Cmdline is QEMU's command line, quoted for a shell.
	Cmdline string
	// Stderr is the end of QEMU's stderr.
	Stderr string
	// Console is the end of the serial console, oldest first.
	Console []string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("qemu: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	b.WriteString("\n  command: ")
	b.WriteString(e.Cmdline)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString("\n  stderr:\n")
		for _, l := range strings.Split(s, "\n") {
			b.WriteString("    ")
			b.WriteString(l)
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("\n  stderr: (empty)\n")
	}
	if len(e.Console) == 0 {
		b.WriteString("  console: (no output)")
		return b.String()
	}
	b.WriteString("  last console lines:")
	for _, l := range e.Console {
		b.WriteString("\n  | ")
		b.WriteString(l)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// tailBuffer keeps the last max bytes written to it: QEMU's stderr is
// usually a line or two, but a broken accelerator can dump registers in a
// loop.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
