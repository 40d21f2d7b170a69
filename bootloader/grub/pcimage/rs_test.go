package pcimage

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// gfMulSlow multiplies in GF(2^8) mod x^8+x^4+x^3+x^2+1 bit by bit, a
// second implementation to check the table-driven encoder against.
func gfMulSlow(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1d
		}
		b >>= 1
	}
	return p
}

// checkSyndromes checks codes against data the way a decoder starts:
// every column's code word (data bytes, then code bytes, highest degree
// first) must vanish at x^0 ... x^(rr-1), the roots of GRUB's generator.
// The split into blocks is grub_reed_solomon_recover's.
func checkSyndromes(data, codes []byte) error {
	block := 0
	for len(data) > 0 {
		cs, crs := len(data), len(codes)
		if tt := cs + crs; tt > 200*512 {
			cs = cs * 200 / tt * 512
			crs = crs * 200 / tt * 512
		}
		if cs == 0 {
			return fmt.Errorf("block %d: no data", block)
		}
		for i := 0; i < 512; i++ {
			ds := (cs + 511 - i) / 512
			rr := (crs + 511 - i) / 512
			if ds == 0 || rr == 0 {
				continue
			}
			word := make([]byte, 0, ds+rr)
			for j := 0; j < ds; j++ {
				word = append(word, data[512*j+i])
			}
			for j := 0; j < rr; j++ {
				word = append(word, codes[512*j+i])
			}
			root := byte(1) // x^k
			for k := 0; k < rr; k++ {
				var s byte // Horner's rule
				for _, c := range word {
					s = gfMulSlow(s, root) ^ c
				}
				if s != 0 {
					return fmt.Errorf("block %d column %d: syndrome %d is 0x%02x", block, i, k, s)
				}
				root = gfMulSlow(root, 2)
			}
		}
		data, codes = data[cs:], codes[crs:]
		block++
	}
	return nil
}

func TestReedSolomon(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct{ data, codes int }{
		{512, 512},
		{1000, 24},        // partial sectors on both sides
		{300 * 512, 2000}, // several blocks, few codes
		{150 * 512, 150 * 512},
		{400*512 + 77, 400*512 - 77}, // what Embed does for a 400-sector core
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d+%d", tc.data, tc.codes), func(t *testing.T) {
			data := make([]byte, tc.data)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			codes := make([]byte, tc.codes)
			addRedundancy(data, codes)
			if err := checkSyndromes(data, codes); err != nil {
				t.Fatal(err)
			}
			// The check sees a flipped byte (in column 0, which has
			// codes in every case).
			data[0] ^= 0x40
			if checkSyndromes(data, codes) == nil {
				t.Fatal("a damaged byte passed the syndrome check")
			}
		})
	}
}
