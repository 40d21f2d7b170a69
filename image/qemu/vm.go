package qemu

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// stopGrace is how long QEMU gets to exit after SIGTERM (it flushes the
// disk images) before it is killed.
const stopGrace = 5 * time.Second

// VM is a running QEMU.
type VM struct {
	cmd     *exec.Cmd
	cmdline string
	accel   string
	con     *console
	stderr  *tailBuffer
	ctx     context.Context // the VM's life: cancelled by Kill, Timeout or the caller
	cancel  context.CancelCauseFunc
	tmpDir  string // removed after exit; "" if none was made

	done      chan struct{} // closed when QEMU has exited and the console is read
	cause     error         // why QEMU ended: nil (exit 0), exit error, ErrKilled, ErrTimeout, ctx error
	waitErr   error         // cause as an *Error, or nil
	cleanOnce sync.Once
}

// Start starts QEMU for cfg and returns at once; the VM runs until the
// guest powers off, Kill is called, cfg.Timeout runs out or ctx is done.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	m, err := machineFor(cfg.Arch)
	if err != nil {
		return nil, err
	}
	if m.machine != "q35" && cfg.SecureBoot {
		// OVMF's SMM build is x86 only.
		return nil, fmt.Errorf("%s guests boot by plain UEFI or U-Boot: no Secure Boot", cfg.Arch)
	}
	if cfg.BIOS && m.bios != "" && !exists(m.bios) {
		return nil, fmt.Errorf("%s %w: apt-get install %s", m.bios, ErrNotInstalled, m.biosPackage)
	}
	bin, err := exec.LookPath(m.binary)
	if err != nil {
		return nil, fmt.Errorf("%s %w: apt-get install %s", m.binary, ErrNotInstalled, m.install)
	}
	if !slices.Contains(diskFormats, cmp.Or(cfg.DiskFormat, "raw")) {
		return nil, fmt.Errorf("disk image format %q: want %s", cfg.DiskFormat, strings.Join(diskFormats, ", "))
	}
	var code, varsTemplate string
	if !cfg.BIOS {
		if code, varsTemplate, err = firmware(m, cfg.OVMFCode, cfg.OVMFVars); err != nil {
			return nil, err
		}
	}
	for _, d := range append([]string{cfg.Disk}, cfg.ExtraDisks...) {
		if d == "" {
			continue
		}
		// QEMU would say so too, but only on stderr after starting.
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("disk image: %w", err)
		}
	}
	accel := cfg.Accel
	if (accel == "" || accel == "auto") && m.goarch != runtime.GOARCH {
		// KVM runs guests of the host's own architecture only: no probe
		// (which boots an x86_64 guest), and $KEEL_ACCEL=kvm cannot apply.
		accel = "tcg"
	}
	accel, err = ResolveAccel(ctx, accel)
	if err != nil {
		return nil, err
	}

	v := &VM{accel: accel, con: newConsole(), stderr: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	vars := cfg.VarsCopy
	if cfg.BIOS {
		vars = ""
	} else if vars == "" {
		if v.tmpDir, err = os.MkdirTemp("", "keel-qemu-"); err != nil {
			return nil, err
		}
		vars = filepath.Join(v.tmpDir, filepath.Base(varsTemplate))
	}
	if !cfg.BIOS && !exists(vars) {
		if err := copyFile(vars, varsTemplate); err != nil {
			v.cleanup()
			return nil, fmt.Errorf("copying the OVMF variable store: %w", err)
		}
	}

	argv := args(&cfg, accel, code, vars)
	v.cmdline = shellJoin(append([]string{m.binary}, argv...))
	v.ctx, v.cancel = context.WithCancelCause(ctx)
	cmdCtx := v.ctx
	var stopTimer context.CancelFunc = func() {}
	if cfg.Timeout > 0 {
		cmdCtx, stopTimer = context.WithTimeoutCause(v.ctx, cfg.Timeout, ErrTimeout)
	}
	v.cmd = exec.CommandContext(cmdCtx, bin, argv...)
	v.cmd.Stderr = v.stderr
	v.cmd.SysProcAttr = sysProcAttr()
	v.cmd.WaitDelay = stopGrace
	v.cmd.Cancel = func() error {
		if errors.Is(context.Cause(cmdCtx), ErrKilled) {
			return v.cmd.Process.Kill()
		}
		// Let QEMU close its images cleanly; WaitDelay kills it otherwise.
		return v.cmd.Process.Signal(sigTerm)
	}
	// Everything made so far is undone if QEMU does not start.
	fail := func(err error, files ...*os.File) (*VM, error) {
		for _, f := range files {
			f.Close()
		}
		stopTimer()
		v.cancel(nil)
		close(v.done) // ends a stdin copy
		v.cleanup()
		return nil, err
	}
	// The console is a pipe we read ourselves rather than cmd.StdoutPipe,
	// whose reader Wait closes: the last lines before an exit must not be
	// lost.
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	v.cmd.Stdout = pw
	stdin, stdinPipe, err := v.stdin(cfg.Stdin)
	if err != nil {
		return fail(err, pr, pw)
	}
	v.cmd.Stdin = stdin
	if err := v.cmd.Start(); err != nil {
		return fail(&Error{Op: "starting", Err: err, Cmdline: v.cmdline}, pr, pw, stdinPipe)
	}
	// QEMU holds its own copies of the child's ends.
	pw.Close()
	if stdinPipe != nil {
		stdinPipe.Close()
	}

	fed := make(chan struct{})
	go func() {
		v.con.feed(pr, cfg.Console)
		pr.Close()
		close(fed)
	}()
	go func() {
		err := v.cmd.Wait()
		<-fed
		switch {
		case cmdCtx.Err() != nil:
			v.cause = context.Cause(cmdCtx)
		case err != nil:
			v.cause = err
		}
		stopTimer()
		v.cancel(nil)
		if v.cause != nil {
			v.waitErr = v.errorf("running", v.cause)
		}
		v.cleanup()
		close(v.done)
	}()
	return v, nil
}

