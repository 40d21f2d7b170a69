package fat

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Helpers around the real readers: fsck.fat from dosfstools, and mtools.

func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed: apt-get install %s", tool, pkg)
	}
}

var (
	fsckVersion = regexp.MustCompile(`^fsck\.fat \d+\.\d+`)
	fsckSummary = regexp.MustCompile(`: (\d+) files, (\d+)/(\d+) clusters$`)
)

// fsckClean runs `fsck.fat -n` and fails the test unless it exits 0 and says
// nothing but its version line and the summary. It returns the summary's
// counts: files (and directories, without the root), used clusters, clusters.
func fsckClean(t *testing.T, img string) (files, used, total int) {
	t.Helper()
	needTool(t, "fsck.fat", "dosfstools")
	out, err := exec.Command("fsck.fat", "-n", img).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.fat -n %s: %v\n%s", img, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	summary := false
	for _, l := range lines {
		if fsckVersion.MatchString(l) {
			continue
		}
		if m := fsckSummary.FindStringSubmatch(l); m != nil && !summary {
			summary = true
			files, _ = strconv.Atoi(m[1])
			used, _ = strconv.Atoi(m[2])
			total, _ = strconv.Atoi(m[3])
			continue
		}
		t.Fatalf("fsck.fat -n %s: unexpected output line %q\nfull output:\n%s", img, l, out)
	}
	if !summary {
		t.Fatalf("fsck.fat -n %s: no summary line\n%s", img, out)
	}
	return files, used, total
}

// fsckOutput is the full output, for the log.
func fsckOutput(img string) string {
	out, _ := exec.Command("fsck.fat", "-n", img).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// mtoolsEnv keeps the user's ~/.mtoolsrc out and lets mtools accept any
// geometry.
func mtoolsEnv() []string {
	return append(os.Environ(), "MTOOLSRC=/dev/null", "MTOOLS_SKIP_CHECK=1")
}

// mdirAll lists every path in the image with `mdir -/ -b`, without the "::"
// prefix; directories end in "/".
func mdirAll(t *testing.T, img string) []string {
	t.Helper()
	needTool(t, "mdir", "mtools")
	cmd := exec.Command("mdir", "-/", "-b", "-i", img, "::/")
	cmd.Env = mtoolsEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mdir -/ -b -i %s ::/: %v\n%s", img, err, stderr.String())
	}
	var paths []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			paths = append(paths, strings.TrimPrefix(l, "::"))
		}
	}
	return paths
}

// mcopyOut extracts one file with `mcopy -i img ::/path -`.
func mcopyOut(t *testing.T, img, path string) []byte {
	t.Helper()
	needTool(t, "mcopy", "mtools")
	cmd := exec.Command("mcopy", "-n", "-i", img, "::"+path, "-")
	cmd.Env = mtoolsEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mcopy -i %s ::%s -: %v\n%s", img, path, err, stderr.String())
	}
	return out
}

// mkfsFAT makes an image with mkfs.fat and the given extra arguments.
func mkfsFAT(t *testing.T, size int64, args ...string) string {
	t.Helper()
	needTool(t, "mkfs.fat", "dosfstools")
	img := filepath.Join(t.TempDir(), "mkfs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	args = append(append([]string{}, args...), img)
	if out, err := exec.Command("mkfs.fat", args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.fat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return img
}

// mkfsGeometry is the cluster size and FAT size (in sectors) mkfs.fat -F 32
// picks for size.
func mkfsGeometry(t *testing.T, size int64) (clusterSize, fatSectors int) {
	t.Helper()
	img := mkfsFAT(t, size, "-F", "32")
	out, err := exec.Command("fsck.fat", "-n", "-v", img).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.fat -n -v: %v\n%s", err, out)
	}
	cs := regexp.MustCompile(`(\d+) bytes per cluster`).FindSubmatch(out)
	fat := regexp.MustCompile(`bytes per FAT \(= (\d+) sectors\)`).FindSubmatch(out)
	if cs == nil || fat == nil {
		t.Fatalf("no cluster or FAT size in fsck.fat -v output:\n%s", out)
	}
	clusterSize, _ = strconv.Atoi(string(cs[1]))
	fatSectors, _ = strconv.Atoi(string(fat[1]))
	return clusterSize, fatSectors
}
