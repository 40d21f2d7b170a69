package qemu

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// AccelEnv names the environment variable that chooses the accelerator
// ("tcg" or "kvm") instead of the KVM probe.
const AccelEnv = "KEEL_ACCEL"

// probeTimeout bounds the KVM probe. Under a working KVM the firmware
// reaches its shell in about a second; TCG takes ~3.5 s here (more on a
// loaded host), so a KVM slower than this is no gain anyway.
const probeTimeout = 10 * time.Second

// shellBanner is what the probe waits for. Booted without a disk (and with
// no network), OVMF's boot manager fails the empty DVD drive and starts its
// built-in shell, which prints "UEFI Interactive Shell v2.2" on the serial
// console. Seeing it proves the firmware ran through all its phases and
// started an EFI application, which is where a broken KVM fails ("KVM
// internal error" or a hang).
var shellBanner = regexp.MustCompile(`UEFI Interactive Shell`)

// ResolveAccel turns Config.Accel into the accelerator QEMU gets. "tcg"
// and "kvm" are taken as they are. "" and "auto" take $KEEL_ACCEL if set,
// and otherwise "kvm" only if ProbeKVM says KVM works.
func ResolveAccel(ctx context.Context, accel string) (string, error) {
	switch accel {
	case "tcg", "kvm":
		return accel, nil
	case "", "auto":
	default:
		return "", fmt.Errorf("unknown accelerator %q (want tcg, kvm or auto)", accel)
	}
	switch env := os.Getenv(AccelEnv); env {
	case "tcg", "kvm":
		return env, nil
	case "", "auto":
	default:
		return "", fmt.Errorf("%s=%q: want tcg, kvm or auto", AccelEnv, env)
	}
	if ProbeKVM(ctx) {
		return "kvm", nil
	}
	return "tcg", nil
}

// kvmProbe caches ProbeKVM's answer for the life of the process: the probe
// costs a firmware boot, and whether KVM works does not change.
var kvmProbe struct {
	sync.Mutex
	done, ok bool
}

// ProbeKVM reports whether QEMU can boot OVMF under KVM on this host: it
// needs a /dev/kvm that can be opened, and a firmware boot with -accel kvm
// that reaches the UEFI shell within 10 s. The answer is cached for the
// process, except when ctx ends the probe early (then it is false and not
// cached).
func ProbeKVM(ctx context.Context) bool {
	kvmProbe.Lock()
	defer kvmProbe.Unlock()
	if kvmProbe.done {
		return kvmProbe.ok
	}
	ok := probe(ctx, "kvm", probeTimeout) == nil
	if ctx.Err() != nil {
		return false
	}
	kvmProbe.done, kvmProbe.ok = true, ok
	return ok
}

// probe boots the firmware alone under accel and waits for its shell.
func probe(ctx context.Context, accel string, timeout time.Duration) error {
	if accel == "kvm" {
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return err
		}
		f.Close()
	}
	vm, err := Start(ctx, Config{Accel: accel, MemoryMiB: 256, Timeout: timeout + stopGrace})
	if err != nil {
		return err
	}
	defer vm.Kill()
	// A broken KVM often stops the guest with "KVM internal error" on
	// stderr and leaves QEMU running: stop waiting as soon as it says so.
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-vm.Done():
				return
			case <-tick.C:
				if strings.Contains(vm.stderr.String(), "KVM internal error") {
					vm.Kill()
					return
				}
			}
		}
	}()
	_, err = vm.ExpectRegexp(ctx, shellBanner, timeout)
	return err
}
