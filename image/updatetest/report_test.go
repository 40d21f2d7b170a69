package updatetest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	return &Report{
		Name: "v1.yaml → v2.yaml (fault fail)", Passed: false, Seconds: 93.5, Seed: 7, Dir: "keel-test",
		Steps: []StepResult{
			{Plan: "start: boot FROM", Name: "power on", Status: Passed, Seconds: 13.2, Detail: "slot a: busybox 1.0.0", Console: "console/01-boot-from.log"},
			{Plan: "step 1: install TO <&>", Name: "installed", Status: Failed, Seconds: 2.5, Console: "console/01-boot-from.log",
				Failure: &Failure{Message: "keelctl install failed (exit status 3)", Expected: "exit status 0", Seen: "bundle refused: \"untrusted\" key & <more>",
					ConsoleLines: []string{"keel-init: ready", "\x1b[0mcontrol\tchars"}}},
			{Plan: "step 2: rollback", Name: "not run", Status: Skipped, Detail: "an earlier step failed"},
		},
	}
}

// TestJUnitSchema: the JUnit report validates against the schema CI
// systems read (testdata/junit.xsd, with xmllint), and the schema is not
// one that takes anything.
func TestJUnitSchema(t *testing.T) {
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Fatalf("xmllint: %v (apt-get install libxml2-utils; .ci/run does)", err)
	}
	dir := t.TempDir()
	var b bytes.Buffer
	if err := sampleReport().WriteJUnit(&b, time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC), "ci-runner"); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "report.xml")
	if err := os.WriteFile(good, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xmllint", "--noout", "--schema", "testdata/junit.xsd", good).CombinedOutput(); err != nil {
		t.Fatalf("keel's JUnit report does not validate: %v\n%s\n%s", err, out, b.String())
	}
	for _, want := range []string{`tests="3" failures="1"`, `skipped="1"`, `<failure message="keelctl install failed (exit status 3)" type="expectation">`, `<skipped></skipped>`, `classname="step 1: install TO &lt;&amp;&gt;"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JUnit report lacks %s:\n%s", want, b.String())
		}
	}
	// A testcase without its name, a time that is not one: refused.
	bad := filepath.Join(dir, "bad.xml")
	broken := strings.Replace(strings.Replace(b.String(), `<testcase name="power on"`, `<testcase`, 1), `time="2.500"`, `time="soon"`, 1)
	if err := os.WriteFile(bad, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xmllint", "--noout", "--schema", "testdata/junit.xsd", bad).CombinedOutput(); err == nil {
		t.Errorf("the schema takes a broken report:\n%s", out)
	}
}

func TestReportJSON(t *testing.T) {
	var b bytes.Buffer
	r := sampleReport()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&b)
	dec.DisallowUnknownFields()
	var got Report
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Steps[1].Failure.Seen != r.Steps[1].Failure.Seen || got.Seed != 7 || got.Passed {
		t.Errorf("round trip: %+v", got)
	}
}

// TestReportText: the summary names the failed step, what was expected
// and seen, and the console around it.
func TestReportText(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"step 1: install TO", "FAIL installed", "expected: exit status 0", `seen:     bundle refused: "untrusted" key`,
		"console (console/01-boot-from.log), last lines:", "| keel-init: ready", "skip not run", "FAILED in 93.5s; consoles in keel-test"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
