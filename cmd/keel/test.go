package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"keel/image/bundle"
	"keel/image/format"
	"keel/image/updatetest"
	"keel/profiles/builtin"
)

type testOptions struct {
	plan, fault, signKey, dir, junit, accel string
	seed                                    int64
	json                                    bool
	bootTimeout                             time.Duration
}

func newTestCmd() *cobra.Command {
	o := &testOptions{}
	cmd := &cobra.Command{
		Use:   "test FROM TO | --plan PLAN",
		Short: "Prove an update path in QEMU: install, trial boot, verdict, fallback, rollback",
		Long: `Boot FROM in QEMU as a device would run it, install TO's update bundle inside
the guest with keelctl, the way the device will, and follow what happens:
installed, the trial boot, the health verdict, the blessing, and the boot
after a further reboot. Each step is reported with its timing; the exit
status is 0 only if every expectation held.

FROM is a profile (built into DIR/build) or a raw keel disk image. TO is a
profile (its bundle built with --sign-key, the key FROM's update.keys
trusts) or an update bundle. Nothing given is changed: keel test boots a
copy of FROM's disk (DIR/disk.img) with the bundles on further virtio disks
(/dev/vdb, …), and adds keel.test=ttyS1 to the copy's boot entries:
keel-init then talks to keel test over the guest's second serial port. The
image itself carries no test code path that runs without that parameter.

--fault injects one failure into the same path:
  cut@install:N       cut the power at the install's N-th cut point (each
                      line keelctl install prints: the old entry removed,
                      the root filesystem and each ESP file begun and each
                      tenth of them written), boot again: the old slot must
                      come up, not on trial; then install again
  cut@install:random  the same at a point drawn from --seed: the same seed
                      cuts the same install at the same point
  fail                TO's required services fail at every start: each
                      trial boot must be judged bad and the loader must
                      fall back to FROM within the entry's tries
  hang                TO's trial boots hang before any service (keel test
                      resets each after 2 s, as a watchdog): the loader's
                      try counter must fall back to FROM
  rollback            after TO is blessed, keelctl rollback: FROM must boot

--plan runs a scenario file instead: images by name, the one the device
starts from, and steps (install with an optional fault, rollback, reboot,
run a command) each with expectations:

  images: {v1: v1.yaml, v2: v2.yaml, v3: v3.yaml}
  boot: v1
  steps:
    - install: v2
      expect: {slot: b, version: 2.0.0, entry: good}
    - install: v3
      fault: fail
      expect: {slot: b, version: 2.0.0, entries: {a: bad}}
    - run: cat /var/lib/app/state
      expect: {output: "ok"}

The report: a summary on stdout (--json: the JSON report instead), JUnit XML
with --junit, and always DIR/report.json and the serial console of every
boot in DIR/console/. A failure names the step, what was expected, what was
seen and the console's last lines. QEMU runs with TCG by default (--accel).

` + exitCodesHelp,
		Example: `  keel test v1.yaml v2.yaml --sign-key release.key
  keel test v1.yaml v2.yaml --sign-key release.key --fault cut@install:random --seed 7
  keel test out/v1.img out/app-2.0.0.keel --fault fail --junit report.xml
  keel test --plan upgrade.yaml --sign-key release.key --json > report.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.plan != "" && len(args) > 0 {
				return usagef("give FROM and TO, or --plan, not both")
			}
			if o.plan == "" && len(args) != 2 {
				return usagef("want FROM and TO (or --plan PLAN), got %d argument(s)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTest(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.plan, "plan", "", "scenario file: images, the one booted first, steps with expectations")
	f.StringVar(&o.fault, "fault", "", "failure to inject: "+strings.Join(updatetest.Faults, ", "))
	f.StringVar(&o.signKey, "sign-key", "", "private key that signs the bundles built from profiles")
	f.StringVar(&o.dir, "dir", "keel-test", "directory for builds, the disk's copy, report.json and the consoles")
	f.StringVar(&o.junit, "junit", "", "also write the report as JUnit XML to this file")
	f.BoolVar(&o.json, "json", false, "print the JSON report on stdout instead of the summary")
	f.Int64Var(&o.seed, "seed", 0, "seed for cut@install:random (0: from the clock; the report gives it)")
	f.StringVar(&o.accel, "accel", "tcg", "QEMU accelerator: tcg, kvm or auto")
	f.DurationVar(&o.bootTimeout, "boot-timeout", 3*time.Minute, "longest wait for a boot, a verdict or a command")
	return cmd
}

func runTest(cmd *cobra.Command, o *testOptions, args []string) error {
	ctx := cmd.Context()
	var plan *updatetest.Plan
	var err error
	name := ""
	if o.plan != "" {
		if o.fault != "" {
			return usagef("--fault goes with FROM TO; a plan names its faults per step")
		}
		if plan, err = updatetest.LoadPlan(o.plan); err != nil {
			return usageError{err}
		}
		name = o.plan
	} else {
		if plan, err = updatetest.FromFault(args[0], args[1], o.fault); err != nil {
			return usageError{fmt.Errorf("--fault: %w", err)}
		}
		name = args[0] + " → " + args[1]
		if o.fault != "" {
			name += " (fault " + o.fault + ")"
		}
	}
	switch o.accel {
	case "tcg", "kvm", "auto":
	default:
		return usagef("--accel %q: want tcg, kvm or auto", o.accel)
	}
	if o.signKey != "" {
		if _, err := bundle.ReadPrivateKey(o.signKey); err != nil {
			return usageError{err}
		}
	}
	seed := o.seed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1000000
	}
	stderr := cmd.ErrOrStderr()
	images, err := testImages(ctx, plan, o, stderr)
	if err != nil {
		return err
	}
	started := time.Now()
	rep, err := updatetest.Run(ctx, plan, images, updatetest.Options{
		Dir: o.dir, Accel: o.accel, BootTimeout: o.bootTimeout, Seed: seed,
		Progress: func(s updatetest.StepResult) {
			fmt.Fprintf(stderr, "keel test: %s: %s: %s (%.1fs) %s\n", s.Plan, s.Name, s.Status, s.Seconds, s.Detail)
		},
	})
	if err != nil {
		return err
	}
	rep.Name = name
	if err := writeFileWith(filepath.Join(o.dir, "report.json"), rep.WriteJSON); err != nil {
		return err
	}
	if o.junit != "" {
		host, _ := os.Hostname()
		if err := writeFileWith(o.junit, func(w io.Writer) error { return rep.WriteJUnit(w, started, host) }); err != nil {
			return err
		}
	}
	out := cmd.OutOrStdout()
	if o.json {
		err = rep.WriteJSON(out)
	} else {
		err = rep.WriteText(out)
	}
	if err != nil {
		return err
	}
	if !rep.Passed {
		return errTestFailed
	}
	return nil
}

// errTestFailed: the report says what; exit 1.
var errTestFailed = errors.New("update path test failed (see the report above)")

func writeFileWith(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return f.Close()
}

// testImages makes each of the plan's images ready: profiles built (by
// this keel, as keel build would: the build cache makes a second run
// cheap), bundles and disk images read. Every image is looked at before
// any is built, in one order (the booted one first, then by name), so a
// bad input is refused before minutes of building and always by the same
// message.
func testImages(ctx context.Context, plan *updatetest.Plan, o *testOptions, stderr io.Writer) (map[string]*updatetest.Image, error) {
	installed := map[string]bool{}
	for _, s := range plan.Steps {
		if s.Install != "" {
			installed[s.Install] = true
		}
	}
	names := make([]string, 0, len(plan.Images))
	for n := range plan.Images {
		if n != plan.Boot {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if _, ok := plan.Images[plan.Boot]; ok {
		names = append([]string{plan.Boot}, names...)
	}
	// The second serial port and q35 are x86's: the control channel on
	// aarch64's virt machine is still to come.
	x86 := func(n, src, disk string) error {
		if arch, err := runArch(ctx, "", disk, format.Raw); err == nil && arch != "x86_64" {
			return usagef("image %s (%s) is an %s image: keel test runs x86_64 images", n, src, arch)
		}
		return nil
	}
	kinds := map[string]string{}
	for _, n := range names {
		src := plan.Images[n]
		kind, err := inputKind(src)
		switch {
		case err != nil:
			return nil, usageError{fmt.Errorf("image %s: %w", n, err)}
		case kind == "profile" && installed[n] && o.signKey == "":
			return nil, usagef("image %s (%s) is installed: give --sign-key to build its bundle", n, src)
		case kind == "bundle" && n == plan.Boot:
			return nil, usagef("image %s (%s) is booted first: give a profile or a disk image, not a bundle", n, src)
		case kind == "disk" && installed[n]:
			return nil, usagef("image %s (%s) is installed: give a profile or an update bundle, not a disk image", n, src)
		case kind == "disk" && n == plan.Boot:
			if err := x86(n, src, src); err != nil {
				return nil, err
			}
		}
		kinds[n] = kind
	}
	images := map[string]*updatetest.Image{}
	for _, n := range names {
		src := plan.Images[n]
		img := &updatetest.Image{}
		switch kinds[n] {
		case "profile":
			dir := filepath.Join(o.dir, "build", updatetest.Slug(n))
			if err := buildForTest(ctx, src, dir, o.signKey, stderr); err != nil {
				return nil, fmt.Errorf("image %s: %w", n, err)
			}
			img.Disk = filepath.Join(dir, "disk.img")
			if o.signKey != "" {
				bs, _ := filepath.Glob(filepath.Join(dir, "*.keel"))
				if len(bs) != 1 {
					return nil, fmt.Errorf("image %s: the build left %d bundles in %s", n, len(bs), dir)
				}
				img.Bundle = bs[0]
			}
			if n == plan.Boot {
				if err := x86(n, src, img.Disk); err != nil {
					return nil, err
				}
			}
		case "bundle":
			img.Bundle = src
		default:
			img.Disk = src
		}
		if img.Bundle != "" {
			if err := readBundleInfo(img); err != nil {
				return nil, fmt.Errorf("image %s: %w", n, err)
			}
		}
		images[n] = img
	}
	return images, nil
}

// inputKind says what FROM, TO or a plan's image is: a profile (a .yaml
// file or a built-in's name), an update bundle or a raw disk image.
func inputKind(src string) (string, error) {
	ext := filepath.Ext(src)
	if ext == ".yaml" || ext == ".yml" {
		return "profile", nil
	}
	f, err := os.Open(src)
	if err != nil {
		if os.IsNotExist(err) && slices.Contains(builtin.Names(), src) {
			return "profile", nil
		}
		return "", err
	}
	defer f.Close()
	if _, err := bundle.OpenUnverified(f); err == nil {
		return "bundle", nil
	}
	ft, err := format.Detect(f)
	if err != nil {
		return "", err
	}
	if ft != format.Raw {
		return "", fmt.Errorf("%s: a %s image; keel test boots raw images (build with --format raw, or qemu-img convert -O raw)", src, ft)
	}
	return "disk", nil
}

func readBundleInfo(img *updatetest.Image) error {
	f, err := os.Open(img.Bundle)
	if err != nil {
		return err
	}
	defer f.Close()
	br, err := bundle.OpenUnverified(f)
	if err != nil {
		return fmt.Errorf("%s: %w", img.Bundle, err)
	}
	img.Product, img.Version, img.Files = br.Manifest.Name, br.Manifest.Version, len(br.Manifest.Files())
	return nil
}

// buildForTest runs keel build for a profile of the test, as its own
// process: the same build, with its progress on stderr.
func buildForTest(ctx context.Context, profile, dir, signKey string, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.keel"))
	for _, b := range old {
		os.Remove(b)
	}
	args := []string{"build", profile, "-o", filepath.Join(dir, "disk.img")}
	if signKey != "" {
		args = append(args, "--sign-key", signKey)
	}
	fmt.Fprintf(stderr, "keel test: keel %s\n", strings.Join(args, " "))
	c := exec.CommandContext(ctx, self, args...)
	c.Stdout, c.Stderr = stderr, stderr
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == exitUsage {
			return usagef("keel build %s: bad profile (above)", profile)
		}
		return fmt.Errorf("keel build %s: %w", profile, err)
	}
	return nil
}
