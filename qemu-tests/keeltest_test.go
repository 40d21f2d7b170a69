package qemutests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"keel/image/updatetest"
)

// TestKeelTest is issue 14's check of keel test on two versions of the
// busybox example (profiles/examples/busybox.yaml, with a key): the plain
// update passes, with its JSON report decoded strictly and its JUnit
// report valid against the JUnit schema; each --fault gives its verdict
// (fail and hang fall back, cut@install:5 boots the old slot then
// updates, rollback boots v1 again, cut@install:random with one seed cuts
// the same install at the same point twice); a plan's update, command and
// rollback hold, and its deliberately wrong expectation fails with exit 1
// and says what was expected and seen; and the images under test are
// byte-identical afterwards. The runs go two at a time.
func TestKeelTest(t *testing.T) {
	h := setUp(t, "xmllint")
	dir := t.TempDir()
	h.runKeel(t, "key", "generate", "--dir", dir, "release")
	key := filepath.Join(dir, "release.key")
	example, err := filepath.Abs("../profiles/examples/busybox.yaml")
	if err != nil {
		t.Fatal(err)
	}
	profile := map[string]string{}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		profile[v] = filepath.Join(dir, "v"+v+".yaml")
		src := fmt.Sprintf("include: [%q]\nversion: %s\nupdate: {keys: [%q]}\n", example, v, filepath.Join(dir, "release.pub"))
		if err := os.WriteFile(profile[v], []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		h.runKeel(t, "build", profile[v], "-o", filepath.Join(dir, "v"+v, "disk.img"), "--sign-key", key)
	}
	v1disk := filepath.Join(dir, "v1.0.0", "disk.img")
	v2bundle := filepath.Join(dir, "v2.0.0", "busybox-2.0.0.keel")
	inputs := []string{v1disk, filepath.Join(dir, "v1.0.0", "busybox-1.0.0.keel"), filepath.Join(dir, "v2.0.0", "disk.img"), v2bundle}
	before := map[string]string{}
	for _, f := range inputs {
		before[f] = sha256File(t, f)
	}
	plan := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(plan, []byte(`# issue 14's scenario: the update, a check in the guest, a rollback, and
# an expectation that is wrong on purpose.
images: {v1: v1.0.0/disk.img, v2: v2.0.0/busybox-2.0.0.keel}
boot: v1
steps:
  - install: v2
    expect: {slot: b, version: 2.0.0, entry: good}
  - run: cat /etc/os-release
    expect: {output: "2.0.0"}
  - rollback: true
    expect: {slot: a, version: 1.0.0, entries: {a: good, b: good}}
  - name: a deliberately wrong expectation
    expect: {slot: b}
`), 0o644); err != nil {
		t.Fatal(err)
	}

	cuts := map[string]string{}
	cases := []struct {
		name  string
		args  []string
		exit  int
		check func(t *testing.T, rep *updatetest.Report, stdout string)
	}{
		{"update", []string{profile["1.0.0"], profile["2.0.0"], "--sign-key", key, "--json", "--junit", filepath.Join(dir, "update.xml")}, 0,
			func(t *testing.T, rep *updatetest.Report, _ string) {
				wantSteps(t, rep, "power on", "installed", "trial boot", "health verdict", "blessed", "still booted after a reboot")
				out, err := exec.Command("xmllint", "--noout", "--schema", "../image/updatetest/testdata/junit.xsd", filepath.Join(dir, "update.xml")).CombinedOutput()
				if err != nil {
					t.Errorf("JUnit report not valid: %v\n%s", err, out)
				}
			}},
		{"fail", []string{v1disk, v2bundle, "--fault", "fail"}, 0,
			func(t *testing.T, rep *updatetest.Report, _ string) {
				wantSteps(t, rep, "power on", "installed", "boot 1 after the install", "boot 2 after the install", "boot 3 after the install", "boot 4 after the install", "fell back")
			}},
		{"hang", []string{v1disk, v2bundle, "--fault", "hang"}, 0,
			func(t *testing.T, rep *updatetest.Report, _ string) {
				wantSteps(t, rep, "power on", "installed", "boot 1 after the install", "boot 2 after the install", "boot 3 after the install", "boot 4 after the install", "fell back")
			}},
		{"cut-5", []string{v1disk, v2bundle, "--fault", "cut@install:5"}, 0,
			func(t *testing.T, rep *updatetest.Report, _ string) {
				wantSteps(t, rep, "power on", "install, cut at write 5 of 34", "boot after the cut", "installed", "trial boot", "health verdict", "blessed", "still booted after a reboot")
			}},
		{"rollback", []string{v1disk, v2bundle, "--fault", "rollback"}, 0,
			func(t *testing.T, rep *updatetest.Report, _ string) {
				wantSteps(t, rep, "power on", "installed", "trial boot", "health verdict", "blessed", "still booted after a reboot", "rolled back", "booted the other slot")
			}},
		{"cut-random-1", []string{v1disk, v2bundle, "--fault", "cut@install:random", "--seed", "7"}, 0, nil},
		{"cut-random-2", []string{v1disk, v2bundle, "--fault", "cut@install:random", "--seed", "7"}, 0, nil},
		{"plan", []string{"--plan", plan}, 1,
			func(t *testing.T, rep *updatetest.Report, stdout string) {
				wantSteps(t, rep, "power on", "installed", "trial boot", "health verdict",
					"blessed", "still booted after a reboot", "expectations", "ran", "rolled back", "booted the other slot", "expectations", "expectations")
				for _, s := range []string{"FAIL expectations", "a deliberately wrong expectation", "an expectation did not hold",
					"expected: slot b", "seen:     slot a", "console (console/"} {
					if !strings.Contains(stdout, s) {
						t.Errorf("the summary does not say %q:\n%s", s, stdout)
					}
				}
			}},
	}
	var mu sync.Mutex
	// A group returns only when its parallel runs have.
	t.Run("runs", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				runKeelTest(t, h, dir, tc.name, tc.args, tc.exit, func(rep *updatetest.Report, stdout string) {
					if tc.check != nil {
						tc.check(t, rep, stdout)
					}
					if strings.HasPrefix(tc.name, "cut-random") {
						s := rep.Steps[1]
						if !regexp.MustCompile(`^install, cut at write \d+ of 34$`).MatchString(s.Name) || !strings.Contains(s.Detail, "seed 7") {
							t.Errorf("cut step: %s: %s", s.Name, s.Detail)
						}
						mu.Lock()
						cuts[tc.name] = s.Name + ": " + s.Detail
						mu.Unlock()
					}
				})
			})
		}
	})
	if a, b := cuts["cut-random-1"], cuts["cut-random-2"]; a == "" || a != b {
		t.Errorf("seed 7 cut two runs differently:\n  %s\n  %s", a, b)
	}
	for _, f := range inputs {
		if got := sha256File(t, f); got != before[f] {
			t.Errorf("%s changed by keel test", f)
		}
	}
}

