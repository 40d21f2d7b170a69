// Package wire is the control channel between keel test (the host) and
// keel-init's test agent (the guest): JSON objects, one per line, over the
// guest's second serial port. It is the agent's only input, and the agent
// reads it only on a boot whose kernel command line names the port
// (Param), which keel test adds to the loader entries of the copy it
// boots: the image under test is the one that ships.
//
// A boot goes: the guest sends Hello before it starts any service; the
// host answers with OpBoot (and a fault to inject, if any); the guest then
// sends events (ready, verdict, blessed, hung) as they happen, and runs
// the host's requests (OpExec, OpReboot, OpPoweroff), answering each with
// the request's ID: output lines as they come, then the exit status.
package wire

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Param is the kernel command-line parameter that turns the agent on; its
// value is the port under /dev ("keel.test=ttyS1").
const Param = "keel.test"

// ValidPort reports whether port is a serial device name the agent may
// open: a name under /dev, no path.
func ValidPort(port string) error {
	if port == "" || strings.ContainsAny(port, "/.") || !strings.HasPrefix(port, "tty") && !strings.HasPrefix(port, "hvc") {
		return fmt.Errorf("%q: want a serial port's name under /dev (ttyS1, hvc0)", port)
	}
	return nil
}

// Ops the host sends.
const (
	OpBoot     = "boot"     // answers Hello: go on booting, with Fault
	OpExec     = "exec"     // run Argv, answer with Out lines and Exit
	OpReboot   = "reboot"   // reboot cleanly (services stopped, disks synced)
	OpPoweroff = "poweroff" // power off cleanly
)

// Faults OpBoot may ask for.
const (
	FaultNone = ""
	// FaultFail makes every service the health rule requires fail at
	// once, every time it starts: the boot must be judged bad.
	FaultFail = "fail"
	// FaultHang stops the boot before any service starts, so no verdict
	// ever comes: only the loader's try counter can end it.
	FaultHang = "hang"
)

// Events the guest sends.
const (
	EventReady   = "ready"   // every service is up (keel-init's ready line)
	EventVerdict = "verdict" // the health judge decided: Result good or bad
	EventBlessed = "blessed" // the trial entry was marked good
	EventHung    = "hung"    // FaultHang took effect: nothing more will come
)

// Hello is what the guest says first on each boot.
type Hello struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Slot    string `json:"slot"`
	// Trial is the try counter's entry (keel-b+2-1.conf) on a trial boot,
	// "" otherwise.
	Trial string `json:"trial,omitempty"`
	// Require are the services the health rule requires.
	Require []string `json:"require,omitempty"`
}

// Msg is one line, either way.
type Msg struct {
	// Host to guest.
	Op    string   `json:"op,omitempty"`
	Argv  []string `json:"argv,omitempty"`
	Fault string   `json:"fault,omitempty"`
	// Quiet keeps an OpExec's output off the guest's console (a status
	// query's JSON would crowd out what the console is for).
	Quiet bool `json:"quiet,omitempty"`

	// Guest to host.
	Hello  *Hello `json:"hello,omitempty"`
	Event  string `json:"event,omitempty"`
	Result string `json:"result,omitempty"` // EventVerdict: good or bad
	Detail string `json:"detail,omitempty"`
	Out    string `json:"out,omitempty"`  // a line of a command's output, without its newline
	Exit   *int   `json:"exit,omitempty"` // a command's exit status; -1 if it did not run
	Error  string `json:"error,omitempty"`

	// ID pairs a request with its answers.
	ID int `json:"id,omitempty"`
}

// Encode is m as one line.
func Encode(m Msg) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // Msg has only strings, ints and slices of them
	}
	return append(b, '\n')
}

// MaxLine bounds a line either side reads: a longer one is an error, not
// a reason to buffer without end.
const MaxLine = 64 << 10

// Decode reads one line. Anything but a JSON object (the serial port's
// noise before the guest opened it, say) is an error the reader skips.
func Decode(line []byte) (Msg, error) {
	var m Msg
	s := strings.TrimSpace(string(line))
	if !strings.HasPrefix(s, "{") {
		return m, fmt.Errorf("not a message: %.40q", s)
	}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return m, fmt.Errorf("bad message %.40q: %w", s, err)
	}
	return m, nil
}
