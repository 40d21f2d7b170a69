package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// console serialises whole lines onto the system console, so keel-init's
// own messages and every service's output interleave line by line, never
// mid-line. It is the only log a machine without a shell has, and what a
// QEMU test reads.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func newConsole(w io.Writer) *console { return &console{w: w} }

// logf prints one "keel-init: " line.
func (c *console) logf(format string, args ...any) {
	c.line("keel-init: " + fmt.Sprintf(format, args...))
}

// line prints s and a newline as one write.
func (c *console) line(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(c.w, s+"\n")
}

// copyLines copies r to the console line by line, each prefixed, until r
// ends (every holder of the pipe's write end has exited). A line longer than
// the buffer is cut into several, rather than held back.
func (c *console) copyLines(r io.ReadCloser, prefix string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 4096)
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			if b[len(b)-1] == '\n' {
				b = b[:len(b)-1]
			}
			c.line(prefix + string(b))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// ensureConsoleFds makes sure fds 0, 1 and 2 are open. The kernel opens
// /dev/console for init if the initramfs has it; if not, they are closed,
// and once devtmpfs is mounted we can open it ourselves.
func ensureConsoleFds() {
	if _, err := unix.FcntlInt(1, unix.F_GETFD, 0); err == nil {
		return
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for i := 0; i <= 2; i++ {
		if i != fd {
			_ = unix.Dup3(fd, i, 0)
		}
	}
	if fd > 2 {
		unix.Close(fd)
	}
	os.Stdout = os.NewFile(1, "/dev/console")
}
