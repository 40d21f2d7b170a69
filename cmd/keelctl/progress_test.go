package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestProgressTenths: an artifact written in any sizes of writes prints
// its stage and exactly ten lines, 10% to 100%: keel test counts these
// lines as the install's cut points.
func TestProgressTenths(t *testing.T) {
	for _, tc := range []struct {
		name   string
		total  int64
		writes []int64
	}{
		{"one write", 5 << 20, []int64{5 << 20}},
		{"MiB writes", 5<<20 + 123, []int64{1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 123}},
		{"small writes", 1000, func() []int64 {
			w := make([]int64, 100)
			for i := range w {
				w[i] = 10
			}
			return w
		}()},
		{"uneven", 100, []int64{9, 1, 45, 44, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			p := progressPrinter(&b)
			p("writing rootfs to slot b", 0, tc.total)
			done := int64(0)
			for _, n := range tc.writes {
				done += n
				p("writing rootfs to slot b", done, tc.total)
			}
			p("writing slot b's boot entry", 0, 0)
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			if len(lines) != 12 {
				t.Fatalf("%d lines, want 12:\n%s", len(lines), b.String())
			}
			for i, l := range lines[1:11] {
				if want := []string{" 10%", " 20%", " 30%", " 40%", " 50%", " 60%", " 70%", " 80%", " 90%", "100%"}[i]; !strings.HasPrefix(strings.TrimLeft(l, " "), strings.TrimLeft(want, " ")) {
					t.Errorf("line %d = %q, want %s", i+2, l, want)
				}
			}
		})
	}
}
