package pcimage

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the fuzz seeds in testdata/fuzz from their generators")

// elfSeeds are the seeds of FuzzELF, in testdata/fuzz/FuzzELF: small
// ELF files made by makeELF, each valid or broken in one way.
func elfSeeds() map[string][]byte {
	kernel := testKernel()
	le := binary.LittleEndian
	shoffPastEnd := bytes.Clone(kernel)
	le.PutUint32(shoffPastEnd[32:], uint32(len(kernel)-8))
	hugeSection := bytes.Clone(kernel)
	le.PutUint32(hugeSection[le.Uint32(kernel[32:])+elfSectionLen+20:], 0xffffffff)
	return map[string][]byte{
		"kernel":             kernel,
		"module":             testModule("fat"),
		"kernel-truncated":   kernel[:60],
		"shoff-past-end":     shoffPastEnd,
		"text-size-huge":     hugeSection,
		"magic-only":         []byte("\x7fELF"),
		"text-not-at-0x9000": makeELF(etExec, em386, []testSection{{name: ".text", typ: shtProgbits, flags: shfAlloc | shfExecinstr, addr: 0x8000, data: []byte{0x90}}}),
		"bss-before-data": makeELF(etExec, em386, []testSection{
			{name: ".text", typ: shtProgbits, flags: shfAlloc | shfExecinstr, addr: linkAddr, data: []byte{0x90}},
			{name: ".data", typ: shtProgbits, flags: shfAlloc, addr: linkAddr + 0x100, data: []byte{1}},
			{name: ".bss", typ: shtNobits, flags: shfAlloc, addr: linkAddr + 0x10, nobitsBytes: 4},
		}),
	}
}

// FuzzELF: keel's ELF reader, kernel layout and module check never
// panic, and what the layout accepts stays inside the kernel's memory.
func FuzzELF(f *testing.F) {
	for _, b := range elfSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if ef, err := parseELF32(b); err == nil {
			for _, s := range ef.sections {
				_ = ef.data(s)
			}
		}
		img, kl, err := layoutKernel(b, 16)
		if err == nil {
			if len(img) != kl.size+16 {
				t.Fatalf("image %d bytes for a kernel of %d", len(img), kl.size)
			}
			if kl.size < 0 || kl.bss < 0 || linkAddr+kl.size+kl.bss > kernelLimit {
				t.Fatalf("layout %+v beyond 0x%x", kl, kernelLimit)
			}
		}
		_ = checkModule("fat", b)
	})
}

// FuzzModdep: any moddep.lst either gives an error or an order in which
// every module follows what it needs, each module once.
func FuzzModdep(f *testing.F) {
	f.Add([]byte("fat: fshelp\nfshelp:\nnormal: extcmd crypto\nextcmd:\ncrypto:\n"), "fat normal")
	f.Add([]byte("a: b\nb: a\n"), "a")
	f.Add([]byte("a b\n"), "a")
	f.Add([]byte("a: b c\nb: c\nc:\na: c\n"), "a b")
	f.Fuzz(func(t *testing.T, list []byte, requested string) {
		deps, err := parseModdep(list)
		if err != nil {
			return
		}
		order, err := deps.resolve(strings.Fields(requested))
		if err != nil {
			if !strings.Contains(err.Error(), "cycle") {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, m := range order {
			if seen[m] {
				t.Fatalf("%s twice in %v", m, order)
			}
			for _, d := range deps[m] {
				if !seen[d] {
					t.Fatalf("%s before its dependency %s in %v", m, d, order)
				}
			}
			seen[m] = true
		}
		for _, m := range strings.Fields(requested) {
			if !seen[m] {
				t.Fatalf("requested %s missing from %v", m, order)
			}
		}
	})
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzELF equal to elfSeeds (go test
// -run TestFuzzSeeds -update rewrites it), so the seeds are made by code
// anyone can read rather than being opaque binaries.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzELF")
	seeds := elfSeeds()
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			file := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		want, ok := seeds[e.Name()]
		if !ok {
			t.Errorf("%s: no generator in elfSeeds", e.Name())
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(want))) {
			t.Errorf("%s differs from its generator; run go test -run TestFuzzSeeds -update", e.Name())
		}
	}
	if len(names) != len(seeds) {
		t.Errorf("testdata has %v, elfSeeds has %d seeds", names, len(seeds))
	}
}
