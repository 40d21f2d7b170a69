package qemu

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCleanLine(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "keel: ready busybox 1.0 slot=a", "keel: ready busybox 1.0 slot=a"},
		{"crlf", "EDK II\r", "EDK II"},
		// Lines as OVMF 2022.11 prints them on this host's serial console.
		{"ovmf clear screen", "\x1b[2J\x1b[01;01H\x1b[01;01HUEFI Interactive Shell v2.2\r", "UEFI Interactive Shell v2.2"},
		{"ovmf colours", "\x1b[1m\x1b[33m\x1b[40mMapping table\x1b[0m\x1b[37m\x1b[40m\r", "Mapping table"},
		{"ovmf mode set", "\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: failed", "BdsDxe: failed"},
		{"ovmf prompt", "\x1b[10;01H\x1b[1m\x1b[33m\x1b[40mShell> \x1b[0m", "Shell> "},
		{"private mode", "\x1b[?25l[  OK  ] Started", "[  OK  ] Started"},
		{"bare cr inside", "50%\r100%\r", "50%100%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cleanLine([]byte(tt.in)); got != tt.want {
				t.Errorf("cleanLine(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// feedConsole starts a console reading from a pipe; the returned writer is
// the guest's side.
func feedConsole(t *testing.T, tee io.Writer) (*console, *io.PipeWriter) {
	t.Helper()
	c := newConsole()
	pr, pw := io.Pipe()
	go c.feed(pr, tee)
	t.Cleanup(func() { pw.Close() })
	return c, pw
}

func contains(s string) func(string) bool {
	return func(l string) bool { return strings.Contains(l, s) }
}

func TestConsoleExpectOrder(t *testing.T) {
	var tee bytes.Buffer
	c, w := feedConsole(t, &tee)
	ctx := context.Background()
	io.WriteString(w, "one\r\ntwo\nthree\nShell> ")

	steps := []struct {
		want string
		line string
		err  error
	}{
		{"two", "two", nil},
		// "one" came before the last match, so it is consumed.
		{"one", "", ErrTimeout},
		{"three", "three", nil},
		// A prompt without a newline matches.
		{"Shell>", "Shell> ", nil},
		// ...and is consumed with the rest of its line.
		{"Shell>", "", ErrTimeout},
	}
	for _, s := range steps {
		line, err := c.expect(ctx, contains(s.want), 200*time.Millisecond)
		if line != s.line || !errors.Is(err, s.err) {
			t.Fatalf("expect(%q) = %q, %v; want %q, %v", s.want, line, err, s.line, s.err)
		}
	}
	io.WriteString(w, "typed\nfour\n")
	// What follows the prompt on its line (the echo of typed input) was
	// consumed with the prompt; the lines after it were not.
	if line, err := c.expect(ctx, contains("typed"), 200*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("expect(typed) = %q, %v; want a timeout", line, err)
	}
	if line, err := c.expect(ctx, contains("four"), time.Second); line != "four" || err != nil {
		t.Errorf("expect(four) = %q, %v", line, err)
	}
	w.Close()
	if _, err := c.expect(ctx, contains("five"), time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("after end of file: %v, want ErrExited", err)
	}
	if got, want := tee.String(), "one\r\ntwo\nthree\nShell> typed\nfour\n"; got != want {
		t.Errorf("tee got %q, want %q", got, want)
	}
}

func TestConsoleExpectWaits(t *testing.T) {
	c, w := feedConsole(t, nil)
	go func() {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(w, "Loading Linux ")
		time.Sleep(100 * time.Millisecond)
		io.WriteString(w, "6.1.0 ...\nkeel: ready x 1 slot=a\n")
	}()
	line, err := c.expect(context.Background(), contains("keel: ready"), 5*time.Second)
	if err != nil || line != "keel: ready x 1 slot=a" {
		t.Fatalf("expect = %q, %v", line, err)
	}
	if tail := c.tail(10); len(tail) != 2 || tail[0] != "Loading Linux 6.1.0 ..." {
		t.Errorf("tail = %q", tail)
	}
}

func TestConsoleExpectContext(t *testing.T) {
	c, _ := feedConsole(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.expect(ctx, contains("x"), 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expect = %v, want the context's error", err)
	}
}

func TestConsoleKeepsLastLines(t *testing.T) {
	c, w := feedConsole(t, nil)
	var b strings.Builder
	for i := 0; i < maxLines+50; i++ {
		b.WriteString("line\n")
	}
	b.WriteString("last\n")
	io.WriteString(w, b.String())
	if _, err := c.expect(context.Background(), contains("last"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(c.tail(2 * maxLines)); n != maxLines {
		t.Errorf("kept %d lines, want %d", n, maxLines)
	}
}

func TestConsoleSplitsEndlessLine(t *testing.T) {
	c, w := feedConsole(t, nil)
	io.WriteString(w, strings.Repeat("x", maxLineLen+10)+"\n")
	w.Close()
	c.expect(context.Background(), func(string) bool { return false }, time.Second)
	tail := c.tail(10)
	if len(tail) != 2 || len(tail[0]) != maxLineLen || len(tail[1]) != 10 {
		t.Errorf("got %d lines", len(tail))
	}
}

// TestExpectTimeoutError checks what a failed Expect tells its reader: the
// pattern, the cause, QEMU's command line and stderr, and the last 40
// console lines.
func TestExpectTimeoutError(t *testing.T) {
	c, w := feedConsole(t, nil)
	v := &VM{
		con:     c,
		stderr:  &tailBuffer{max: 100},
		cmdline: "qemu-system-x86_64 -machine q35 -accel tcg",
		done:    make(chan struct{}),
	}
	v.stderr.Write([]byte("qemu-system-x86_64: warning: something\n"))
	for i := 1; i <= 100; i++ {
		io.WriteString(w, "console line "+strconv.Itoa(i)+"\n")
	}
	_, err := v.Expect(context.Background(), "keel: ready", 300*time.Millisecond)
	var qe *Error
	if !errors.As(err, &qe) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %#v, want an *Error wrapping ErrTimeout", err)
	}
	if len(qe.Console) != tailLines || qe.Console[0] != "console line 61" || qe.Console[39] != "console line 100" {
		t.Errorf("Console = %q, want lines 61..100", qe.Console)
	}
	msg := err.Error()
	for _, want := range []string{
		`qemu: waiting 300ms for "keel: ready": timed out`,
		"command: qemu-system-x86_64 -machine q35 -accel tcg",
		"    qemu-system-x86_64: warning: something",
		"  | console line 61\n",
		"  | console line 100",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "console line 60\n") {
		t.Errorf("error message has more than %d lines:\n%s", tailLines, msg)
	}
}
