package mountinfo

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := `22 1 0:21 / / ro,relatime - squashfs /dev/vda2 ro
23 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=4k
24 22 0:22 / /proc rw - proc proc rw
25 22 254:4 / /var rw,nosuid,nodev - ext4 /dev/vda4 rw
26 25 254:1 / /var/my\040esp rw shared:1 master:2 - vfat /dev/vda1 rw,dirsync
27 22 0:23 / /tmp rw - tmpfs tmpfs rw
`
	ms, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 6 || ms[4] != (Entry{Major: 254, Minor: 1, Target: "/var/my esp", FSType: "vfat", Source: "/dev/vda1"}) {
		t.Fatalf("parsed %+v", ms)
	}
	for _, bad := range []string{"garbage\n", "1 2 x:y / / rw - ext4 /dev/a rw\n", "1 2 8:1 / / rw ext4 /dev/a rw\n"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("malformed %q accepted", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:       "/plain",
		`/a\040b`:      "/a b",
		`/tab\011x`:    "/tab\tx",
		`/back\134s`:   `/back\s`,
		`/short\04`:    `/short\04`,
		`/notoctal\9x`: `/notoctal\9x`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
