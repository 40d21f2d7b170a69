package profiles

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes.
//
// In a profile it is an integer (bytes) or a string: a number, optionally
// with a fraction, followed by a unit. Binary units are powers of 1024 and
// the short forms mean the same, because that is what disk tools (sgdisk,
// mkfs, truncate) mean by them:
//
//	K, Ki, KiB = 2^10   M, Mi, MiB = 2^20   G, Gi, GiB = 2^30   T, Ti, TiB = 2^40
//
// Decimal units are spelled with a B and no i:
//
//	KB = 10^3   MB = 10^6   GB = 10^9   TB = 10^12
//
// B or no unit means bytes. Units are case-insensitive except that a lone
// "b" is refused (bits or bytes?). The result must be a whole number of
// bytes greater than zero: "1.5GiB" is fine, "0.3K" is not.
type Size int64

// Binary size units.
const (
	KiB Size = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// ParseSize parses a size as written in a profile (see Size).
func ParseSize(s string) (Size, error) {
	bad := fmt.Errorf("%q is not a size", s)
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") || unit == "b" {
		return 0, bad
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, bad
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, bad
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if r.Sign() <= 0 {
		return 0, fmt.Errorf("%q: a size must be greater than zero", s)
	}
	return Size(r.Num().Int64()), nil
}

// String writes the size in the largest binary unit that divides it, so that
// it parses back to the same value: "2GiB", "512MiB", "1000B".
func (s Size) String() string {
	for _, u := range []struct {
		n    Size
		name string
	}{{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if s != 0 && s%u.n == 0 {
			return strconv.FormatInt(int64(s/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// FileMode is a file's permission bits (including setuid, setgid and
// sticky). In a profile it is always read as octal, whether written as a
// string ("0755", "755", "0o755") or a YAML integer (0755, 755), because a
// decimal mode is never what anybody means.
type FileMode uint32

// ParseFileMode parses a mode as written in a profile (see FileMode).
func ParseFileMode(s string) (FileMode, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	if t == "" || len(t) > 5 {
		return 0, fmt.Errorf("%q is not an octal mode", s)
	}
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not an octal mode", s)
	}
	if v > 0o7777 {
		return 0, fmt.Errorf("%q is not a mode: more than 07777", s)
	}
	return FileMode(v), nil
}

// String writes the mode as four octal digits, e.g. "0755".
func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// Duration is a time.Duration written as Go writes durations: "10s",
// "1m30s", "500ms".
type Duration time.Duration

// ParseDuration parses a duration as written in a profile; negative ones
// are refused.
func ParseDuration(s string) (Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (like 10s, 1m30s)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q: a duration must not be negative", s)
	}
	return Duration(d), nil
}

// String writes the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }
