package pecoff

import (
	"math/rand/v2"
	"testing"
)

// referenceChecksum is the algorithm as Microsoft's imagehlp runs it: a
// carry folded in after every word. Checksum defers the carries; the two
// must agree (osslsigncode checks Checksum's output in the uki and
// secureboot tests).
func referenceChecksum(b []byte, off int) uint32 {
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		var w uint32
		for j := i; j < i+2 && j < len(b); j++ {
			if j < off || j >= off+4 {
				w |= uint32(b[j]) << (8 * (j - i))
			}
		}
		sum += w
		sum = sum&0xffff + sum>>16
	}
	sum = sum&0xffff + sum>>16
	return sum + uint32(len(b))
}

func TestChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		b    []byte
		off  int
	}{
		{"empty", nil, 0},
		{"zeros", make([]byte, 4096), 216},
		{"all ones", func() []byte {
			b := make([]byte, 1000)
			for i := range b {
				b[i] = 0xff
			}
			return b
		}(), 64},
		{"only the field set", func() []byte { b := make([]byte, 300); copy(b[100:], []byte{1, 2, 3, 4}); return b }(), 100},
	}
	for _, n := range []int{1, 7, 8, 9, 513, 4096, 100003} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		tests = append(tests,
			struct {
				name string
				b    []byte
				off  int
			}{"random even offset", b, min(216, n/2*2)},
			struct {
				name string
				b    []byte
				off  int
			}{"random odd offset", b, min(217, n)},
		)
	}
	for _, tt := range tests {
		if got, want := Checksum(tt.b, tt.off), referenceChecksum(tt.b, tt.off); got != want {
			t.Errorf("%s (%d bytes, field at %d): %#x, want %#x", tt.name, len(tt.b), tt.off, got, want)
		}
	}
}
