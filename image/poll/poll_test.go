package poll

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParseReboot(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Reboot
		err  bool
	}{
		{"immediate", Reboot{Kind: "immediate"}, false},
		{"manual", Reboot{Kind: "manual"}, false},
		{"window 02:00-04:00", Reboot{"window", 120, 240}, false},
		{"window 23:30-01:15", Reboot{"window", 23*60 + 30, 75}, false},
		{"window 02:00-02:00", Reboot{}, true},
		{"window 2-4", Reboot{}, true},
		{"window 25:00-04:00", Reboot{}, true},
		{"sometimes", Reboot{}, true},
		{"", Reboot{}, true},
	} {
		got, err := ParseReboot(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseReboot(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestRebootWait(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 30, h, m, 0, 0, time.UTC) }
	night, _ := ParseReboot("window 02:00-04:00")
	wrap, _ := ParseReboot("window 23:00-01:00")
	for _, tc := range []struct {
		name string
		r    Reboot
		now  time.Time
		want time.Duration
	}{
		{"immediate", Reboot{Kind: "immediate"}, at(12, 0), 0},
		{"manual never", Reboot{Kind: "manual"}, at(3, 0), -1},
		{"inside", night, at(3, 0), 0},
		{"at the start", night, at(2, 0), 0},
		{"at the end: tomorrow", night, at(4, 0), 22 * time.Hour},
		{"before", night, at(1, 30), 30 * time.Minute},
		{"after: tomorrow", night, at(12, 0), 14 * time.Hour},
		{"wrapping, before midnight", wrap, at(23, 30), 0},
		{"wrapping, after midnight", wrap, at(0, 30), 0},
		{"wrapping, outside", wrap, at(22, 0), time.Hour},
	} {
		if got := tc.r.Wait(tc.now); got != tc.want {
			t.Errorf("%s: Wait = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	good := `{"source":"oci://registry.test:5000/dev/app:stable","interval":"6h0m0s","jitter":"36m0s","reboot":"window 02:00-04:00"}`
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Interval) != 6*time.Hour || c.Reboot != "window 02:00-04:00" {
		t.Errorf("parsed %+v", c)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		if d := c.Next(r); d < 6*time.Hour || d >= 6*time.Hour+36*time.Minute {
			t.Fatalf("Next = %v, want within [6h, 6h36m)", d)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{`{"source":"ftp://x/y","interval":"1h","reboot":"manual"}`, "unknown scheme"},
		{`{"source":"http://x/y","interval":"1h","reboot":"manual"}`, "insecure"},
		{`{"source":"https://x/y","interval":"10s","reboot":"manual"}`, "at least"},
		{`{"source":"https://x/y","interval":"1h","reboot":"later"}`, "reboot"},
		{`{"source":"https://x/y","interval":"1h","reboot":"manual","extra":1}`, "unknown field"},
		{`{"source":"https://x/y","interval":"soon","reboot":"manual"}`, "duration"},
	} {
		if _, err := Parse([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s): %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	if _, err := Parse([]byte(`{"source":"http://127.0.0.1:8080/b.keel","interval":"1m","reboot":"immediate","insecure":true}`)); err != nil {
		t.Errorf("insecure http: %v", err)
	}
}
