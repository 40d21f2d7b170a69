// Package mountinfo reads proc(5)'s /proc/PID/mountinfo: what keel-init
// unmounts at shutdown, and what keel flash refuses to overwrite.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Entry is one mount.
type Entry struct {
	Major, Minor uint32 // st_dev of the mounted filesystem (0:N for non-block filesystems)
	Target       string // where it is mounted
	FSType       string
	Source       string // the device, or what the filesystem took instead ("proc", "tmpfs")
}

// Parse reads the mountinfo format, in mount order. A line the kernel would
// not write is an error: a reader that skipped it could miss a mount.
func Parse(r io.Reader) ([]Entry, error) {
	var ms []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20) // a line holds two paths and the mount options
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 2 {
			return nil, fmt.Errorf("mountinfo: malformed line %q", sc.Text())
		}
		ma, mi, _ := strings.Cut(f[2], ":")
		major, err1 := strconv.ParseUint(ma, 10, 32)
		minor, err2 := strconv.ParseUint(mi, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo: malformed device %q in %q", f[2], sc.Text())
		}
		ms = append(ms, Entry{Major: uint32(major), Minor: uint32(minor),
			Target: Unescape(f[4]), FSType: g[0], Source: Unescape(g[1])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return ms, nil
}

// ReadFile parses a mountinfo file, e.g. /proc/self/mountinfo.
func ReadFile(name string) ([]Entry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Unescape undoes the kernel's \ooo escapes of space, tab, newline and
// backslash in the paths of /proc's mount and swap lists.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
