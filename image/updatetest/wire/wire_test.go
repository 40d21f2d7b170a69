package wire

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	code := 3
	for _, m := range []Msg{
		{Hello: &Hello{Name: "busybox", Version: "2.0.0", Slot: "b", Trial: "keel-b+2-1.conf", Require: []string{"greeter"}}},
		{Op: OpBoot, Fault: FaultHang},
		{Op: OpExec, ID: 7, Argv: []string{"keelctl", "install", "/dev/vdb"}},
		{ID: 7, Out: `line with "quotes" and a tab	`},
		{ID: 7, Exit: &code, Error: "boom"},
		{Event: EventVerdict, Result: "bad", Detail: "greeter failed"},
	} {
		b := Encode(m)
		if b[len(b)-1] != '\n' || strings.Count(string(b), "\n") != 1 {
			t.Fatalf("Encode(%+v) = %q: not one line", m, b)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%q): %v", b, err)
		}
		if string(Encode(got)) != string(b) {
			t.Errorf("round trip: %q → %q", b, Encode(got))
		}
	}
}

func TestDecodeNoise(t *testing.T) {
	for _, s := range []string{"", "\x00\x00", "keel-init: hello", "{not json", `{"id": "x"}`} {
		if _, err := Decode([]byte(s)); err == nil {
			t.Errorf("Decode(%q): no error", s)
		}
	}
}

func TestValidPort(t *testing.T) {
	for port, ok := range map[string]bool{"ttyS1": true, "hvc0": true, "": false, "../sda": false, "sda": false, "ttyS1/x": false, "tty.S1": false} {
		if err := ValidPort(port); (err == nil) != ok {
			t.Errorf("ValidPort(%q) = %v, want ok=%v", port, err, ok)
		}
	}
}

// FuzzDecode: a line from the other end (the guest under test is not to
// be trusted) decodes or is refused, never panics, and what decodes
// encodes back to one line.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"hello":{"name":"busybox","version":"1.0.0","slot":"a"}}`))
	f.Add([]byte(`{"id":3,"exit":-1,"error":"x"}`))
	f.Add([]byte(`{"op":"exec","argv":["keelctl","status"],"quiet":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if e := Encode(m); strings.Count(string(e), "\n") != 1 {
			t.Fatalf("Encode(%+v) = %q", m, e)
		}
	})
}
