package install_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"keel/image/disk"
)

// fsckESP runs fsck.fat -n on the ESP of the disk in r. Lost clusters
// (and the free count and FAT copies that go with them) are what a cut
// may leave (image/fat's crash rules); anything else is a failure, and
// lostOK says whether even those are allowed.
func fsckESP(t *testing.T, r io.ReaderAt, l *disk.Layout, lostOK bool) {
	t.Helper()
	tool, err := exec.LookPath("fsck.fat")
	if err != nil {
		t.Skip("fsck.fat not installed: apt-get install dosfstools")
	}
	p, _ := l.Find(disk.LabelESP)
	name := filepath.Join(t.TempDir(), "esp.img")
	out, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(r, p.Start, p.Size)); err != nil {
		t.Fatal(err)
	}
	out.Close()
	b, err := exec.Command(tool, "-n", name).CombinedOutput()
	if err == nil {
		return
	}
	if !lostOK || !onlyLostClusters(string(b)) {
		t.Errorf("fsck.fat -n: %v\n%s", err, b)
	}
}

var fsckHarmless = []*regexp.Regexp{
	regexp.MustCompile(`^fsck\.fat `),
	regexp.MustCompile(`^Checking we can access the last sector`),
	regexp.MustCompile(`^/tmp/.*: \d+ files, \d+/\d+ clusters$`),
	regexp.MustCompile(`^Reclaimed \d+ unused clusters? `),
	regexp.MustCompile(`^Free cluster summary wrong`),
	regexp.MustCompile(`^\s+\(\d+ != \d+\)|^\s+\d+ vs \d+|^  Auto-correcting|^Leaving filesystem unchanged`),
	regexp.MustCompile(`^FATs differ but appear to be intact`),
	regexp.MustCompile(`^\s*Using first FAT|^\d+\) Copy FAT|^Perform changes|^There are differences between boot sector and its backup`),
	regexp.MustCompile(`^Found \d+ unused clusters|lost cluster|^Use first FAT`),
	regexp.MustCompile(`^\s*$`),
}

func onlyLostClusters(out string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := false
		for _, re := range fsckHarmless {
			if re.MatchString(line) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
