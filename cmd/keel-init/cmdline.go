package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// bootParams is what keel-init takes from the kernel command line.
type bootParams struct {
	Root     devSpec       // root=PARTUUID=<uuid> | PARTLABEL=<name> | /dev/<name>
	Data     devSpec       // keel.data=...; zero means the partition labelled "data"
	Slot     string        // keel.slot=a|b
	Init     string        // init=; "" means /sbin/init
	RootWait time.Duration // keel.rootwait=<seconds>; 0 means defaultRootWait
	NoData   bool          // keel.data=none: /var is a tmpfs, by request
	NoGrow   bool          // keel.grow=no: the data partition keeps its size on a larger disk
	// RootHash (roothash=, hex) mounts the root through dm-verity, its
	// hash tree at byte VerityOffset of the partition (keel.verity=).
	RootHash     []byte
	VerityOffset int64
}

const defaultRootWait = 10 * time.Second

// devSpec names a block device the way root= does.
type devSpec struct {
	Kind  string // "PARTUUID", "PARTLABEL" or "path"
	Value string // the UUID (lowercased), label, or /dev path
}

func (d devSpec) String() string {
	if d.Kind == "path" {
		return d.Value
	}
	return d.Kind + "=" + d.Value
}

func parseDevSpec(s string) (devSpec, error) {
	switch {
	case strings.HasPrefix(s, "PARTUUID="):
		v := strings.ToLower(strings.TrimPrefix(s, "PARTUUID="))
		if v == "" {
			return devSpec{}, fmt.Errorf("%q: empty PARTUUID", s)
		}
		return devSpec{"PARTUUID", v}, nil
	case strings.HasPrefix(s, "PARTLABEL="):
		v := strings.TrimPrefix(s, "PARTLABEL=")
		if v == "" {
			return devSpec{}, fmt.Errorf("%q: empty PARTLABEL", s)
		}
		return devSpec{"PARTLABEL", v}, nil
	case strings.HasPrefix(s, "/dev/") && len(s) > len("/dev/"):
		return devSpec{"path", s}, nil
	}
	return devSpec{}, fmt.Errorf("%q: want PARTUUID=<uuid>, PARTLABEL=<name> or /dev/<name>", s)
}

// splitCmdline splits the kernel command line into words the way the kernel
// does (lib/cmdline.c next_arg): on spaces, with double quotes grouping and
// removed.
func splitCmdline(s string) []string {
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// parseCmdline reads the parameters keel-init needs. Everything else on the
// line is the kernel's business and is ignored. A later repeat of a
// parameter wins, as in the kernel.
func parseCmdline(line string) (bootParams, error) {
	var p bootParams
	for _, w := range splitCmdline(line) {
		if w == "--" {
			break // the rest is for init's argv
		}
		k, v, _ := strings.Cut(w, "=")
		var err error
		switch k {
		case "root":
			p.Root, err = parseDevSpec(v)
		case "keel.data":
			if v == "none" {
				p.NoData, p.Data = true, devSpec{}
			} else {
				p.NoData = false
				p.Data, err = parseDevSpec(v)
			}
		case "keel.grow":
			switch v {
			case "yes":
				p.NoGrow = false
			case "no":
				p.NoGrow = true
			default:
				err = fmt.Errorf("%q: want yes or no", v)
			}
		case "keel.slot":
			if v != "a" && v != "b" {
				err = fmt.Errorf("%q: want a or b", v)
			}
			p.Slot = v
		case "init":
			if !strings.HasPrefix(v, "/") {
				err = fmt.Errorf("%q: not an absolute path", v)
			}
			p.Init = v
		case "roothash":
			p.RootHash, err = hex.DecodeString(v)
			if err == nil && len(p.RootHash) != sha256.Size {
				err = fmt.Errorf("%q: want %d hex digits (sha256)", v, 2*sha256.Size)
			}
		case "keel.verity":
			p.VerityOffset, err = strconv.ParseInt(v, 10, 64)
			if err == nil && (p.VerityOffset <= 0 || p.VerityOffset%4096 != 0) {
				err = fmt.Errorf("%q: want the hash tree's byte offset, a positive multiple of 4096", v)
			}
		case "keel.rootwait":
			var n float64
			n, err = strconv.ParseFloat(v, 64)
			if err == nil && (n <= 0 || n > 3600) {
				err = fmt.Errorf("%q: want seconds between 0 and 3600", v)
			}
			p.RootWait = time.Duration(n * float64(time.Second))
		default:
			continue
		}
		if err != nil {
			return bootParams{}, fmt.Errorf("kernel command line: %s: %w", k, err)
		}
	}
	if (p.RootHash == nil) != (p.VerityOffset == 0) {
		return bootParams{}, fmt.Errorf("kernel command line: roothash= and keel.verity= go together (a verity root needs both)")
	}
	return p, nil
}

// cmdlineValue is the PID 1 role's lenient read of one parameter (the
// slot for the ready line, keel test's port): a malformed root= is not its
// concern. The last one wins, as in the kernel.
func cmdlineValue(line, key string) string {
	val := ""
	for _, w := range splitCmdline(line) {
		if w == "--" {
			break
		}
		if v, ok := strings.CutPrefix(w, key+"="); ok {
			val = v
		}
	}
	return val
}
