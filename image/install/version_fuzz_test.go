package install

import (
	"math/big"
	"strings"
	"testing"
)

// FuzzCompareVersions: the order in which an update is accepted or
// refused as a downgrade (a bundle's version against the running one's,
// both outside input) is a total order: CompareVersions returns -1, 0 or
// +1, is antisymmetric and transitive; and a release number compares as a
// number, however many digits it has.
func FuzzCompareVersions(f *testing.F) {
	f.Add("1.0.0", "1.0", "v1.0.0-rc1", "9", "10")
	f.Add("2.0.0-rc10", "2.0.0-rc9", "2.0.0", "18446744073709551615", "18446744073709551616")
	f.Add("1.0a", "1.0.beta", "1..0", "007", "7")
	f.Fuzz(func(t *testing.T, a, b, c, n1, n2 string) {
		ab, ba := CompareVersions(a, b), CompareVersions(b, a)
		if ab < -1 || ab > 1 || ab != -ba {
			t.Fatalf("CompareVersions(%q, %q) = %d, reversed %d", a, b, ab, ba)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("CompareVersions(%q, itself) = %d", a, CompareVersions(a, a))
		}
		bc, ac := CompareVersions(b, c), CompareVersions(a, c)
		if ab <= 0 && bc <= 0 && ac > 0 || ab >= 0 && bc >= 0 && ac < 0 || ab == 0 && bc == 0 && ac != 0 {
			t.Fatalf("not transitive: %q vs %q: %d, %q vs %q: %d, %q vs %q: %d", a, b, ab, b, c, bc, a, c, ac)
		}
		digits := func(s string) string {
			s = strings.Map(func(r rune) rune {
				if r < '0' || r > '9' {
					return -1
				}
				return r
			}, s)
			if s == "" {
				return "0"
			}
			return s
		}
		n1, n2 = digits(n1), digits(n2)
		x, _ := new(big.Int).SetString(n1, 10)
		y, _ := new(big.Int).SetString(n2, 10)
		if got, want := CompareVersions("1."+n1, "1."+n2), x.Cmp(y); got != want {
			t.Fatalf("CompareVersions(%q, %q) = %d, want %d", "1."+n1, "1."+n2, got, want)
		}
	})
}
