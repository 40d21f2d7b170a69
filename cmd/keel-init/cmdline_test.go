package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  a b\n", []string{"a", "b"}},
		{`root=PARTUUID=x keel.slot=a console=ttyS0 quiet`, []string{"root=PARTUUID=x", "keel.slot=a", "console=ttyS0", "quiet"}},
		{`foo="a b" bar`, []string{"foo=a b", "bar"}},
		{`"quoted word"`, []string{"quoted word"}},
		{`a=""`, []string{"a="}},
	} {
		if got := splitCmdline(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bootParams
	}{
		{
			name: "what systemd-boot passes",
			in:   "root=PARTUUID=0A1B2C3D-0000-4000-8000-000000000002 keel.slot=b console=ttyS0 panic=-1 quiet\n",
			want: bootParams{Root: devSpec{"PARTUUID", "0a1b2c3d-0000-4000-8000-000000000002"}, Slot: "b"},
		},
		{
			name: "everything",
			in:   "root=/dev/vda2 keel.slot=a keel.data=PARTLABEL=mydata init=/bin/sh keel.rootwait=2.5",
			want: bootParams{Root: devSpec{"path", "/dev/vda2"}, Data: devSpec{"PARTLABEL", "mydata"}, Slot: "a", Init: "/bin/sh", RootWait: 2500 * time.Millisecond},
		},
		{
			name: "data by PARTUUID",
			in:   "root=PARTLABEL=root-a keel.data=PARTUUID=ABC",
			want: bootParams{Root: devSpec{"PARTLABEL", "root-a"}, Data: devSpec{"PARTUUID", "abc"}},
		},
		{
			name: "no data by request",
			in:   "root=/dev/vda2 keel.data=none",
			want: bootParams{Root: devSpec{"path", "/dev/vda2"}, NoData: true},
		},
		{
			name: "no growing",
			in:   "root=/dev/vda2 keel.grow=no",
			want: bootParams{Root: devSpec{"path", "/dev/vda2"}, NoGrow: true},
		},
		{
			name: "growing, the default, asked for",
			in:   "keel.grow=no keel.grow=yes",
			want: bootParams{},
		},
		{
			name: "later wins",
			in:   "keel.slot=a keel.slot=b",
			want: bootParams{Slot: "b"},
		},
		{
			name: "after -- is init's",
			in:   "keel.slot=a -- keel.slot=x",
			want: bootParams{Slot: "a"},
		},
		{
			name: "a unified kernel image's: verity, no partition, no slot",
			in:   "roothash=ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB keel.verity=1052672 init=/sbin/keel-init console=ttyS0",
			want: bootParams{Init: "/sbin/keel-init", RootHash: bytes.Repeat([]byte{0xab}, 32), VerityOffset: 1052672},
		},
		{
			name: "no root is not a parse error",
			in:   "quiet",
			want: bootParams{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCmdline(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseCmdlineErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"root=UUID=1234", "root"},
		{"root=PARTUUID=", "empty PARTUUID"},
		{"root=/dev/", "root"},
		{"keel.slot=c", "want a or b"},
		{"init=sbin/init", "not an absolute path"},
		{"keel.rootwait=soon", "keel.rootwait"},
		{"keel.rootwait=0", "keel.rootwait"},
		{"keel.data=LABEL=data", "keel.data"},
		{"keel.grow=0", `"0": want yes or no`},
		{"roothash=abcd keel.verity=4096", "want 64 hex digits"},
		{"roothash=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx keel.verity=4096", "roothash"},
		{"roothash=abababababababababababababababababababababababababababababababab keel.verity=4097", "multiple of 4096"},
		{"roothash=abababababababababababababababababababababababababababababababab keel.verity=-4096", "keel.verity"},
		{"roothash=abababababababababababababababababababababababababababababababab", "go together"},
		{"keel.verity=4096", "go together"},
	} {
		_, err := parseCmdline(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseCmdline(%q): %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestCmdlineValue(t *testing.T) {
	for _, tc := range []struct{ in, key, want string }{
		{"root=garbage keel.slot=b quiet", "keel.slot", "b"},
		{"quiet", "keel.slot", ""},
		{"keel.test=ttyS0 keel.test=ttyS1", "keel.test", "ttyS1"},
		{"keel.testx=1 xkeel.test=2", "keel.test", ""},
		{"quiet -- keel.test=ttyS1", "keel.test", ""},
	} {
		if got := cmdlineValue(tc.in, tc.key); got != tc.want {
			t.Errorf("cmdlineValue(%q, %q) = %q, want %q", tc.in, tc.key, got, tc.want)
		}
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add(`root=PARTUUID=x keel.slot=a foo="a b" -- x`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseCmdline(s)
	})
}
