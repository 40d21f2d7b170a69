package dmverity

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The C layout of include/uapi/linux/dm-ioctl.h on x86_64, written out by
// hand from the header (every field is naturally aligned, so there is no
// hidden padding; `pahole` on a kernel with BTF shows the same):
//
//	struct dm_ioctl {                 offset size
//		__u32 version[3];               0   12
//		__u32 data_size;               12    4
//		__u32 data_start;              16    4
//		__u32 target_count;            20    4
//		__s32 open_count;              24    4
//		__u32 flags;                   28    4
//		__u32 event_nr;                32    4
//		__u32 padding;                 36    4
//		__u64 dev;                     40    8
//		char name[DM_NAME_LEN];        48  128
//		char uuid[DM_UUID_LEN];       176  129
//		char data[7];                 305    7
//	};                                 size 312
//
//	struct dm_target_spec {
//		__u64 sector_start;             0    8
//		__u64 length;                   8    8
//		__s32 status;                  16    4
//		__u32 next;                    20    4
//		char target_type[DM_MAX_TYPE_NAME]; 24 16
//	};                                 size 40
const (
	cVersionOff, cVersionSize         = 0, 12
	cDataSizeOff                      = 12
	cDataStartOff                     = 16
	cTargetCountOff                   = 20
	cOpenCountOff                     = 24
	cFlagsOff                         = 28
	cEventNrOff                       = 32
	cPaddingOff                       = 36
	cDevOff                           = 40
	cNameOff, cNameSize               = 48, 128
	cUUIDOff, cUUIDSize               = 176, 129
	cDataOff, cDataSize               = 305, 7
	cIoctlSize                        = 312
	cSectorStartOff                   = 0
	cLengthOff                        = 8
	cStatusOff                        = 16
	cNextOff                          = 20
	cTargetTypeOff, cTargetTypeSize   = 24, 16
	cSpecSize                         = 40
	ioctlSizeShift, ioctlSizeMask     = 16, 0x3fff // _IOC_SIZESHIFT, 14 bits
	cDMNameLen, cDMUUIDLen, cDMMaxTyp = 128, 129, 16
)

// fill sets every byte of a field to 0xff.
func fill[T any](p *T) {
	b := make([]byte, binary.Size(p))
	for i := range b {
		b[i] = 0xff
	}
	if _, err := binary.Decode(b, order, p); err != nil {
		panic(err)
	}
}

// onlyOnes checks that b has 0xff exactly in [off, off+size) and zeros
// elsewhere.
func onlyOnes(t *testing.T, b []byte, off, size int) {
	t.Helper()
	for i, c := range b {
		want := byte(0)
		if i >= off && i < off+size {
			want = 0xff
		}
		if c != want {
			t.Fatalf("byte %d is %#x, want %#x (field at %d, %d bytes)", i, c, want, off, size)
		}
	}
}

