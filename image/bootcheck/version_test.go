package bootcheck

import "testing"

// TestVersionCompare checks the order strverscmp_improved's own comment
// gives, and what keel's generations need.
func TestVersionCompare(t *testing.T) {
	order := []string{"122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1", "123^post1", "123.a-1", "123.1-1", "123a-1", "124-1"}
	for i := range order {
		for j := range order {
			want := cmpInt(i, j)
			if got := VersionCompare(order[i], order[j]); got != want {
				t.Errorf("VersionCompare(%q, %q) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	tests := []struct {
		a, b string
		want int
	}{
		{"2", "1", 1}, {"10", "9", 1}, {"9", "10", -1}, {"007", "7", 0}, {"", "1", -1}, {"1", "", 1}, {"", "", 0},
		{"keel-b+3.conf", "keel-a.conf", 1}, {"keel-a+0-3.conf", "keel-a.conf", 1}, {"1_a", "1a", 0},
	}
	for _, tt := range tests {
		if got := VersionCompare(tt.a, tt.b); got != tt.want {
			t.Errorf("VersionCompare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestParseTries is config_entry_parse_tries' own examples.
func TestParseTries(t *testing.T) {
	tests := []struct {
		file       string
		left, done int
	}{
		{"foobar+3.conf", 3, 0}, {"foobar+2-1.conf", 2, 1}, {"foobar+0-3.conf", 0, 3}, {"foobar+4-0.conf", 4, 0},
		{"keel-b.conf", -1, -1}, {"keel-b+.conf", -1, -1}, {"keel-b+3x.conf", -1, -1}, {"keel-b+-1.conf", -1, -1}, {"a-1-2.conf", -1, -1},
	}
	for _, tt := range tests {
		if l, d := parseTries(tt.file); l != tt.left || d != tt.done {
			t.Errorf("parseTries(%q) = %d, %d, want %d, %d", tt.file, l, d, tt.left, tt.done)
		}
	}
}
