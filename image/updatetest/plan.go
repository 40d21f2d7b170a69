package updatetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"keel/image/updatetest/wire"
)

// Plan is a scenario: the image a device starts from and the steps it
// goes through, each with what must hold after it.
type Plan struct {
	// File is where the plan was read from ("" for one made from flags).
	File string `yaml:"-"`
	// Images names the images of the plan: a profile, a disk image or an
	// update bundle each; relative paths are the plan file's.
	Images map[string]string `yaml:"images"`
	// Boot is the image the device starts with (a profile or disk image).
	Boot string `yaml:"boot"`
	// Seed drives cut@install:random (default: keel test's --seed).
	Seed  *int64 `yaml:"seed"`
	Steps []Step `yaml:"steps"`
}

// Step is one action and its expectations. Exactly one of Install,
// Rollback, Reboot and Run, or none (a step that only checks).
type Step struct {
	Name string `yaml:"name"`
	// Install is the image (a name in Plan.Images) whose bundle keelctl
	// installs, followed by the reboot into its trial and the boots after.
	Install string `yaml:"install"`
	// Fault, with Install: cut@install:N, cut@install:random, fail, hang.
	Fault    string `yaml:"fault"`
	Rollback bool   `yaml:"rollback"`
	Reboot   bool   `yaml:"reboot"`
	// Run is a shell command run in the guest (sh -c).
	Run    string `yaml:"run"`
	Expect Expect `yaml:"expect"`

	line int
}

// Expect is what must hold after a step. Empty fields are not checked;
// an install, a rollback or a fault has its own expectations besides.
type Expect struct {
	Slot    string `yaml:"slot" json:"slot,omitempty"`
	Version string `yaml:"version" json:"version,omitempty"`
	// Entry is the state of the booted slot's entry: good or trial.
	Entry string `yaml:"entry" json:"entry,omitempty"`
	// Entries are the states of the slots' entries (keelctl status):
	// good, trial, bad or none.
	Entries map[string]string `yaml:"entries" json:"entries,omitempty"`
	// Output must appear in Run's output; Exit is Run's exit status
	// (default 0).
	Output string `yaml:"output" json:"output,omitempty"`
	Exit   *int   `yaml:"exit" json:"exit,omitempty"`
}

// Fault kinds, as --fault and a step's fault: name them.
const (
	FaultCut      = "cut@install"
	FaultFail     = wire.FaultFail
	FaultHang     = wire.FaultHang
	FaultRollback = "rollback"
)

// Faults is the list --help and errors show.
var Faults = []string{"cut@install:N", "cut@install:random", FaultFail, FaultHang, FaultRollback}

// cutSpec is a parsed cut@install fault: At is the cut point (1-based),
// 0 for random.
type cutSpec struct{ At int }

var cutRE = regexp.MustCompile(`^cut@install:(random|[1-9][0-9]*)$`)

func parseCut(f string) (cutSpec, bool, error) {
	if !strings.HasPrefix(f, FaultCut) {
		return cutSpec{}, false, nil
	}
	m := cutRE.FindStringSubmatch(f)
	if m == nil {
		return cutSpec{}, true, fmt.Errorf("%q: want cut@install:N (N ≥ 1, the install's N-th write) or cut@install:random", f)
	}
	if m[1] == "random" {
		return cutSpec{}, true, nil
	}
	n, _ := strconv.Atoi(m[1])
	return cutSpec{At: n}, true, nil
}

// FromFault is the plan of keel test FROM TO --fault F: boot FROM,
// install TO with the fault (rollback: install, then roll back).
func FromFault(from, to, fault string) (*Plan, error) {
	if _, isCut, err := parseCut(fault); err != nil {
		return nil, err
	} else if !isCut && fault != "" && fault != FaultFail && fault != FaultHang && fault != FaultRollback {
		return nil, fmt.Errorf("%q: want %s", fault, strings.Join(Faults, ", "))
	}
	p := &Plan{Images: map[string]string{"FROM": from, "TO": to}, Boot: "FROM"}
	st := Step{Install: "TO"}
	switch {
	case fault == FaultRollback:
		p.Steps = append(p.Steps, st, Step{Rollback: true})
	default:
		st.Fault = fault
		p.Steps = append(p.Steps, st)
	}
	return p, p.Check()
}