func TestIoctlHeaderLayout(t *testing.T) {
	if n := binary.Size(ioctlHeader{}); n != cIoctlSize || headerSize != cIoctlSize {
		t.Fatalf("struct dm_ioctl encodes to %d bytes (headerSize %d), C has %d", n, headerSize, cIoctlSize)
	}
	// The ioctl numbers carry sizeof(struct dm_ioctl) too.
	if n := (unix.DM_VERSION >> ioctlSizeShift) & ioctlSizeMask; n != cIoctlSize {
		t.Fatalf("DM_VERSION encodes a %d-byte argument, want %d", n, cIoctlSize)
	}
	for _, l := range []struct {
		what          string
		ours, c, xsys int
	}{
		{"DM_NAME_LEN", nameLen, cDMNameLen, unix.DM_NAME_LEN},
		{"DM_UUID_LEN", uuidLen, cDMUUIDLen, unix.DM_UUID_LEN},
		{"DM_MAX_TYPE_NAME", typeNameLen, cDMMaxTyp, unix.DM_MAX_TYPE_NAME},
	} {
		if l.ours != l.c || l.ours != l.xsys {
			t.Errorf("%s: ours %d, the header's %d, x/sys/unix's %d", l.what, l.ours, l.c, l.xsys)
		}
	}
	for _, tc := range []struct {
		field     string
		off, size int
		set       func(*ioctlHeader)
	}{
		{"version", cVersionOff, cVersionSize, func(h *ioctlHeader) { fill(&h.Version) }},
		{"data_size", cDataSizeOff, 4, func(h *ioctlHeader) { fill(&h.DataSize) }},
		{"data_start", cDataStartOff, 4, func(h *ioctlHeader) { fill(&h.DataStart) }},
		{"target_count", cTargetCountOff, 4, func(h *ioctlHeader) { fill(&h.TargetCount) }},
		{"open_count", cOpenCountOff, 4, func(h *ioctlHeader) { fill(&h.OpenCount) }},
		{"flags", cFlagsOff, 4, func(h *ioctlHeader) { fill(&h.Flags) }},
		{"event_nr", cEventNrOff, 4, func(h *ioctlHeader) { fill(&h.EventNr) }},
		{"padding", cPaddingOff, 4, func(h *ioctlHeader) { fill(&h.Padding) }},
		{"dev", cDevOff, 8, func(h *ioctlHeader) { fill(&h.Dev) }},
		{"name", cNameOff, cNameSize, func(h *ioctlHeader) { fill(&h.Name) }},
		{"uuid", cUUIDOff, cUUIDSize, func(h *ioctlHeader) { fill(&h.UUID) }},
		{"data", cDataOff, cDataSize, func(h *ioctlHeader) { fill(&h.Data) }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			var h ioctlHeader
			tc.set(&h)
			b := make([]byte, cIoctlSize)
			if _, err := binary.Encode(b, order, &h); err != nil {
				t.Fatal(err)
			}
			onlyOnes(t, b, tc.off, tc.size)
		})
	}
}

func TestTargetSpecLayout(t *testing.T) {
	if n := binary.Size(targetSpec{}); n != cSpecSize || specSize != cSpecSize {
		t.Fatalf("struct dm_target_spec encodes to %d bytes (specSize %d), C has %d", n, specSize, cSpecSize)
	}
	for _, tc := range []struct {
		field     string
		off, size int
		set       func(*targetSpec)
	}{
		{"sector_start", cSectorStartOff, 8, func(s *targetSpec) { fill(&s.SectorStart) }},
		{"length", cLengthOff, 8, func(s *targetSpec) { fill(&s.Length) }},
		{"status", cStatusOff, 4, func(s *targetSpec) { fill(&s.Status) }},
		{"next", cNextOff, 4, func(s *targetSpec) { fill(&s.Next) }},
		{"target_type", cTargetTypeOff, cTargetTypeSize, func(s *targetSpec) { fill(&s.TargetType) }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			var s targetSpec
			tc.set(&s)
			b := make([]byte, cSpecSize)
			if _, err := binary.Encode(b, order, &s); err != nil {
				t.Fatal(err)
			}
			onlyOnes(t, b, tc.off, tc.size)
		})
	}
}

