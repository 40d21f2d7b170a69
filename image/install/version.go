package install

import "strings"

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
	// A missing part is 0 against anything (1.0 == 1.0.0 < 1.0.1, and
	// 1.0 > 1.0.beta as 1.0.0 is): with missing parts below text and 0
	// above it, "." == "0" > "A" > ".", and the order was no order.
	if x == "" {
		x = "0"
	}
	if y == "" {
		y = "0"
	}
	dx, dy := isDigit(x[0]), isDigit(y[0]) // a part is all digits or none
	switch {
	case dx && dy:
		return compareNumbers(x, y)
	case dx:
		return 1 // a number beats text: 1.0.1 > 1.0.beta
	case dy:
		return -1
	}
	return strings.Compare(x, y)
}

// compareNumbers compares runs of digits as numbers of any length: parsed
// into a uint64, a run of 20 digits or more did not fit and sorted as text,
// below 1.
func compareNumbers(x, y string) int {
	x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
	if len(x) != len(y) {
		return cmp(uint64(len(x)), uint64(len(y)))
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
