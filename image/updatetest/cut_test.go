package updatetest

import "testing"

// keelctl install's output for a bundle with a kernel and an initrd, as
// the guest prints it (keel test's console).
var installOutput = []string{
	"bundle busybox 2.0.0 (build 1f2e), signed by key 5a1b, 23.1 MiB",
	"running busybox 1.0.0 from slot a",
	"  removing slot b's boot entry",
	"  writing rootfs to slot b",
	"     10%  1.0 MiB of 6.0 MiB", "     20%  2.0 MiB of 6.0 MiB", "     30%  2.0 MiB of 6.0 MiB", "     40%  3.0 MiB of 6.0 MiB",
	"     50%  3.0 MiB of 6.0 MiB", "     60%  4.0 MiB of 6.0 MiB", "     70%  5.0 MiB of 6.0 MiB", "     80%  5.0 MiB of 6.0 MiB",
	"     90%  6.0 MiB of 6.0 MiB", "    100%  6.0 MiB of 6.0 MiB",
	"  writing kernel to /keel/b/vmlinuz",
	"     10%", "     20%", "     30%", "     40%", "     50%", "     60%", "     70%", "     80%", "     90%", "    100%",
	"  writing initrd to /keel/b/initrd",
	"     10%", "     20%", "     30%", "     40%", "     50%", "     60%", "     70%", "     80%", "     90%", "    100%",
	"  writing slot b's boot entry",
	"installed busybox 2.0.0 into slot b: entry keel-b+3.conf, generation 2; reboot to try it",
}

func TestCutPoints(t *testing.T) {
	n := 0
	for _, l := range installOutput {
		if isCutPoint(l) {
			n++
		}
	}
	if want := CutPoints(2); n != want {
		t.Errorf("%d cut points in the output, CutPoints(2) = %d", n, want)
	}
	if CutPoints(1) != 23 {
		t.Errorf("CutPoints(1) = %d, want 23 (a unified kernel image)", CutPoints(1))
	}
}

// TestDrawCut: one seed and step give one point, within range; seeds
// spread over the whole install.
func TestDrawCut(t *testing.T) {
	seen := map[int]bool{}
	for seed := int64(0); seed < 2000; seed++ {
		a, b := drawCut(seed, 0, 34), drawCut(seed, 0, 34)
		if a != b {
			t.Fatalf("seed %d: %d then %d", seed, a, b)
		}
		if a < 1 || a > 34 {
			t.Fatalf("seed %d: point %d outside 1..34", seed, a)
		}
		seen[a] = true
	}
	if len(seen) != 34 {
		t.Errorf("2000 seeds drew %d of the 34 points", len(seen))
	}
	if drawCut(7, 0, 34) == drawCut(7, 1, 34) && drawCut(8, 0, 34) == drawCut(8, 1, 34) && drawCut(9, 0, 34) == drawCut(9, 1, 34) {
		t.Errorf("the step does not enter the draw")
	}
}
