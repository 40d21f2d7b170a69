package squashfs

import (
	"bytes"
	"fmt"
	"hash/crc32"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz/lzma"
)

// compressor compresses one block. A compressor is used by one goroutine at a
// time; newCompressor makes one per worker. Output must depend only on the
// input and the options, never on scheduling, so images are reproducible.
type compressor interface {
	// compress appends the compressed form of src to dst[:0].
	compress(dst, src []byte) ([]byte, error)
}

type codec struct {
	id uint16
	// options is the compressor-options metadata payload, or nil when the
	// defaults apply and none is written (as mksquashfs does).
	options []byte
	new     func() (compressor, error)
}

func newCodec(o Options) (*codec, error) {
	switch o.Compression {
	case Zstd:
		newEnc := func() (*zstd.Encoder, error) {
			// Levels 1, 3, 7 and 11 map to the encoder's four strengths.
			// One encoder per worker: an Encoder's EncodeAll takes one of its
			// own internal encoders per call, so a shared one with
			// concurrency 1 would serialize every worker.
			return zstd.NewWriter(nil,
				zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(o.Level)),
				zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderCRC(false),
				// The kernel decodes with a window of at most the block size.
				zstd.WithWindowSize(max(o.BlockSize, 1<<17)),
				zstd.WithSingleSegment(true),
				zstd.WithLowerEncoderMem(true))
		}
		if _, err := newEnc(); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		// No accepted level is 15, mksquashfs's default, the one level that
		// needs no options block.
		return &codec{id: compZstd, options: le(nil).u32(uint32(o.Level)), new: func() (compressor, error) {
			enc, err := newEnc()
			if err != nil {
				return nil, fmt.Errorf("zstd: %w", err)
			}
			return zstdComp{enc}, nil
		}}, nil
	case Gzip:
		c := &codec{id: compGzip, new: func() (compressor, error) {
			w, err := zlib.NewWriterLevel(nil, o.Level)
			if err != nil {
				return nil, err
			}
			return &zlibComp{w: w}, nil
		}}
		if o.Level != 9 {
			// level, window bits 15, strategy "default" (bit 0).
			c.options = le(nil).u32(uint32(o.Level)).u16(15).u16(1)
		}
		return c, nil
	case XZ:
		dict := max(o.BlockSize, 8192)
		c := &codec{id: compXZ, new: func() (compressor, error) {
			return &xzComp{dict: dict, bcj: o.XZBCJ}, nil
		}}
		if o.XZBCJ {
			// dictionary size, then the filter bitmap (x86 = 1).
			c.options = le(nil).u32(uint32(dict)).u32(1)
		}
		return c, nil
	}
	return nil, fmt.Errorf("unsupported compressor %q", o.Compression)
}

type zstdComp struct{ enc *zstd.Encoder }

func (z zstdComp) compress(dst, src []byte) ([]byte, error) {
	return z.enc.EncodeAll(src, dst[:0]), nil
}

type zlibComp struct {
	w   *zlib.Writer
	buf bytes.Buffer
}

func (z *zlibComp) compress(dst, src []byte) ([]byte, error) {
	z.buf.Reset()
	z.w.Reset(&z.buf)
	if _, err := z.w.Write(src); err != nil {
		return nil, err
	}
	if err := z.w.Close(); err != nil {
		return nil, err
	}
	return append(dst[:0], z.buf.Bytes()...), nil
}

// xzComp writes a complete .xz stream per block around a raw LZMA2 stream,
// with a CRC32 check: the kernel's xz decoder accepts no other check, and
// building the container here is what lets us put the x86 BCJ filter in front.
type xzComp struct {
	dict int
	bcj  bool
	raw  bytes.Buffer
	tmp  []byte
}

func (x *xzComp) compress(dst, src []byte) ([]byte, error) {
	check := crc32.ChecksumIEEE(src)
	out, err := x.stream(dst[:0], src, check, false)
	if err != nil || !x.bcj {
		return out, err
	}
	// Like mksquashfs -Xbcj, keep whichever of the plain and filtered
	// streams is smaller, so non-code blocks do not grow.
	x.tmp = append(x.tmp[:0], src...)
	if !bcjX86Encode(x.tmp) {
		// Nothing to convert (text, most data): the filtered stream would
		// hold the same LZMA2 data behind a block header of the same
		// padded size, so it could not be smaller. Skipping it halves the
		// time of such blocks and leaves the bytes as they were.
		return out, nil
	}
	alt, err := x.stream(nil, x.tmp, check, true)
	if err != nil {
		return nil, err
	}
	if len(alt) < len(out) {
		return append(out[:0], alt...), nil
	}
	return out, nil
}

// stream compresses data (already filtered when bcj is set); check is the
// CRC32 of the unfiltered block, which is what the xz check covers.
func (x *xzComp) stream(dst, data []byte, check uint32, bcj bool) ([]byte, error) {
	x.raw.Reset()
	// The pure-Go LZMA2 encoder has one usable matcher (hash chain); its
	// binary tree is 20× slower and compresses worse here, so xz has one
	// strength and Levels accepts one level.
	cfg := lzma.Writer2Config{DictCap: x.dict, Matcher: lzma.HashTable4}
	w, err := cfg.NewWriter2(&x.raw)
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return appendXZ(dst, x.raw.Bytes(), len(data), check, x.dict, bcj), nil
}

