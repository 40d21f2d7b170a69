package qemu

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// bootTimeout is generous: OVMF alone takes 3.5 s under TCG on an idle
// host here, and 20 s with the 2 cores shared by other work.
const bootTimeout = 3 * time.Minute

// bdsFailure is how OVMF (Debian's ovmf 2022.11) reports that the virtio
// disk holds nothing to boot: its boot manager (BdsDxe) tries each boot
// option and prints one such line per failure on the serial console, e.g.
//
//	BdsDxe: failed to load Boot0002 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x2,0x0): Not Found
//
// "UEFI Misc Device" is the name OVMF gives a virtio-blk disk, so the line
// proves the firmware found our disk and tried it. After the failures it
// starts its built-in shell (shellBanner).
var bdsFailure = regexp.MustCompile(`BdsDxe: failed to load Boot[0-9A-F]{4} "UEFI Misc Device"`)

func needQEMU(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip("qemu-system-x86_64 not installed: apt-get install qemu-system-x86 ovmf")
	}
}

// emptyDisk is a 1 MiB raw image of zeros: no partition table, nothing to
// boot.
func emptyDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "empty.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a bytes.Buffer the console goroutine writes while the test
// reads.
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

func TestBootEmptyDisk(t *testing.T) {
	needQEMU(t)
	ctx := t.Context()
	vars := filepath.Join(t.TempDir(), "vars.fd")
	var tee syncBuffer
	vm, err := Start(ctx, Config{
		Disk:      emptyDisk(t),
		Accel:     "tcg",
		MemoryMiB: 256,
		Console:   &tee,
		VarsCopy:  vars,
		Timeout:   2 * bootTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	if vm.Accel() != "tcg" {
		t.Errorf("Accel() = %q", vm.Accel())
	}

	line, err := vm.ExpectRegexp(ctx, bdsFailure, bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("firmware: %s", line)
	if _, err := vm.ExpectRegexp(ctx, shellBanner, bootTimeout); err != nil {
		t.Fatal(err)
	}

	// A line that never comes: the error must show where the boot is.
	_, err = vm.Expect(ctx, "keel: ready", time.Second)
	var qe *Error
	if !errors.As(err, &qe) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("Expect(never) = %v, want an *Error wrapping ErrTimeout", err)
	}
	for _, want := range []string{"-accel tcg", "UEFI Interactive Shell", "BdsDxe: failed to load"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("timeout error lacks %q:\n%s", want, err)
		}
	}

	vm.Kill()
	if err := vm.Wait(); !errors.Is(err, ErrKilled) {
		t.Errorf("Wait after Kill = %v, want ErrKilled", err)
	}
	if !strings.Contains(tee.String(), "BdsDxe: failed to load") {
		t.Errorf("Console got no firmware output: %q", tee.String())
	}
	if !strings.Contains(vm.Log(), "UEFI Interactive Shell") {
		t.Errorf("Log() lacks the shell banner")
	}
	if fi, err := os.Stat(vars); err != nil || fi.Size() == 0 {
		t.Errorf("VarsCopy not created: %v", err)
	}
}

// TestGuestPowerOff types "reset -s" (shut down) into the firmware's shell:
// with -no-reboot QEMU then exits with status 0 and Wait returns nil, which
// is how a keel image powering itself off ends a test.
func TestGuestPowerOff(t *testing.T) {
	needQEMU(t)
	ctx := t.Context()
	in, typing := io.Pipe()
	defer typing.Close()
	vm, err := Start(ctx, Config{Disk: emptyDisk(t), Accel: "tcg", MemoryMiB: 256, Stdin: in, Timeout: 2 * bootTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	// The shell waits 5 s for a key before its prompt; a key skips that.
	if _, err := vm.Expect(ctx, "startup.nsh", bootTimeout); err != nil {
		t.Fatal(err)
	}
	typing.Write([]byte{'\r'})
	if _, err := vm.Expect(ctx, "Shell>", bootTimeout); err != nil {
		t.Fatal(err)
	}
	// One key at a time, as a person types: the emulated UART's FIFO is
	// small and the shell polls it.
	for _, c := range []byte("reset -s\r") {
		typing.Write([]byte{c})
		time.Sleep(20 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- vm.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait after power-off = %v, want nil", err)
		}
	case <-time.After(bootTimeout):
		t.Fatalf("QEMU did not exit after reset -s; last lines:\n%s", strings.Join(vm.Tail(10), "\n"))
	}
}

func TestTimeout(t *testing.T) {
	needQEMU(t)
	start := time.Now()
	vm, err := Start(t.Context(), Config{Accel: "tcg", MemoryMiB: 128, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = vm.Wait()
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("Wait = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > time.Second+stopGrace+5*time.Second {
		t.Errorf("QEMU took %v to stop", d)
	}
	// An Expect after the end reports why the VM ended.
	if _, err := vm.Expect(t.Context(), "x", time.Second); !errors.Is(err, ErrTimeout) {
		t.Errorf("Expect after timeout = %v, want ErrTimeout", err)
	}
}

// TestQEMUFails checks that QEMU's own failure reaches the caller with its
// stderr and command line.
func TestQEMUFails(t *testing.T) {
	needQEMU(t)
	vm, err := Start(t.Context(), Config{Accel: "tcg", ExtraArgs: []string{"-no-such-option"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = vm.Expect(t.Context(), "anything", bootTimeout)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Expect = %v, want ErrExited", err)
	}
	werr := vm.Wait()
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("Wait = %v, want exit status 1", werr)
	}
	for _, e := range []error{err, werr} {
		for _, want := range []string{"-no-such-option", "invalid option", "exit status 1"} {
			if !strings.Contains(e.Error(), want) {
				t.Errorf("error lacks %q:\n%s", want, e)
			}
		}
	}
}

func TestStartErrors(t *testing.T) {
	needQEMU(t)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing disk", Config{Accel: "tcg", Disk: "/nonexistent/disk.img"}, "no such file"},
		{"bad accel", Config{Accel: "whpx"}, "unknown accelerator"},
		{"missing firmware", Config{Accel: "tcg", OVMFCode: "/nonexistent/OVMF_CODE.fd"}, "not installed"},
		{"unknown disk format", Config{Accel: "tcg", DiskFormat: "vdi"}, `disk image format "vdi": want raw, qcow2, vmdk, vhdx`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := Start(t.Context(), tt.cfg)
			if err == nil {
				vm.Kill()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// TestProbeRecognisesWorkingFirmware runs the KVM probe's boot under TCG,
// which works here: it must say yes, or a working KVM would be missed.
func TestProbeRecognisesWorkingFirmware(t *testing.T) {
	needQEMU(t)
	if err := probe(t.Context(), "tcg", bootTimeout); err != nil {
		t.Fatal(err)
	}
}

// TestProbeKVM checks that the probe answers within its bound, whatever the
// answer, and caches it.
func TestProbeKVM(t *testing.T) {
	needQEMU(t)
	start := time.Now()
	ok := ProbeKVM(t.Context())
	d := time.Since(start)
	t.Logf("ProbeKVM = %v after %v", ok, d)
	if limit := probeTimeout + 2*stopGrace + 5*time.Second; d > limit {
		t.Errorf("ProbeKVM took %v, more than %v", d, limit)
	}
	start = time.Now()
	if again := ProbeKVM(t.Context()); again != ok || time.Since(start) > time.Second {
		t.Errorf("second ProbeKVM = %v after %v; want the cached %v at once", again, time.Since(start), ok)
	}
}

// TestProbeFailures runs the probe against a stand-in for QEMU that
// behaves like QEMU under a broken KVM: it must answer no, and at once when
// QEMU reports a KVM internal error.
func TestProbeFailures(t *testing.T) {
	needQEMU(t)
	tests := []struct {
		name   string
		script string
		limit  time.Duration
		want   error
	}{
		{"internal error", "echo 'KVM internal error. Suberror: 1' >&2; exec sleep 60", 5 * time.Second, ErrKilled},
		{"silent hang", "exec sleep 60", 2*time.Second + 5*time.Second, ErrTimeout},
		{"exits", "echo 'failed to initialize kvm: Permission denied' >&2; exit 1", 5 * time.Second, ErrExited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := t.TempDir()
			script := "#!/bin/sh\n" + tt.script + "\n"
			if err := os.WriteFile(filepath.Join(bin, Binary), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			start := time.Now()
			err := probe(t.Context(), "tcg", 2*time.Second)
			if d := time.Since(start); d > tt.limit {
				t.Errorf("probe took %v, want at most %v", d, tt.limit)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("probe = %v, want %v", err, tt.want)
			}
		})
	}
}
