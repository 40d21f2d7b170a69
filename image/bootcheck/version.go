package bootcheck

// VersionCompare is systemd's strverscmp_improved (src/fundamental/
// string-util-fundamental.c), which systemd-boot sorts entries with:
// < 0 when a is older than b, 0 when equal, > 0 when newer. Runs of digits
// compare as numbers, letters as text; '~' marks a pre-release (older),
// '-' a release after the version, '^' a patched release, '.' a point
// release; other characters only separate.
func VersionCompare(a, b string) int {
	if a == "" || b == "" {
		return cmpInt(len(a), len(b)) // strcmp_ptr of an empty string
	}
	valid := func(c byte) bool {
		return isDigit(c) || isAlpha(c) || c == '~' || c == '-' || c == '^' || c == '.'
	}
	at := func(s string, i int) byte { // a C string's byte, NUL past the end
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	i, j := 0, 0
	for {
		for i < len(a) && !valid(a[i]) {
			i++
		}
		for j < len(b) && !valid(b[j]) {
			j++
		}
		if at(a, i) == '~' || at(b, j) == '~' {
			// The one with '~' is older.
			if r := cmpInt(b2i(at(a, i) != '~'), b2i(at(b, j) != '~')); r != 0 {
				return r
			}
			i, j = i+1, j+1
		}
		if at(a, i) == 0 || at(b, j) == 0 {
			return cmpInt(int(at(a, i)), int(at(b, j)))
		}
		for _, sep := range []byte{'-', '^', '.'} {
			if at(a, i) == sep || at(b, j) == sep {
				if r := cmpInt(b2i(at(a, i) != sep), b2i(at(b, j) != sep)); r != 0 {
					return r
				}
				i, j = i+1, j+1
			}
		}
		var ii, jj int
		if isDigit(at(a, i)) || isDigit(at(b, j)) {
			for at(a, i) == '0' {
				i++
			}
			for at(b, j) == '0' {
				j++
			}
			for ii = i; isDigit(at(a, ii)); ii++ {
			}
			for jj = j; isDigit(at(b, jj)); jj++ {
			}
			if r := cmpInt(ii-i, jj-j); r != 0 {
				return r
			}
			if r := cmpStr(a[i:ii], b[j:j+(ii-i)]); r != 0 {
				return r
			}
		} else {
			for ii = i; isAlpha(at(a, ii)); ii++ {
			}
			for jj = j; isAlpha(at(b, jj)); jj++ {
			}
			n := min(ii-i, jj-j)
			if r := cmpStr(a[i:i+n], b[j:j+n]); r != 0 {
				return r
			}
			if r := cmpInt(ii-i, jj-j); r != 0 {
				return r
			}
		}
		i, j = ii, jj
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
