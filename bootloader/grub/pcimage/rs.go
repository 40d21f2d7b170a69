package pcimage

// Reed-Solomon codes as grub-bios-setup adds them after core.img
// (grub-core/lib/reed_solomon.c, grub_reed_solomon_add_redundancy), so
// that lzma_decompress.img's grub_reed_solomon_recover can repair a core
// image partly overwritten in its embedding area. The layout has to be
// GRUB's exactly, since GRUB decodes it: the protected bytes are cut
// into blocks of at most rsMaxBlock bytes of data and codes together;
// in each block, byte i of every sector (a column) is one code word over
// GF(2^8) with polynomial x^8+x^4+x^3+x^2+1 (0x11d), its parity bytes
// at byte i of the code sectors.

const (
	rsSectorSize = 512
	rsMaxBlock   = 200 * rsSectorSize
	gfPolynomial = 0x1d // GF_POLYNOMIAL, without the x^8 term
)

// gfTables are init_powx's tables: powx[i] = x^i (twice over, so that a
// sum of two logarithms needs no reduction) and logx its inverse.
type gfTables struct {
	powx [255 * 2]byte
	logx [256]int
}

func newGF() *gfTables {
	g := &gfTables{}
	cur := byte(1)
	for i := 0; i < 255; i++ {
		g.powx[i] = cur
		g.powx[i+255] = cur
		g.logx[cur] = i
		if cur&0x80 != 0 {
			cur = cur<<1 ^ gfPolynomial
		} else {
			cur <<= 1
		}
	}
	return g
}

func (g *gfTables) mul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return g.powx[g.logx[a]+g.logx[b]]
}

// generator is rs_encode's polynomial: the product of (X - x^j) for j
// below rs, highest degree first (index 0, always 1).
func (g *gfTables) generator(rs int) []byte {
	p := make([]byte, rs+1)
	p[rs] = 1
	for j := 0; j < rs; j++ {
		for i := 0; i < rs; i++ {
			p[i] = p[i+1] ^ g.mul(g.powx[j], p[i])
		}
		p[rs] = g.mul(g.powx[j], p[rs])
	}
	return p
}

// addRedundancy fills codes with the Reed-Solomon parity of data, as
// grub_reed_solomon_add_redundancy (data, len(data), len(codes)) does.
func addRedundancy(data, codes []byte) {
	g := newGF()
	gens := map[int][]byte{}
	for len(data) > 0 {
		cs, crs := len(data), len(codes)
		if tt := cs + crs; tt > rsMaxBlock {
			cs = cs * (rsMaxBlock / rsSectorSize) / tt * rsSectorSize
			crs = crs * (rsMaxBlock / rsSectorSize) / tt * rsSectorSize
		}
		if cs == 0 {
			// GRUB would loop forever here; Embed never asks for more
			// than about as many code bytes as data bytes, so it
			// cannot happen.
			return
		}
		encodeBlock(g, gens, data[:cs], codes[:crs])
		data, codes = data[cs:], codes[crs:]
	}
}

// encodeBlock is encode_block: one code word per byte column.
func encodeBlock(g *gfTables, gens map[int][]byte, data, codes []byte) {
	s, rs := len(data), len(codes)
	for i := 0; i < rsSectorSize; i++ {
		ds := (s + rsSectorSize - 1 - i) / rsSectorSize
		rr := (rs + rsSectorSize - 1 - i) / rsSectorSize
		if ds == 0 || rr == 0 {
			continue
		}
		gen, ok := gens[rr]
		if !ok {
			gen = g.generator(rr)
			gens[rr] = gen
		}
		// Polynomial division of the column, times X^rr, by gen: the
		// remainder is the parity.
		m := make([]byte, ds+rr)
		for j := 0; j < ds; j++ {
			m[j] = data[rsSectorSize*j+i]
		}
		for j := 0; j < ds; j++ {
			if f := m[j]; f != 0 {
				for k := 0; k <= rr; k++ {
					m[j+k] ^= g.mul(gen[k], f)
				}
			}
		}
		for j := 0; j < rr; j++ {
			codes[rsSectorSize*j+i] = m[ds+j]
		}
	}
}
