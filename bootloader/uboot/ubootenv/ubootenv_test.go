package ubootenv_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"keel/bootloader/internal/tooltest"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keel/bootloader/uboot/ubootenv"
)

// mkenvimage runs the real tool on text (its input format: name=value lines).
func mkenvimage(t *testing.T, text string, size int, redundant bool, pad byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "env.txt"), filepath.Join(dir, "env.bin")
	if err := os.WriteFile(in, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-s", fmt.Sprint(size), "-p", fmt.Sprint(pad), "-o", out}
	if redundant {
		args = append(args, "-r")
	}
	tooltest.Run(t, nil, "mkenvimage", append(args, in)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var samples = []struct {
	name string
	text string // mkenvimage input
	vars map[string]string
	// sorted: text is exactly what Marshal writes (names sorted, no
	// comments or escapes), so the bytes must match with zero padding.
	sorted bool
}{
	{
		name:   "slots",
		text:   "BOOT_ORDER=a b\nBOOT_a_LEFT=3\nBOOT_b_LEFT=3\nbootcmd=run keel_boot\n",
		vars:   map[string]string{"BOOT_ORDER": "a b", "BOOT_a_LEFT": "3", "BOOT_b_LEFT": "3", "bootcmd": "run keel_boot"},
		sorted: true,
	},
	{
		name:   "one",
		text:   "x=1\n",
		vars:   map[string]string{"x": "1"},
		sorted: true,
	},
	{
		name:   "values with = and ;",
		text:   "bootargs=root=PARTUUID=1234 console=ttyAMA0\nkeel_boot=load virtio 0:1 ${loadaddr} /a; source ${loadaddr}\n",
		vars:   map[string]string{"bootargs": "root=PARTUUID=1234 console=ttyAMA0", "keel_boot": "load virtio 0:1 ${loadaddr} /a; source ${loadaddr}"},
		sorted: true,
	},
	{
		name: "unsorted, comments, blank lines, no final newline",
		text: "# keel\nz=last\n\na=first\n# b=commented\nm=middle",
		vars: map[string]string{"a": "first", "m": "middle", "z": "last"},
	},
	{
		name: "continued line is a newline in the value",
		text: "script=echo one\\\necho two\nx=y\n",
		vars: map[string]string{"script": "echo one\necho two", "x": "y"},
	},
	{
		name: "later entry wins, empty value deletes",
		text: "a=1\nb=2\na=3\nb=\n",
		vars: map[string]string{"a": "3"},
	},
}

// mkenvimage writes, Parse reads the same variables; with zero padding and
// sorted input Marshal writes the same bytes.
func TestMkenvimage(t *testing.T) {
	for _, s := range samples {
		for _, redundant := range []bool{false, true} {
			for _, pad := range []byte{0x00, 0xff} {
				t.Run(fmt.Sprintf("%s/redundant=%v/pad=%#x", s.name, redundant, pad), func(t *testing.T) {
					const size = 0x2000
					img := mkenvimage(t, s.text, size, redundant, pad)
					if len(img) != size {
						t.Fatalf("mkenvimage wrote %d bytes, want %d", len(img), size)
					}
					b := img
					if redundant {
						// mkenvimage -r writes one copy, flags 1; the second copy
						// here is erased flash, which fails its CRC.
						b = append(bytes.Clone(img), bytes.Repeat([]byte{0xff}, size)...)
					}
					env, err := ubootenv.Parse(b, size, redundant)
					if err != nil {
						t.Fatal(err)
					}
					if !maps.Equal(env.Vars, s.vars) {
						t.Errorf("Parse: %q, want %q", env.Vars, s.vars)
					}
					if redundant && (env.Index != 0 || env.Flags != 1) {
						t.Errorf("Parse: copy %d flags %d, want copy 0 flags 1", env.Index, env.Flags)
					}
					if !s.sorted || pad != 0 {
						return
					}
					m, err := (&ubootenv.Env{Vars: s.vars, Redundant: redundant}).Marshal(size)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(m[:size], img) {
						t.Errorf("Marshal differs from mkenvimage at byte %d", firstDiff(m, img))
					}
				})
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// fwConfig writes a fw_env.config for a file holding one or two copies.
func fwConfig(t *testing.T, file string, size int, redundant bool) string {
	t.Helper()
	cfg := fmt.Sprintf("%s 0x0 %#x\n", file, size)
	if redundant {
		cfg += fmt.Sprintf("%s %#x %#x\n", file, size, size)
	}
	p := filepath.Join(filepath.Dir(file), "fw_env.config")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fwPrintenv reads all variables with the real tool. Values here hold no
// newline, so each output line is one variable; a debug build of
// libubootenv also prints "Environment OK, copy N" lines, without '='.
func fwPrintenv(t *testing.T, cfg string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, line := range strings.Split(string(tooltest.Run(t, nil, "fw_printenv", "-c", cfg)), "\n") {
		if name, value, ok := strings.Cut(line, "="); ok {
			vars[name] = value
		}
	}
	return vars
}

var slotVars = map[string]string{
	"BOOT_ORDER":  "a b",
	"BOOT_a_LEFT": "3",
	"BOOT_b_LEFT": "0",
	"bootargs":    "console=ttyAMA0 root=PARTLABEL=root-a ro",
	"keel_slot":   "a",
}

// What Marshal writes, fw_printenv reads the same, single or redundant.
func TestFwPrintenvReadsMarshal(t *testing.T) {
	for _, redundant := range []bool{false, true} {
		t.Run(fmt.Sprintf("redundant=%v", redundant), func(t *testing.T) {
			const size = 0x4000
			b, err := (&ubootenv.Env{Vars: slotVars, Redundant: redundant}).Marshal(size)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "uboot.env")
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if got := fwPrintenv(t, fwConfig(t, file, size, redundant)); !maps.Equal(got, slotVars) {
				t.Errorf("fw_printenv: %q, want %q", got, slotVars)
			}
		})
	}
}

// fw_setenv on a redundant file writes the inactive copy with the counter
// advanced; Parse must take that copy, and NextCopy must continue the
// sequence so that fw_printenv takes ours, also across the 255 → 0 wrap.
func TestFwSetenvRedundant(t *testing.T) {
	const size = 0x4000
	for _, start := range []struct {
		name   string
		flags0 byte // flags of copy 0 (current) and copy 1 to start with
		flags1 byte
	}{
		{"fresh from Marshal", 1, 0},
		{"counter wraps", 254, 253},
		{"copy 0 at 255", 255, 254},
	} {
		t.Run(start.name, func(t *testing.T) {
			b, err := (&ubootenv.Env{Vars: slotVars, Redundant: true}).Marshal(size)
			if err != nil {
				t.Fatal(err)
			}
			b[ubootenv.FlagOffset], b[size+ubootenv.FlagOffset] = start.flags0, start.flags1
			file := filepath.Join(t.TempDir(), "uboot.env")
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := fwConfig(t, file, size, true)
			want := maps.Clone(slotVars)
			index, flags := 0, start.flags0
			for step := range 4 {
				// Two writes by fw_setenv, then two by NextCopy.
				value := fmt.Sprint(2 - step)
				want["BOOT_a_LEFT"] = value
				index, flags = 1-index, flags+1
				if step < 2 {
					tooltest.Run(t, nil, "fw_setenv", "-c", cfg, "BOOT_a_LEFT", value)
				} else {
					b, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					env, err := ubootenv.Parse(b, size, true)
					if err != nil {
						t.Fatal(err)
					}
					env.Vars["BOOT_a_LEFT"] = value
					i, blk, err := env.NextCopy(size)
					if err != nil {
						t.Fatal(err)
					}
					if i != index || blk[ubootenv.FlagOffset] != flags {
						t.Fatalf("step %d: NextCopy gave copy %d flags %d, want copy %d flags %d", step, i, blk[ubootenv.FlagOffset], index, flags)
					}
					copy(b[i*size:], blk)
					if err := os.WriteFile(file, b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				env, err := ubootenv.Parse(b, size, true)
				if err != nil {
					t.Fatal(err)
				}
				if env.Index != index || env.Flags != flags || !maps.Equal(env.Vars, want) {
					t.Fatalf("step %d: Parse: copy %d flags %d %q, want copy %d flags %d %q", step, env.Index, env.Flags, env.Vars, index, flags, want)
				}
				if got := fwPrintenv(t, cfg); !maps.Equal(got, want) {
					t.Fatalf("step %d: fw_printenv: %q, want %q", step, got, want)
				}
			}
		})
	}
}

// block builds one copy by hand, so the tests of Parse do not rest on
// Marshal.
func block(size int, redundant bool, flags byte, data string) []byte {
	h := 4
	if redundant {
		h = 5
	}
	b := make([]byte, size)
	copy(b[h:], data)
	binary.LittleEndian.PutUint32(b, crc32.ChecksumIEEE(b[h:]))
	if redundant {
		b[4] = flags
	}
	return b
}

// The choice between two valid copies, transcribed from fw_env_open.
func TestParseFlags(t *testing.T) {
	const size = 64
	for _, c := range []struct {
		scheme         ubootenv.FlagScheme
		flags0, flags1 byte
		want           int
	}{
		{ubootenv.Incremental, 1, 0, 0},
		{ubootenv.Incremental, 0, 1, 1},
		{ubootenv.Incremental, 5, 5, 0},
		{ubootenv.Incremental, 7, 200, 1},
		{ubootenv.Incremental, 255, 0, 1},
		{ubootenv.Incremental, 0, 255, 0},
		{ubootenv.Incremental, 255, 254, 0},
		{ubootenv.Incremental, 254, 255, 1},
		{ubootenv.Incremental, 255, 1, 0}, // only 255 → 0 is a wrap
		{ubootenv.Boolean, 1, 0, 0},
		{ubootenv.Boolean, 0, 1, 1},
		{ubootenv.Boolean, 1, 1, 0},
		{ubootenv.Boolean, 0xff, 1, 0},
		{ubootenv.Boolean, 0xff, 0, 0},
		{ubootenv.Boolean, 1, 0xff, 1},
		{ubootenv.Boolean, 0, 0xff, 1},
		{ubootenv.Boolean, 3, 5, 0},
	} {
		t.Run(fmt.Sprintf("%v/%d,%d", c.scheme, c.flags0, c.flags1), func(t *testing.T) {
			b := append(block(size, true, c.flags0, "copy=0\x00\x00"), block(size, true, c.flags1, "copy=1\x00\x00")...)
			env, err := ubootenv.ParseScheme(b, size, true, c.scheme)
			if err != nil {
				t.Fatal(err)
			}
			if env.Index != c.want || env.Vars["copy"] != fmt.Sprint(c.want) {
				t.Errorf("took copy %d (%q), want %d", env.Index, env.Vars, c.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	const size = 64
	good := func(s string) []byte { return block(size, false, 0, s) }
	bad := func(s string) []byte { b := good(s); b[0] ^= 1; return b }
	for _, c := range []struct {
		name      string
		b         []byte
		redundant bool
		want      map[string]string
		wantErr   error // nil: any error when want is nil
	}{
		{name: "empty", b: good(""), want: map[string]string{}},
		{name: "two", b: good("a=1\x00b=2\x00\x00"), want: map[string]string{"a": "1", "b": "2"}},
		{name: "himport_r skips blanks and comments", b: good(" \ta=1\x00#b=2\x00c=3\x00"), want: map[string]string{"a": "1", "c": "3"}},
		{name: "name without = deletes", b: good("a=1\x00a\x00b=2\x00"), want: map[string]string{"b": "2"}},
		{name: "backslash escapes", b: good(`a=x\\y\;z\` + "\x00"), want: map[string]string{"a": `x\y;z\`}},
		{name: "value holds =", b: good("bootargs=root=/dev/vda2\x00"), want: map[string]string{"bootargs": "root=/dev/vda2"}},
		{name: "bad CRC", b: bad("a=1\x00"), wantErr: ubootenv.ErrBadCRC},
		{name: "both copies bad", b: append(bad("a=1\x00"), bad("a=2\x00")...), redundant: true, wantErr: ubootenv.ErrBadCRC},
		{name: "empty name", b: good("=1\x00")},
		{name: "not terminated", b: good(strings.Repeat("a", size-4))},
		{name: "short", b: good("a=1\x00")[:size-1]},
		{name: "redundant needs two copies", b: block(size, true, 1, "a=1\x00"), redundant: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, err := ubootenv.Parse(c.b, size, c.redundant)
			if c.want == nil {
				if err == nil {
					t.Fatalf("Parse: %q, want an error", env.Vars)
				}
				if c.wantErr != nil && !errors.Is(err, c.wantErr) {
					t.Fatalf("Parse: %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(env.Vars, c.want) {
				t.Errorf("Parse: %q, want %q", env.Vars, c.want)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		vars map[string]string
		size int
	}{
		{"too big", map[string]string{"a": strings.Repeat("x", 60)}, 64},
		{"one byte too big", map[string]string{"a": strings.Repeat("x", 64-4-4+1)}, 64},
		{"= in name", map[string]string{"a=b": "1"}, 64},
		{"empty name", map[string]string{"": "1"}, 64},
		{"NUL in value", map[string]string{"a": "1\x002"}, 64},
		{"blank first in name", map[string]string{" a": "1"}, 64},
		{"# first in name", map[string]string{"#a": "1"}, 64},
		{"size smaller than header", map[string]string{}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := (&ubootenv.Env{Vars: c.vars}).Marshal(c.size)
			if err == nil {
				t.Fatalf("Marshal: %q, want an error", b)
			}
			if tooBig := strings.Contains(c.name, "too big"); tooBig != errors.Is(err, ubootenv.ErrTooBig) {
				t.Errorf("Marshal: %v; ErrTooBig expected: %v", err, tooBig)
			}
		})
	}
	// The boundary: "a=" + value + "\0" + "\0" fills the 60-byte data area.
	if _, err := (&ubootenv.Env{Vars: map[string]string{"a": strings.Repeat("x", 64-4-4)}}).Marshal(64); err != nil {
		t.Errorf("Marshal of a full block: %v", err)
	}
}

// Write, read, write: the same bytes and variables, single and redundant.
func TestRoundTrip(t *testing.T) {
	vars := maps.Clone(slotVars)
	vars["script"] = "if test ${x} = 1; then echo \\ok; fi\nsecond line"
	vars["empty"] = "" // left out: U-Boot reads "empty=" as a deletion
	for _, redundant := range []bool{false, true} {
		const size = 0x1000
		b, err := (&ubootenv.Env{Vars: vars, Redundant: redundant}).Marshal(size)
		if err != nil {
			t.Fatal(err)
		}
		env, err := ubootenv.Parse(b, size, redundant)
		if err != nil {
			t.Fatal(err)
		}
		want := maps.Clone(vars)
		delete(want, "empty")
		if !maps.Equal(env.Vars, want) {
			t.Errorf("redundant=%v: Parse(Marshal): %q, want %q", redundant, env.Vars, want)
		}
		b2, err := env.Marshal(size)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Errorf("redundant=%v: Marshal(Parse(Marshal)) differs at byte %d", redundant, firstDiff(b, b2))
		}
	}
}

func TestNextCopy(t *testing.T) {
	const size = 256
	b, err := (&ubootenv.Env{Vars: map[string]string{"n": "0"}, Redundant: true}).Marshal(size)
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []ubootenv.FlagScheme{ubootenv.Incremental, ubootenv.Boolean} {
		t.Run(scheme.String(), func(t *testing.T) {
			disk := bytes.Clone(b)
			for i := 1; i <= 600; i++ { // past the counter's wrap, twice
				env, err := ubootenv.ParseScheme(disk, size, true, scheme)
				if err != nil {
					t.Fatal(err)
				}
				if env.Vars["n"] != fmt.Sprint(i-1) {
					t.Fatalf("write %d: read n=%s, want %d", i, env.Vars["n"], i-1)
				}
				old := env.Index
				env.Vars["n"] = fmt.Sprint(i)
				index, blk, err := env.NextCopy(size)
				if err != nil {
					t.Fatal(err)
				}
				if index != 1-old {
					t.Fatalf("write %d: NextCopy chose copy %d, the one in use", i, index)
				}
				copy(disk[index*size:], blk)
				if scheme == ubootenv.Boolean {
					disk[old*size+ubootenv.FlagOffset] = 0
				}
			}
		})
	}
	if _, _, err := (&ubootenv.Env{Vars: map[string]string{}}).NextCopy(size); err == nil {
		t.Error("NextCopy of a single-copy environment: no error")
	}
}
