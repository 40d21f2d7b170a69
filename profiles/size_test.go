package profiles

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Size
		err  string
	}{
		{in: "512", want: 512},
		{in: "512B", want: 512},
		{in: "1K", want: 1024},
		{in: "1k", want: 1024},
		{in: "1Ki", want: 1024},
		{in: "1KiB", want: 1024},
		{in: "1KB", want: 1000},
		{in: "512M", want: 512 << 20},
		{in: "512MiB", want: 512 << 20},
		{in: "512mib", want: 512 << 20},
		{in: "512MB", want: 512e6},
		{in: "2G", want: 2 << 30},
		{in: "2GiB", want: 2 << 30},
		{in: "2GB", want: 2e9},
		{in: "1T", want: 1 << 40},
		{in: "1TB", want: 1e12},
		{in: "1.5GiB", want: 3 << 29},
		{in: "0.5K", want: 512},
		{in: " 64 MiB ", want: 64 << 20},
		{in: "12Q", err: `"12Q" is not a size`},
		{in: "", err: `"" is not a size`},
		{in: "G", err: `"G" is not a size`},
		{in: "1b", err: `"1b" is not a size`},
		{in: "-1G", err: `"-1G" is not a size`},
		{in: "1.G", err: `"1.G" is not a size`},
		{in: ".5G", err: `".5G" is not a size`},
		{in: "1.2.3M", err: `"1.2.3M" is not a size`},
		{in: "1e3", err: `"1e3" is not a size`},
		{in: "1 G B", err: `"1 G B" is not a size`},
		{in: "0", err: `"0": a size must be greater than zero`},
		{in: "0.1", err: `"0.1" is not a whole number of bytes`},
		{in: "9999999T", err: `"9999999T" is too large`},
	} {
		got, err := ParseSize(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("ParseSize(%q) = %d, %v; want error %s", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

// TestSizeString checks that String writes what ParseSize reads back.
func TestSizeString(t *testing.T) {
	for _, c := range []struct {
		in   Size
		want string
	}{
		{2 * GiB, "2GiB"}, {512 * MiB, "512MiB"}, {1536 * MiB, "1536MiB"}, {3 * TiB, "3TiB"},
		{KiB, "1KiB"}, {1000, "1000B"}, {0, "0B"},
	} {
		if got := c.in.String(); got != c.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(c.in), got, c.want)
		}
		if c.in == 0 {
			continue
		}
		if back, err := ParseSize(c.want); err != nil || back != c.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.want, back, err, int64(c.in))
		}
	}
}

func TestParseFileMode(t *testing.T) {
	for _, c := range []struct {
		in   string
		want FileMode
		err  string
	}{
		{in: "0755", want: 0o755},
		{in: "755", want: 0o755},
		{in: "0o755", want: 0o755},
		{in: "0", want: 0},
		{in: "4755", want: 0o4755},
		{in: "07777", want: 0o7777},
		{in: "0789", err: `"0789" is not an octal mode`},
		{in: "rwx", err: `"rwx" is not an octal mode`},
		{in: "", err: `"" is not an octal mode`},
		{in: "-1", err: `"-1" is not an octal mode`},
		{in: "10000", err: `"10000" is not a mode: more than 07777`},
		{in: "0777777", err: `"0777777" is not an octal mode`},
	} {
		got, err := ParseFileMode(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("ParseFileMode(%q) = %v, %v; want error %s", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseFileMode(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if s := FileMode(0o755).String(); s != "0755" {
		t.Errorf("FileMode(0755).String() = %q", s)
	}
}

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "10s", want: 10 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "0s", want: 0},
		{in: "10", err: `"10" is not a duration (like 10s, 1m30s)`},
		{in: "-1s", err: `"-1s": a duration must not be negative`},
	} {
		got, err := ParseDuration(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("ParseDuration(%q) = %v, %v; want error %s", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || time.Duration(got) != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