// stdin returns what QEMU gets as its standard input for r. A file (a
// terminal, for `keel run`) is passed as it is. Any other reader is copied
// through a pipe by a goroutine of our own rather than by exec.Cmd, whose
// Wait would wait for a reader that has nothing more to say but has not
// ended (a test's io.Pipe): the copy stops when QEMU exits, and a Read
// blocked at that moment is left to r's owner to end.
// The pipe's read end is also returned as pipe, for the caller to close
// once QEMU has it.
func (v *VM) stdin(r io.Reader) (_ io.Reader, pipe *os.File, _ error) {
	if r == nil {
		return nil, nil, nil
	}
	if f, ok := r.(*os.File); ok {
		return f, nil, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	go func() {
		go func() {
			<-v.done
			pw.Close()
		}()
		io.Copy(pw, r)
		pw.Close()
	}()
	return pr, pr, nil
}

// cleanup removes the temporary directory holding the variable store.
func (v *VM) cleanup() {
	v.cleanOnce.Do(func() {
		if v.tmpDir != "" {
			os.RemoveAll(v.tmpDir)
		}
	})
}

func (v *VM) errorf(op string, err error) *Error {
	return &Error{Op: op, Err: err, Cmdline: v.cmdline, Stderr: v.stderr.String(), Console: v.con.tail(tailLines)}
}

// Expect waits up to timeout (0: no limit) for a console line containing
// substr, and returns that line. Lines are matched without terminal control
// sequences and carriage returns; each line is matched once, by the first
// Expect that reaches it, so successive calls follow the boot in order.
// A prompt not yet ended by a newline matches too.
//
// On failure the error is an *Error wrapping ErrTimeout, ErrExited (QEMU
// ended first), ErrKilled, or ctx's error, and shows the last console lines.
func (v *VM) Expect(ctx context.Context, substr string, timeout time.Duration) (string, error) {
	return v.expect(ctx, fmt.Sprintf("%q", substr), func(l string) bool { return strings.Contains(l, substr) }, timeout)
}

// ExpectRegexp is Expect for the first line re matches.
func (v *VM) ExpectRegexp(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (string, error) {
	return v.expect(ctx, "/"+re.String()+"/", re.MatchString, timeout)
}

func (v *VM) expect(ctx context.Context, what string, match func(string) bool, timeout time.Duration) (string, error) {
	line, err := v.con.expect(ctx, match, timeout)
	if err == nil {
		return line, nil
	}
	op := "waiting for " + what
	if timeout > 0 {
		op = fmt.Sprintf("waiting %v for %s", timeout, what)
	}
	if errors.Is(err, ErrExited) {
		// The console ends when QEMU does; wait for its status, which says
		// whether it exited on its own, timed out or was killed.
		select {
		case <-v.done:
			switch {
			case v.cause == nil:
				err = fmt.Errorf("%w with status 0", ErrExited)
			case errors.Is(v.cause, ErrKilled) || errors.Is(v.cause, ErrTimeout):
				err = v.cause
			default:
				err = fmt.Errorf("%w: %w", ErrExited, v.cause)
			}
		case <-time.After(stopGrace):
		}
	}
	return "", v.errorf(op, err)
}

// Wait waits for QEMU to exit. It returns nil if QEMU exited with status 0,
// which with -no-reboot is what a guest powering off (or rebooting) gives;
// otherwise an *Error wrapping the exit error, ErrTimeout, ErrKilled or the
// context's error.
func (v *VM) Wait() error {
	<-v.done
	if v.waitErr == nil {
		return nil
	}
	return v.waitErr
}

// Kill stops QEMU at once and waits for it to exit. It is safe to call more
// than once and after QEMU has exited.
func (v *VM) Kill() {
	v.cancel(ErrKilled)
	<-v.done
}

// Done is closed when QEMU has exited.
func (v *VM) Done() <-chan struct{} { return v.done }

// Accel is the accelerator QEMU was started with: "tcg" or "kvm".
func (v *VM) Accel() string { return v.accel }

// Cmdline is QEMU's command line, quoted for a shell.
func (v *VM) Cmdline() string { return v.cmdline }

// Tail returns up to n of the last console lines, cleaned as Expect sees
// them.
func (v *VM) Tail(n int) []string { return v.con.tail(n) }

// Log returns the console lines kept so far (the last 10000), cleaned as
// Expect sees them.
func (v *VM) Log() string { return strings.Join(v.con.tail(maxLines+1), "\n") }