func TestRequest(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		name    string
		flags   uint32
		targets uint32
		data    []byte
		size    int
		wantLen int
		wantErr string
	}{
		{desc: "version", wantLen: cIoctlSize},
		{desc: "create read-only", name: "keel-root", flags: unix.DM_READONLY_FLAG, wantLen: cIoctlSize},
		{desc: "table load", name: "keel-root", flags: unix.DM_READONLY_FLAG, targets: 1, data: []byte("spec and params\x00"), wantLen: cIoctlSize + 16},
		{desc: "status buffer", name: "r", size: 16 << 10, wantLen: 16 << 10},
		{desc: "longest name", name: strings.Repeat("n", cDMNameLen-1), wantLen: cIoctlSize},
		{desc: "name too long", name: strings.Repeat("n", cDMNameLen), wantErr: "longer than 127 bytes"},
		{desc: "NUL in name", name: "a\x00b", wantErr: "NUL"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			buf, err := request(tc.name, tc.flags, tc.targets, tc.data, tc.size)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(buf) != tc.wantLen {
				t.Fatalf("buffer of %d bytes, want %d", len(buf), tc.wantLen)
			}
			// Read the fields back at the C offsets, independently of
			// the Go struct.
			u32 := func(off int) uint32 { return order.Uint32(buf[off:]) }
			if v := [3]uint32{u32(cVersionOff), u32(cVersionOff + 4), u32(cVersionOff + 8)}; v != [3]uint32{4, 0, 0} {
				t.Errorf("version %v, want 4.0.0", v)
			}
			if got := u32(cDataSizeOff); got != uint32(len(buf)) {
				t.Errorf("data_size %d, want the buffer's %d", got, len(buf))
			}
			if got := u32(cDataStartOff); got != cIoctlSize {
				t.Errorf("data_start %d, want %d", got, cIoctlSize)
			}
			if got := u32(cTargetCountOff); got != tc.targets {
				t.Errorf("target_count %d, want %d", got, tc.targets)
			}
			if got := u32(cFlagsOff); got != tc.flags {
				t.Errorf("flags %#x, want %#x", got, tc.flags)
			}
			name := buf[cNameOff : cNameOff+cNameSize]
			if got := cString(name); got != tc.name || name[len(tc.name)] != 0 {
				t.Errorf("name %q, want %q NUL-terminated", got, tc.name)
			}
			if !bytes.Equal(buf[cIoctlSize:cIoctlSize+len(tc.data)], tc.data) {
				t.Errorf("data not at data_start")
			}
			// And round trip through the decoder.
			h, err := decodeHeader(buf)
			if err != nil {
				t.Fatal(err)
			}
			if cString(h.Name[:]) != tc.name || h.Flags != tc.flags || h.TargetCount != tc.targets || h.DataSize != uint32(len(buf)) {
				t.Errorf("decoded %+v", h)
			}
			again, err := request(cString(h.Name[:]), h.Flags, h.TargetCount, buf[h.DataStart:h.DataStart+uint32(len(tc.data))], int(h.DataSize))
			if err != nil || !bytes.Equal(again, buf) {
				t.Errorf("encode(decode(buf)) differs from buf (err %v)", err)
			}
		})
	}
}

func TestEncodeTarget(t *testing.T) {
	verity := "1 /dev/vda /dev/vda 4096 4096 64 65 sha256 " + strings.Repeat("ab", 32) + " " + strings.Repeat("cd", 32)
	for _, tc := range []struct {
		desc    string
		ttype   string
		params  string
		wantLen int
		wantErr string
	}{
		{desc: "no params", ttype: "zero", params: "", wantLen: 48},           // 40+0+1 → 48
		{desc: "fills to 47", ttype: "verity", params: "123456", wantLen: 48}, // 40+6+1 = 47 → 48
		{desc: "exactly 48", ttype: "verity", params: "1234567", wantLen: 48}, // 40+7+1 = 48
		{desc: "one over", ttype: "verity", params: "12345678", wantLen: 56},  // 49 → 56
		{desc: "verity line", ttype: "verity", params: verity, wantLen: 216},  // 40+172+1 = 213 → 216
		{desc: "longest type", ttype: strings.Repeat("t", 15), wantLen: 48},
		{desc: "type too long", ttype: strings.Repeat("t", 16), wantErr: "longer than 15 bytes"},
		{desc: "empty type", ttype: "", wantErr: "empty target type"},
		{desc: "NUL in params", ttype: "verity", params: "a\x00b", wantErr: "NUL"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b, err := encodeTarget(8, 1234, tc.ttype, tc.params)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.wantLen || len(b)%8 != 0 {
				t.Fatalf("%d bytes, want %d (a multiple of 8)", len(b), tc.wantLen)
			}
			if got := order.Uint64(b[cSectorStartOff:]); got != 8 {
				t.Errorf("sector_start %d", got)
			}
			if got := order.Uint64(b[cLengthOff:]); got != 1234 {
				t.Errorf("length %d", got)
			}
			if got := order.Uint32(b[cNextOff:]); got != uint32(len(b)) {
				t.Errorf("next %d, want the padded size %d", got, len(b))
			}
			if got := cString(b[cTargetTypeOff : cTargetTypeOff+cTargetTypeSize]); got != tc.ttype {
				t.Errorf("target_type %q", got)
			}
			if got := string(b[cSpecSize : cSpecSize+len(tc.params)]); got != tc.params {
				t.Errorf("params %q", got)
			}
			if pad := b[cSpecSize+len(tc.params):]; len(pad) == 0 || !bytes.Equal(pad, make([]byte, len(pad))) {
				t.Errorf("params not followed by NUL padding: %q", pad)
			}
		})
	}
}

