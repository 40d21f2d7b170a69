package install

import (
	"strconv"
	"strings"
)

// CompareVersions orders image versions the way people number releases:
// runs of digits compare as numbers, everything else as text, left to
// right ("1.10.0" > "1.9.2", "2.0.0-rc2" > "2.0.0-rc1"). A pre-release
// suffix after '-' sorts before the release ("2.0.0-rc1" < "2.0.0"), as in
// semver. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	ar, apre, _ := strings.Cut(strings.TrimPrefix(a, "v"), "-")
	br, bpre, _ := strings.Cut(strings.TrimPrefix(b, "v"), "-")
	if c := compareParts(ar, br); c != 0 {
		return c
	}
	switch {
	case apre == bpre:
		return 0
	case apre == "":
		return 1
	case bpre == "":
		return -1
	}
	return compareParts(apre, bpre)
}

func compareParts(a, b string) int {
	for a != "" || b != "" {
		var x, y string
		x, a = nextPart(a)
		y, b = nextPart(b)
		if c := comparePart(x, y); c != 0 {
			return c
		}
	}
	return 0
}

// nextPart splits off a run of digits or of non-digits, skipping dots.
func nextPart(s string) (part, rest string) {
	s = strings.TrimLeft(s, ".")
	if s == "" {
		return "", ""
	}
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && s[i] != '.' && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func comparePart(x, y string) int {
	nx, ex := strconv.ParseUint(x, 10, 64)
	ny, ey := strconv.ParseUint(y, 10, 64)
	switch {
	case ex == nil && ey == nil:
		return cmp(nx, ny)
	case x == "" && ey == nil:
		return cmp(0, ny) // 1.0 == 1.0.0
	case y == "" && ex == nil:
		return cmp(nx, 0)
	case x == "":
		return -1 // 1.0 < 1.0.1
	case y == "":
		return 1
	case ex == nil:
		return 1 // a number beats text: 1.0.1 > 1.0.beta
	case ey == nil:
		return -1
	}
	return strings.Compare(x, y)
}

func cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
