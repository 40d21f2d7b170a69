package qemu

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

const (
	// maxLines is how many console lines a VM keeps for Expect and for
	// error messages; older ones are dropped so that a long `keel run`
	// does not grow without bound.
	maxLines = 10000
	// maxLineLen splits a line that never ends (firmware redrawing one
	// screen line with cursor movements, or binary noise).
	maxLineLen = 64 << 10
)

// ansiEscape matches the terminal control sequences OVMF and systemd put on
// the serial console (colours, cursor movement, screen clearing), which are
// removed before matching so that patterns are written as plain text.
var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?=]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>78cDEHM])`)

// cleanLine is a console line as Expect sees it: without the carriage
// return before the newline and without terminal control sequences.
func cleanLine(b []byte) string {
	s := strings.TrimRight(string(b), "\r")
	s = ansiEscape.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "\r", "")
}

// console splits the serial output into lines and lets Expect wait for
// them. Lines are kept cleaned; the raw bytes go to Config.Console.
type console struct {
	mu      sync.Mutex
	lines   []string // complete lines; lines[0] is line number base
	base    int
	partial []byte // the line being received
	next    int    // the first line number Expect has not consumed
	closed  bool   // the console reached end of file
	changed chan struct{}
}

func newConsole() *console {
	return &console{changed: make(chan struct{})}
}

// feed reads r to its end, splitting it into lines and copying it to tee.
func (c *console) feed(r io.Reader, tee io.Writer) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if tee != nil {
				if _, werr := tee.Write(buf[:n]); werr != nil {
					tee = nil
				}
			}
			c.add(buf[:n])
		}
		if err != nil {
			break
		}
	}
	c.mu.Lock()
	if len(c.partial) > 0 {
		c.appendLine()
	}
	c.closed = true
	c.notify()
	c.mu.Unlock()
}

func (c *console) add(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.partial = append(c.partial, b...)
			if len(c.partial) >= maxLineLen {
				c.appendLine()
			}
			break
		}
		c.partial = append(c.partial, b[:i]...)
		c.appendLine()
		b = b[i+1:]
	}
	c.notify()
}

// appendLine ends the partial line. Called with mu held.
func (c *console) appendLine() {
	c.lines = append(c.lines, cleanLine(c.partial))
	c.partial = c.partial[:0]
	if len(c.lines) > maxLines {
		drop := len(c.lines) - maxLines
		c.lines = append(c.lines[:0:0], c.lines[drop:]...)
		c.base += drop
	}
}

// notify wakes every waiter. Called with mu held.
func (c *console) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// tail returns up to n of the last lines, with the partial line last.
func (c *console) tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := c.lines
	if len(c.partial) > 0 {
		all = append(all[:len(all):len(all)], cleanLine(c.partial))
	}
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return append([]string(nil), all...)
}

// expect waits for a line that match accepts, looking at the lines not yet
// consumed by an earlier expect, and consumes up to it. A partial line (a
// prompt without a newline) matches too; the line it is part of is then
// consumed. It returns errExited if the console ends first.
func (c *console) expect(ctx context.Context, match func(string) bool, timeout time.Duration) (string, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	// scanned is the first line this call has not looked at; lines are
	// consumed only by a match, so a failed expect leaves them for the next.
	scanned := -1
	for {
		c.mu.Lock()
		end := c.base + len(c.lines)
		for i := max(c.next, c.base, scanned); i < end; i++ {
			if l := c.lines[i-c.base]; match(l) {
				c.next = i + 1
				c.mu.Unlock()
				return l, nil
			}
		}
		scanned = end
		if c.next <= end && len(c.partial) > 0 {
			if l := cleanLine(c.partial); match(l) {
				c.next = end + 1
				c.mu.Unlock()
				return l, nil
			}
		}
		if c.closed {
			c.mu.Unlock()
			return "", ErrExited
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-expired:
			return "", ErrTimeout
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
