package updatetest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is what keel test found: every step it took, in order, with its
// timing and, for the one that failed, what was expected and seen.
type Report struct {
	Name    string  `json:"name"`
	Passed  bool    `json:"passed"`
	Seconds float64 `json:"seconds"`
	// Seed is the seed cut@install:random drew from (0 when unused).
	Seed  int64        `json:"seed,omitempty"`
	Steps []StepResult `json:"steps"`
	// Dir holds the consoles (paths in Steps are relative to it).
	Dir string `json:"dir"`
}

// StepResult is one reported step. Plan steps expand into several (an
// install: installed, trial boot, health verdict, blessed, reboot).
type StepResult struct {
	// Plan is the plan step it belongs to ("step 2: install v2").
	Plan string `json:"plan"`
	Name string `json:"name"`
	// Status is passed, failed or skipped (not reached after a failure).
	Status  string  `json:"status"`
	Seconds float64 `json:"seconds"`
	// Detail says what happened: "slot b 2.0.0, trial keel-b+2-1.conf".
	Detail string `json:"detail,omitempty"`
	// Console is the serial console of the boot the step ran in.
	Console string   `json:"console,omitempty"`
	Failure *Failure `json:"failure,omitempty"`
}

// Failure is a failed expectation.
type Failure struct {
	Message  string `json:"message"`
	Expected string `json:"expected,omitempty"`
	Seen     string `json:"seen,omitempty"`
	// ConsoleLines are the console's last lines when it failed.
	ConsoleLines []string `json:"console_lines,omitempty"`
}

// Step statuses.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
)

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteText writes the human summary: a line per step, then for a
// failure what was expected, what was seen and the console around it.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "keel test: %s\n", r.Name)
	plan := ""
	for _, s := range r.Steps {
		if s.Plan != plan {
			plan = s.Plan
			fmt.Fprintf(&b, "  %s\n", plan)
		}
		mark := map[string]string{Passed: "ok  ", Failed: "FAIL", Skipped: "skip"}[s.Status]
		fmt.Fprintf(&b, "    %s %-30s %6.1fs  %s\n", mark, s.Name, s.Seconds, s.Detail)
		if f := s.Failure; f != nil {
			fmt.Fprintf(&b, "         %s\n", f.Message)
			if f.Expected != "" || f.Seen != "" {
				fmt.Fprintf(&b, "         expected: %s\n         seen:     %s\n", f.Expected, f.Seen)
			}
			if s.Console != "" {
				fmt.Fprintf(&b, "         console (%s), last lines:\n", s.Console)
			}
			for _, l := range f.ConsoleLines {
				fmt.Fprintf(&b, "         | %s\n", l)
			}
		}
	}
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "%s in %.1fs; consoles in %s\n", verdict, r.Seconds, r.Dir)
	_, err := io.WriteString(w, b.String())
	return err
}

// The JUnit XML that CI systems read (Jenkins, GitLab, GitHub actions):
// one testsuite, a testcase per reported step.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Hostname  string      `xml:"hostname,attr"`
	ID        int         `xml:"id,attr"`
	Package   string      `xml:"package,attr"`
	Props     *struct{}   `xml:"properties"`
	Cases     []junitCase `xml:"testcase"`
	SystemOut string      `xml:"system-out"`
	SystemErr string      `xml:"system-err"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Skipped   *struct{}     `xml:"skipped"`
	Failure   *junitFailure `xml:"failure"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes r as JUnit XML, valid against the schema CI systems
// take (testdata/junit.xsd); started is when the run began.
func (r *Report) WriteJUnit(w io.Writer, started time.Time, host string) error {
	s := junitSuite{
		Name: "keel test " + r.Name, Time: secs(r.Seconds), Timestamp: started.UTC().Format("2006-01-02T15:04:05"),
		Hostname: host, Package: "keel.test", Props: &struct{}{},
		SystemOut: "consoles: " + r.Dir,
	}
	for _, st := range r.Steps {
		c := junitCase{Name: st.Name, Classname: st.Plan, Time: secs(st.Seconds)}
		out := st.Detail
		if st.Console != "" {
			out += "\nconsole: " + st.Console
		}
		c.SystemOut = strings.TrimSpace(out)
		switch st.Status {
		case Skipped:
			c.Skipped = &struct{}{}
			s.Skipped++
		case Failed:
			f := st.Failure
			if f == nil {
				f = &Failure{Message: "failed"}
			}
			text := f.Message
			if f.Expected != "" || f.Seen != "" {
				text += "\nexpected: " + f.Expected + "\nseen:     " + f.Seen
			}
			if len(f.ConsoleLines) > 0 {
				text += "\nconsole:\n" + strings.Join(f.ConsoleLines, "\n")
			}
			c.Failure = &junitFailure{Message: f.Message, Type: "expectation", Text: text}
			s.Failures++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	all := junitSuites{Name: "keel test", Tests: s.Tests, Failures: s.Failures, Time: s.Time, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	e := xml.NewEncoder(w)
	e.Indent("", "  ")
	if err := e.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func secs(s float64) string { return fmt.Sprintf("%.3f", s) }