// appendXZ wraps one raw LZMA2 stream in the .xz container: stream header,
// one block (optionally with a BCJ x86 filter), index, footer.
func appendXZ(dst, lzma2 []byte, usize int, check uint32, dict int, bcj bool) []byte {
	start := len(dst)
	// Stream header: magic, flags (check type 1 = CRC32), CRC32 of the flags.
	flags := []byte{0, 1}
	dst = append(dst, 0xfd, '7', 'z', 'X', 'Z', 0)
	dst = append(dst, flags...)
	dst = le(dst).u32(crc32.ChecksumIEEE(flags))

	// Block header.
	var hdr []byte
	hdr = append(hdr, 0) // size byte, set below
	nfilters := byte(1)
	if bcj {
		nfilters = 2
	}
	hdr = append(hdr, nfilters-1)
	if bcj {
		hdr = append(hdr, 0x04, 0x00) // BCJ x86, no properties
	}
	hdr = append(hdr, 0x21, 0x01, lzma2DictByte(dict))
	for (len(hdr)+4)%4 != 0 {
		hdr = append(hdr, 0)
	}
	hdr[0] = byte((len(hdr)+4)/4 - 1)
	hdr = le(hdr).u32(crc32.ChecksumIEEE(hdr))
	dst = append(dst, hdr...)
	dst = append(dst, lzma2...)
	// Block padding: header + data is padded to a multiple of 4 bytes; the
	// stream header and block header already are.
	for (len(dst)-start)%4 != 0 {
		dst = append(dst, 0)
	}
	dst = le(dst).u32(check)
	unpadded := len(hdr) + len(lzma2) + 4

	// Index: indicator, record count, one record, padding, CRC32.
	idxStart := len(dst)
	dst = append(dst, 0)
	dst = appendVarint(dst, 1)
	dst = appendVarint(dst, uint64(unpadded))
	dst = appendVarint(dst, uint64(usize))
	for (len(dst)-idxStart)%4 != 0 {
		dst = append(dst, 0)
	}
	dst = le(dst).u32(crc32.ChecksumIEEE(dst[idxStart:]))
	indexSize := len(dst) - idxStart

	// Stream footer: CRC32 of (backward size, flags), backward size, flags, magic.
	foot := le(nil).u32(uint32(indexSize/4 - 1))
	foot = append(foot, flags...)
	dst = le(dst).u32(crc32.ChecksumIEEE(foot))
	dst = append(dst, foot...)
	return append(dst, 'Y', 'Z')
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// lzma2DictByte encodes the smallest LZMA2 dictionary size ≥ n.
func lzma2DictByte(n int) byte {
	for b := 0; b < 40; b++ {
		size := (2 | (b & 1)) << (b/2 + 11)
		if size >= n {
			return byte(b)
		}
	}
	return 40
}

// bcjX86Encode applies the x86 branch-call-jump filter in place, as xz's
// simple/x86.c does for a stream that starts at offset 0 and ends with buf.
// Relative CALL/JMP targets become absolute, which LZMA compresses better.
// It reports whether it changed anything.
func bcjX86Encode(buf []byte) (changed bool) {
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBit := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	test := func(b byte) bool { return b == 0 || b == 0xff }
	var prevMask uint32
	prevPos := ^uint32(4) // -5
	if len(buf) < 5 {
		return false
	}
	limit := len(buf) - 5
	for pos := 0; pos <= limit; {
		b := buf[pos]
		if b != 0xe8 && b != 0xe9 {
			pos++
			continue
		}
		offset := uint32(pos) - prevPos
		prevPos = uint32(pos)
		if offset > 5 {
			prevMask = 0
		} else {
			for i := uint32(0); i < offset; i++ {
				prevMask &= 0x77
				prevMask <<= 1
			}
		}
		b = buf[pos+4]
		if test(b) && maskToAllowed[(prevMask>>1)&7] && prevMask>>1 < 0x10 {
			src := uint32(b)<<24 | uint32(buf[pos+3])<<16 | uint32(buf[pos+2])<<8 | uint32(buf[pos+1])
			var dest uint32
			for {
				dest = src + uint32(pos) + 5
				if prevMask == 0 {
					break
				}
				i := maskToBit[prevMask>>1]
				b = byte(dest >> (24 - i*8))
				if !test(b) {
					break
				}
				src = dest ^ (1<<(32-i*8) - 1)
			}
			buf[pos+4] = ^byte(((dest >> 24) & 1) - 1)
			buf[pos+3] = byte(dest >> 16)
			buf[pos+2] = byte(dest >> 8)
			buf[pos+1] = byte(dest)
			changed = true
			pos += 5
			prevMask = 0
		} else {
			pos++
			prevMask |= 1
			if test(b) {
				prevMask |= 0x10
			}
		}
	}
	return changed
}