// runKeelTest runs keel test with args, its directory dir/run-NAME, checks its
// exit status and the reports it wrote, and hands them to check.
func runKeelTest(t *testing.T, h *harness, dir, name string, args []string, exit int, check func(*updatetest.Report, string)) {
	t.Helper()
	out := filepath.Join(dir, "run-"+name)
	cmd := h.keelCmd(append(append([]string{"test"}, args...), "--dir", out)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("keel test %s: exit %d\n%s", strings.Join(args, " "), code, stdout.String())
	if code != exit {
		t.Fatalf("exit status %d, want %d; stderr:\n%s", code, exit, stderr.String())
	}
	rep := readReport(t, filepath.Join(out, "report.json"))
	if slices.Contains(args, "--json") {
		if got := readReportBytes(t, stdout.Bytes()); got.Name != rep.Name || len(got.Steps) != len(rep.Steps) {
			t.Errorf("--json printed another report than report.json")
		}
	}
	if rep.Passed != (exit == 0) {
		t.Errorf("report says passed=%v, exit status %d", rep.Passed, code)
	}
	for _, s := range rep.Steps {
		if s.Console != "" {
			if _, err := os.Stat(filepath.Join(out, s.Console)); err != nil {
				t.Errorf("step %s: console: %v", s.Name, err)
			}
		}
	}
	check(rep, stdout.String())
}

func readReport(t *testing.T, name string) *updatetest.Report {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return readReportBytes(t, b)
}

// readReportBytes decodes a JSON report strictly: every field known, every
// step's status one of three, a failure exactly on failed steps.
func readReportBytes(t *testing.T, b []byte) *updatetest.Report {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rep updatetest.Report
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, b)
	}
	if rep.Name == "" || rep.Dir == "" || len(rep.Steps) == 0 || rep.Seconds <= 0 {
		t.Errorf("JSON report incomplete: %s", b)
	}
	for _, s := range rep.Steps {
		switch {
		case s.Status != updatetest.Passed && s.Status != updatetest.Failed && s.Status != updatetest.Skipped:
			t.Errorf("step %s: status %q", s.Name, s.Status)
		case (s.Status == updatetest.Failed) != (s.Failure != nil):
			t.Errorf("step %s: status %s, failure %v", s.Name, s.Status, s.Failure)
		case s.Plan == "" || s.Name == "":
			t.Errorf("step without a name: %+v", s)
		}
	}
	return &rep
}

func wantSteps(t *testing.T, rep *updatetest.Report, names ...string) {
	t.Helper()
	var got []string
	for _, s := range rep.Steps {
		got = append(got, s.Name)
	}
	if strings.Join(got, "|") != strings.Join(names, "|") {
		t.Errorf("steps:\n  %s\nwant:\n  %s", strings.Join(got, "|"), strings.Join(names, "|"))
	}
}