// kernelStatus builds a DM_TABLE_STATUS answer the way dm-ioctl.c's
// retrieve_status writes it, at the C offsets.
func kernelStatus(size int, targets uint32, ttype, status string) []byte {
	b := make([]byte, size)
	order.PutUint32(b[cVersionOff:], 4)
	order.PutUint32(b[cDataStartOff:], cIoctlSize)
	order.PutUint32(b[cTargetCountOff:], targets)
	spec := b[cIoctlSize:]
	copy(spec[cTargetTypeOff:], ttype)
	copy(spec[cSpecSize:], status+"\x00")
	used := cIoctlSize + cSpecSize + len(status) + 1
	order.PutUint32(spec[cNextOff:], uint32(used-cIoctlSize))
	order.PutUint32(b[cDataSizeOff:], uint32(used))
	return b
}

func TestDecodeStatus(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		buf        []byte
		wantType   string
		wantStatus string
		wantErr    string
	}{
		{desc: "verified", buf: kernelStatus(4096, 1, "verity", "V"), wantType: "verity", wantStatus: "V"},
		{desc: "corrupted", buf: kernelStatus(4096, 1, "verity", "C"), wantType: "verity", wantStatus: "C"},
		{desc: "longer line", buf: kernelStatus(4096, 1, "verity", "V -"), wantType: "verity", wantStatus: "V -"},
		{desc: "no table", buf: kernelStatus(4096, 0, "", ""), wantErr: "no active table"},
		{desc: "data_size past the buffer", buf: kernelStatus(cIoctlSize+cSpecSize+1, 1, "verity", "V"), wantErr: "malformed"},
		{desc: "short buffer", buf: make([]byte, 100), wantErr: "decoding"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ttype, status, err := decodeStatus(tc.buf)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ttype != tc.wantType || status != tc.wantStatus {
				t.Fatalf("got %q %q, want %q %q", ttype, status, tc.wantType, tc.wantStatus)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"keel-root", true},
		{"", false},
		{"a/b", false},
	} {
		if err := checkName(tc.name); (err == nil) != tc.ok {
			t.Errorf("checkName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// Without device-mapper (no dm_mod, as in a container), the errors say
// which step failed and why; the real thing is tested in QEMU
// (qemu-tests/dmverity_test.go).
func TestArgumentsCheckedFirst(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		call    func() error
		wantErr string
	}{
		{"empty name", func() error { _, _, err := Create("", "verity", 8, "x", ""); return err }, "empty device-mapper device name"},
		{"zero sectors", func() error { _, _, err := Create("r", "verity", 0, "x", ""); return err }, "dm create r: a target of 0 sectors"},
		{"long type", func() error { _, _, err := Create("r", "verity-but-much-longer", 8, "x", ""); return err }, "dm table r: target type"},
		{"remove slash", func() error { return Remove("a/b") }, "contains '/'"},
		{"status empty", func() error { _, err := Status(""); return err }, "empty"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if err := tc.call(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
