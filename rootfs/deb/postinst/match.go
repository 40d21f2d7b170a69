package postinst

// Shell pattern matching, for case, ${var#pattern} and globs.

import "strings"

// hasGlob reports whether unquoted text would be a pathname pattern: a
// "*", a "?", or a bracket expression ("[" alone, as in "[ -z ... ]", is
// not one).
func hasGlob(s string) bool {
	if strings.ContainsAny(s, "*?") {
		return true
	}
	if i := strings.IndexByte(s, '['); i >= 0 {
		return strings.IndexByte(s[i+1:], ']') > 0
	}
	return false
}

// trimPattern is ${v#pat}, ${v##pat}, ${v%pat} and ${v%%pat}.
func trimPattern(v, pat, kind string) string {
	switch kind {
	case "#":
		for i := 0; i <= len(v); i++ {
			if fnmatch(pat, v[:i]) {
				return v[i:]
			}
		}
	case "##":
		for i := len(v); i >= 0; i-- {
			if fnmatch(pat, v[:i]) {
				return v[i:]
			}
		}
	case "%":
		for i := len(v); i >= 0; i-- {
			if fnmatch(pat, v[i:]) {
				return v[:i]
			}
		}
	case "%%":
		for i := 0; i <= len(v); i++ {
			if fnmatch(pat, v[i:]) {
				return v[:i]
			}
		}
	}
	return v
}

// fnmatch matches a shell pattern (*, ?, [...], backslash escapes)
// against the whole of s; unlike path.Match, * also matches "/". It
// backtracks only to the last star, so no pattern takes more than
// len(pat)*len(s) steps.
func fnmatch(pat, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, -1
	for px < len(pat) || sx < len(s) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					px, sx = px+1, sx+1
					continue
				}
			case '[':
				if sx < len(s) {
					n, ok, valid := matchBracket(pat[px:], s[sx])
					if !valid {
						n, ok = 1, s[sx] == '['
					}
					if ok {
						px, sx = px+n, sx+1
						continue
					}
				}
			case '\\':
				lit := byte('\\')
				n := 1
				if px+1 < len(pat) {
					lit, n = pat[px+1], 2
				}
				if sx < len(s) && s[sx] == lit {
					px, sx = px+n, sx+1
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px, sx = px+1, sx+1
					continue
				}
			}
		}
		if starPx >= 0 && starSx < len(s) {
			starSx++
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
	return true
}

// matchBracket matches c against the bracket expression p starts with;
// n is its length, valid false when it has no closing bracket.
func matchBracket(p string, c byte) (n int, matched, valid bool) {
	i := 1
	neg := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		neg, i = true, i+1
	}
	start := i
	for ; i < len(p); i++ {
		if p[i] == ']' && i > start {
			break
		}
	}
	if i >= len(p) {
		return 0, false, false
	}
	class := p[start:i]
	for j := 0; j < len(class); j++ {
		if j+2 < len(class) && class[j+1] == '-' {
			if class[j] <= c && c <= class[j+2] {
				matched = true
			}
			j += 2
			continue
		}
		if class[j] == c {
			matched = true
		}
	}
	return i + 1, matched != neg, true
}

func escapeGlob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte("*?[]\\", s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
