package ext4

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Helpers around the real readers: e2fsck, dumpe2fs and debugfs from
// e2fsprogs, and the kernel through mount.

func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed: apt-get install %s", tool, pkg)
	}
}

var (
	e2fsckVersion = regexp.MustCompile(`^e2fsck \d+\.\d+`)
	e2fsckPass    = regexp.MustCompile(`^Pass [1-5]: [A-Za-z ,]+$`)
	e2fsckSummary = regexp.MustCompile(`^\S*: (\d+)/(\d+) files \(\d+\.\d% non-contiguous\), (\d+)/(\d+) blocks$`)
)

// fsckResult is e2fsck's summary line.
type fsckResult struct {
	usedInodes, inodes, usedBlocks, blocks int
}

// e2fsckClean runs `e2fsck -fn` and fails the test unless it exits 0 and
// prints nothing but its version, the five pass headers and the summary.
func e2fsckClean(t *testing.T, img string, env ...string) fsckResult {
	t.Helper()
	needTool(t, "e2fsck", "e2fsprogs")
	cmd := exec.Command("e2fsck", "-fn", img)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
	var r fsckResult
	passes, summary := 0, false
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch m := e2fsckSummary.FindStringSubmatch(l); {
		case e2fsckVersion.MatchString(l):
		case e2fsckPass.MatchString(l):
			passes++
		case m != nil && !summary:
			summary = true
			r.usedInodes, _ = strconv.Atoi(m[1])
			r.inodes, _ = strconv.Atoi(m[2])
			r.usedBlocks, _ = strconv.Atoi(m[3])
			r.blocks, _ = strconv.Atoi(m[4])
		default:
			t.Fatalf("e2fsck -fn %s: unexpected output line %q\nfull output:\n%s", img, l, out)
		}
	}
	if passes != 5 || !summary {
		t.Fatalf("e2fsck -fn %s: want 5 passes and a summary\n%s", img, out)
	}
	return r
}

// dumpe2fsHeader returns the `dumpe2fs -h` fields, keyed by their name.
func dumpe2fsHeader(t *testing.T, img string) map[string]string {
	t.Helper()
	needTool(t, "dumpe2fs", "e2fsprogs")
	var stderr bytes.Buffer
	cmd := exec.Command("dumpe2fs", "-h", img)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h %s: %v\n%s", img, err, stderr.Bytes())
	}
	fields := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return fields
}

// debugfs runs one debugfs request (read-only unless -w is in args) and
// returns its output; debugfs reports request errors on stderr with exit 0,
// so any stderr line other than its banner fails the test.
func debugfs(t *testing.T, img string, args ...string) string {
	t.Helper()
	needTool(t, "debugfs", "e2fsprogs")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("debugfs", append(args, img)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs %s %s: %v\n%s", strings.Join(args, " "), img, err, stderr.Bytes())
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !strings.HasPrefix(l, "debugfs ") {
			t.Fatalf("debugfs %s %s: %s", strings.Join(args, " "), img, stderr.Bytes())
		}
	}
	return stdout.String()
}

// lsNames parses `debugfs -R "ls -l DIR"` into name → "inode mode uid gid".
func lsNames(t *testing.T, out string) map[string]string {
	t.Helper()
	names := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) < 9 {
			t.Fatalf("debugfs ls -l: unexpected line %q", l)
		}
		names[f[len(f)-1]] = strings.Join([]string{f[0], f[1], f[3], f[4]}, " ")
	}
	return names
}