// LoadPlan reads a plan file. Errors name the file, the line and the
// field.
func LoadPlan(name string) (*Plan, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	p := &Plan{File: name}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s: %s", name, strings.Join(te.Errors, "; "))
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// The steps' lines, for the errors below and the report.
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err == nil && len(doc.Content) == 1 {
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "steps" && m.Content[i+1].Kind == yaml.SequenceNode {
				for j, s := range m.Content[i+1].Content {
					if j < len(p.Steps) {
						p.Steps[j].line = s.Line
					}
				}
			}
		}
	}
	dir := filepath.Dir(name)
	for k, v := range p.Images {
		if v != "" && !filepath.IsAbs(v) {
			p.Images[k] = filepath.Join(dir, v)
		}
	}
	return p, p.Check()
}

// Check finds what cannot run: unknown images, faults and states, a step
// with two actions.
func (p *Plan) Check() error {
	var errs []error
	at := func(i int) string {
		s := fmt.Sprintf("steps[%d]", i)
		if p.File != "" && p.Steps[i].line > 0 {
			s = fmt.Sprintf("%s:%d: %s", p.File, p.Steps[i].line, s)
		}
		return s
	}
	where := ""
	if p.File != "" {
		where = p.File + ": "
	}
	if len(p.Images) == 0 {
		errs = append(errs, fmt.Errorf("%simages: none named", where))
	}
	if _, ok := p.Images[p.Boot]; !ok {
		errs = append(errs, fmt.Errorf("%sboot: %q is not one of the images (%s)", where, p.Boot, strings.Join(p.imageNames(), ", ")))
	}
	if len(p.Steps) == 0 {
		errs = append(errs, fmt.Errorf("%ssteps: none", where))
	}
	// Each image's build and bundle disk are named by its Slug: two
	// names with one Slug would share them, one image tested as the other.
	bySlug := map[string]string{}
	for _, n := range p.imageNames() {
		if other, ok := bySlug[Slug(n)]; ok {
			errs = append(errs, fmt.Errorf("%simages: %q and %q differ only in case or punctuation: name them apart", where, other, n))
		}
		bySlug[Slug(n)] = n
	}
	states := map[string]bool{"good": true, "trial": true, "bad": true, "none": true}
	for i, s := range p.Steps {
		n := 0
		for _, set := range []bool{s.Install != "", s.Rollback, s.Reboot, s.Run != ""} {
			if set {
				n++
			}
		}
		if n > 1 {
			errs = append(errs, fmt.Errorf("%s: one of install, rollback, reboot and run per step", at(i)))
		}
		if s.Install != "" {
			if _, ok := p.Images[s.Install]; !ok {
				errs = append(errs, fmt.Errorf("%s.install: %q is not one of the images (%s)", at(i), s.Install, strings.Join(p.imageNames(), ", ")))
			}
		}
		if s.Fault != "" {
			_, isCut, err := parseCut(s.Fault)
			switch {
			case s.Install == "":
				errs = append(errs, fmt.Errorf("%s.fault: a fault goes with an install", at(i)))
			case err != nil:
				errs = append(errs, fmt.Errorf("%s.fault: %v", at(i), err))
			case !isCut && s.Fault != FaultFail && s.Fault != FaultHang:
				errs = append(errs, fmt.Errorf("%s.fault: %q: want cut@install:N, cut@install:random, fail or hang (a rollback is a step of its own)", at(i), s.Fault))
			}
		}
		if s.Expect.Slot != "" && s.Expect.Slot != "a" && s.Expect.Slot != "b" {
			errs = append(errs, fmt.Errorf("%s.expect.slot: %q: want a or b", at(i), s.Expect.Slot))
		}
		if e := s.Expect.Entry; e != "" && e != "good" && e != "trial" {
			errs = append(errs, fmt.Errorf("%s.expect.entry: %q: want good or trial (the booted slot's entry)", at(i), e))
		}
		for slot, st := range s.Expect.Entries {
			if slot != "a" && slot != "b" || !states[st] {
				errs = append(errs, fmt.Errorf("%s.expect.entries: %s: %s: want a or b: good, trial, bad or none", at(i), slot, st))
			}
		}
		if (s.Expect.Output != "" || s.Expect.Exit != nil) && s.Run == "" {
			errs = append(errs, fmt.Errorf("%s.expect: output and exit go with run", at(i)))
		}
	}
	return errors.Join(errs...)
}

func (p *Plan) imageNames() []string {
	names := make([]string, 0, len(p.Images))
	for n := range p.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// title is how a step is named in the report.
func (s Step) title(i int) string {
	if s.Name != "" {
		return s.Name
	}
	var t string
	switch {
	case s.Install != "":
		t = "install " + s.Install
		if s.Fault != "" {
			t += " (fault " + s.Fault + ")"
		}
	case s.Rollback:
		t = "rollback"
	case s.Reboot:
		t = "reboot"
	case s.Run != "":
		t = "run " + s.Run
	default:
		t = "check"
	}
	return fmt.Sprintf("step %d: %s", i+1, t)
}
