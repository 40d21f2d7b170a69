package updatetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPlan(t *testing.T) {
	p, err := LoadPlan("testdata/plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Images["v1"] != filepath.Join("testdata", "v1.yaml") || p.Images["v3"] != "/abs/v3.yaml" {
		t.Errorf("images not resolved against the plan's directory: %v", p.Images)
	}
	if p.Seed == nil || *p.Seed != 42 || len(p.Steps) != 6 {
		t.Fatalf("plan %+v", p)
	}
	if p.Steps[0].line != 6 || p.Steps[5].line != 16 {
		t.Errorf("step lines %d, %d; want 6, 16", p.Steps[0].line, p.Steps[5].line)
	}
	for i, want := range []string{"step 1: install v2 (fault cut@install:random)", "step 2: install v3 (fault fail)", "step 3: run cat /etc/os-release",
		"step 4: rollback", "step 5: reboot", "just a check"} {
		if got := p.Steps[i].title(i); got != want {
			t.Errorf("title %d = %q, want %q", i, got, want)
		}
	}
}

// TestPlanErrors: what cannot run is refused before anything is built,
// with the file, the line and the field.
func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", "images: {a: a.yaml}\nboot: a\nsteps:\n  - install: a\n    fualt: hang\n", "plan.yaml: line 5: field fualt not found"},
		{"unknown image", "images: {a: a.yaml}\nboot: a\nsteps:\n  - reboot: true\n  - install: b\n", "plan.yaml:5: steps[1].install: \"b\" is not one of the images (a)"},
		{"names alike", "images: {v_1: a.yaml, V-1: b.yaml}\nboot: v_1\nsteps: [{install: V-1}]\n", "images: \"V-1\" and \"v_1\" differ only in case or punctuation"},
		{"boot unknown", "images: {a: a.yaml}\nboot: x\nsteps: [{reboot: true}]\n", "boot: \"x\" is not one of the images"},
		{"two actions", "images: {a: a.yaml}\nboot: a\nsteps:\n  - {install: a, rollback: true}\n", "plan.yaml:4: steps[0]: one of install, rollback, reboot and run per step"},
		{"bad fault", "images: {a: a.yaml}\nboot: a\nsteps:\n  - {install: a, fault: cut@install:0}\n", "steps[0].fault: \"cut@install:0\": want cut@install:N"},
		{"unknown fault", "images: {a: a.yaml}\nboot: a\nsteps:\n  - {install: a, fault: explode}\n", "want cut@install:N, cut@install:random, fail or hang"},
		{"fault alone", "images: {a: a.yaml}\nboot: a\nsteps:\n  - {fault: hang}\n", "a fault goes with an install"},
		{"bad slot", "images: {a: a.yaml}\nboot: a\nsteps:\n  - {reboot: true, expect: {slot: c}}\n", "expect.slot: \"c\": want a or b"},
		{"bad state", "images: {a: a.yaml}\nboot: a\nsteps:\n  - {reboot: true, expect: {entries: {a: great}}}\n", "expect.entries: a: great"},
		{"output without run", "images: {a: a.yaml}\nboot: a\nsteps:\n  - {reboot: true, expect: {output: x}}\n", "output and exit go with run"},
		{"no steps", "images: {a: a.yaml}\nboot: a\n", "steps: none"},
		{"not yaml", "images: [\n", "plan.yaml: yaml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "plan.yaml")
			if err := os.WriteFile(f, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPlan(f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadPlan: %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}

func TestFromFault(t *testing.T) {
	for _, tc := range []struct {
		fault string
		steps int
		err   string
	}{
		{"", 1, ""}, {"fail", 1, ""}, {"hang", 1, ""}, {"cut@install:3", 1, ""}, {"cut@install:random", 1, ""},
		{"rollback", 2, ""}, {"cut@install:x", 0, "want cut@install:N"}, {"power", 0, "want cut@install:N, cut@install:random, fail, hang, rollback"},
	} {
		p, err := FromFault("a.yaml", "b.keel", tc.fault)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("--fault %s: %v, want %q", tc.fault, err, tc.err)
			}
			continue
		}
		if err != nil || len(p.Steps) != tc.steps || p.Steps[0].Install != "TO" || p.Boot != "FROM" {
			t.Errorf("--fault %s: %+v, %v", tc.fault, p, err)
		}
	}
}

// FuzzLoadPlan: any plan file loads or is refused with an error, never a
// panic, and a plan that loads passes its own check.
func FuzzLoadPlan(f *testing.F) {
	if b, err := os.ReadFile("testdata/plan.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("images: {a: a.yaml}\nboot: a\nsteps: [{install: a, fault: \"cut@install:9\"}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name := filepath.Join(t.TempDir(), "plan.yaml")
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := LoadPlan(name)
		if err != nil {
			return
		}
		if err := p.Check(); err != nil {
			t.Fatalf("loaded, then refused: %v", err)
		}
		for i, s := range p.Steps {
			_ = s.title(i)
		}
	})
}
