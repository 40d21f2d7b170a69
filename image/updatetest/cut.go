package updatetest

import (
	"math/rand/v2"
	"strings"
)

// CutPoints is the number of places cut@install can cut an install of a
// full bundle with files artifacts on the ESP (kernel and initrd: 2; a
// unified kernel image: 1). They are the lines keelctl install prints as
// it goes, each once what it reports is under way or written: the old
// entry's removal, the root filesystem's stage and its ten tenths, each
// ESP file's stage and its ten tenths (keelctl prints every tenth,
// whatever the sizes of its writes). The entry's own write and what
// follows are not cut points: a cut there may boot either slot, by design.
func CutPoints(files int) int { return 1 + 11 + 11*files }

// isCutPoint reports whether a line of keelctl install's output is one of
// the points CutPoints counts: the indented progress lines, but the
// entry's.
func isCutPoint(line string) bool {
	return strings.HasPrefix(line, "  ") && !strings.Contains(line, "boot entry") || strings.Contains(line, "removing slot")
}

// drawCut is cut@install:random's point: the same seed and step give the
// same point of the same install.
func drawCut(seed int64, step, points int) int {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(step)))
	return 1 + rng.IntN(points)
}
