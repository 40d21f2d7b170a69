package squashfs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"keel/rootfs"
)

// fileData is where one regular file's content ended up in the image.
type fileData struct {
	path  string
	entry *rootfs.Entry
	size  int64

	start      uint64   // position of the first data block
	sizes      []uint32 // on-disk size of each full block (0 = sparse)
	fragIndex  uint32
	fragOffset uint32
	sparse     uint64 // bytes held by sparse blocks

	dupOf *fileData // identical earlier file whose data this one reuses
}

// resolved returns the file whose data fields are authoritative.
func (f *fileData) resolved() *fileData {
	for f.dupOf != nil {
		f = f.dupOf
	}
	return f
}

type fragment struct {
	start uint64
	size  uint32
}

// slot is one block's worth of pipeline memory. The pool of slots is what
// bounds memory: the reader cannot get ahead of the writer by more than the
// number of slots.
type slot struct {
	in  []byte
	out []byte
}

type job struct {
	seq    int
	slot   *slot
	n      int       // bytes of input in slot.in
	file   *fileData // nil for a fragment block
	block  int       // block index in file
	frag   uint32    // fragment index when file is nil
	stored []byte    // what to write: slot.out or slot.in[:n]; nil = sparse
	flag   uint32    // dataUncompFlag when stored raw
}

// dataWriter runs the parallel data pipeline:
//
//	reader (1 goroutine, tree order) → compressors (Workers) → writer (1, in order)
//
// The reader decides everything that affects layout (dedup, fragment
// packing, block boundaries) in tree order, and the writer lays blocks down
// strictly by sequence number, so scheduling never changes the bytes.
type dataWriter struct {
	o      Options
	codec  *codec
	files  []*fileData
	out    *countingWriter
	frags  []fragment
	stats  *Stats
	window int
}

// Memory bound: window slots of 2×BlockSize (input and output; the fragment
// being filled is one of them), plus one small-file buffer of BlockSize. With
// 128 KiB blocks and 2 workers that is 8 slots, about 2.2 MiB, whatever the
// tree size.
func newDataWriter(o Options, c *codec, files []*fileData, out *countingWriter, st *Stats) *dataWriter {
	return &dataWriter{o: o, codec: c, files: files, out: out, stats: st, window: 4 * o.Workers}
}

func (d *dataWriter) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	slots := make(chan *slot, d.window)
	for range d.window {
		// One spare input byte, for a small file read into a fragment.
		slots <- &slot{in: make([]byte, d.o.BlockSize+1), out: make([]byte, 0, d.o.BlockSize+d.o.BlockSize/16+64)}
	}
	jobs := make(chan *job, d.window)
	results := make(chan *job, d.window)

	g.Go(func() error {
		defer close(jobs)
		return d.read(ctx, slots, jobs)
	})
	workers, wctx := errgroup.WithContext(ctx)
	for range d.o.Workers {
		workers.Go(func() error { return d.compress(wctx, jobs, results) })
	}
	g.Go(func() error {
		err := workers.Wait()
		close(results)
		return err
	})
	g.Go(func() error { return d.write(ctx, slots, results) })
	return g.Wait()
}

func (d *dataWriter) compress(ctx context.Context, jobs <-chan *job, results chan<- *job) error {
	c, err := d.codec.new()
	if err != nil {
		return err
	}
	for j := range jobs {
		in := j.slot.in[:j.n]
		switch {
		case j.file != nil && allZero(in):
			j.stored = nil
		default:
			out, err := c.compress(j.slot.out, in)
			if err != nil {
				if j.file != nil {
					return fmt.Errorf("compress %s: %w", j.file.path, err)
				}
				return fmt.Errorf("compress fragment %d: %w", j.frag, err)
			}
			j.slot.out = out
			if len(out) < len(in) {
				j.stored, j.flag = out, 0
			} else {
				j.stored, j.flag = in, dataUncompFlag
			}
		}
		select {
		case results <- j:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (d *dataWriter) write(ctx context.Context, slots chan<- *slot, results <-chan *job) error {
	pending := map[int]*job{}
	next := 0
	var done int64
	for j := range results {
		pending[j.seq] = j
		for {
			j, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if err := d.place(j); err != nil {
				return err
			}
			done += int64(j.n)
			slots <- j.slot
			if d.o.Progress != nil {
				d.o.Progress(done, d.stats.ContentBytes)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (d *dataWriter) place(j *job) error {
	at := d.out.n
	if _, err := d.out.Write(j.stored); err != nil {
		return fmt.Errorf("write data: %w", err)
	}
	if j.file == nil {
		d.frags[j.frag] = fragment{start: at, size: uint32(len(j.stored)) | j.flag}
		return nil
	}
	f := j.file
	if j.block == 0 {
		f.start = at
	}
	if j.stored == nil {
		f.sizes[j.block] = 0
		f.sparse += uint64(j.n)
	} else {
		f.sizes[j.block] = uint32(len(j.stored)) | j.flag
	}
	return nil
}

// read walks the files in order and feeds the pipeline.
func (d *dataWriter) read(ctx context.Context, slots <-chan *slot, jobs chan<- *job) error {
	bs := int64(d.o.BlockSize)
	seq := 0
	submit := func(j *job) error {
		j.seq = seq
		seq++
		select {
		case jobs <- j:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	getSlot := func() (*slot, error) {
		select {
		case s := <-slots:
			return s, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	// A file can only duplicate one of the same size, so only files whose
	// size another file shares are hashed: large ones up front, small ones
	// as they are read. Most sizes are unique, so most files are never
	// hashed, and the reader, one goroutine, has less to do.
	sizeCount := map[int64]int{}
	for _, f := range d.files {
		sizeCount[f.size]++
	}
	type key struct {
		size int64
		sum  [32]byte
	}
	seen := map[key]*fileData{}
	frags := &fragPacker{d: d, getSlot: getSlot, submit: submit}
	// A small file that does not fit the fragment being filled is read
	// aside first: only once it is known not to be a duplicate may it close
	// that fragment, or duplicates would change the layout.
	small := make([]byte, bs+1) // one spare byte to see a file that grew

	for _, f := range d.files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.size == 0 {
			continue
		}
		if f.size < bs {
			n := int(f.size)
			direct := frags.fits(n)
			buf := small
			if direct {
				buf = frags.spare(n)
			}
			if err := readAll(f, buf); err != nil {
				return err
			}
			b := buf[:n]
			if sizeCount[f.size] > 1 {
				k := key{f.size, sha256.Sum256(b)}
				if orig, ok := seen[k]; ok {
					f.dupOf = orig
					d.stats.Duplicates++
					continue
				}
				seen[k] = f
			}
			if !direct {
				room, err := frags.room(n)
				if err != nil {
					return err
				}
				copy(room, b)
			}
			frags.commit(f, n)
			continue
		}
		if sizeCount[f.size] > 1 {
			sum, err := hashFile(f)
			if err != nil {
				return err
			}
			k := key{f.size, sum}
			if orig, ok := seen[k]; ok {
				f.dupOf = orig
				d.stats.Duplicates++
				continue
			}
			seen[k] = f
		}
		if err := d.readBlocks(f, getSlot, submit, frags); err != nil {
			return err
		}
	}
	return frags.flush()
}

// fragPacker packs small files and file tails into fragment blocks, in tree
// order. The block being filled lives in a pipeline slot, so content is read
// straight into it rather than copied there twice.
type fragPacker struct {
	d       *dataWriter
	getSlot func() (*slot, error)
	submit  func(*job) error
	cur     *slot // the fragment being filled, nil before the first
	n       int   // bytes in cur
}

// fits reports whether n more bytes fit the current fragment.
func (p *fragPacker) fits(n int) bool {
	return p.cur != nil && p.n+n <= p.d.o.BlockSize
}

// spare returns the current fragment's free space for n bytes plus the
// spare byte readAll wants; fits(n) must hold.
func (p *fragPacker) spare(n int) []byte {
	return p.cur.in[p.n : p.n+n+1]
}

// room returns space for n bytes, first closing the current fragment if
// they do not fit.
func (p *fragPacker) room(n int) ([]byte, error) {
	if p.cur != nil && !p.fits(n) {
		if err := p.flush(); err != nil {
			return nil, err
		}
	}
	if p.cur == nil {
		s, err := p.getSlot()
		if err != nil {
			return nil, err
		}
		p.cur, p.n = s, 0
	}
	return p.cur.in[p.n : p.n+n], nil
}

// commit records that f's last n bytes are at the end of the current
// fragment, where room or spare put them.
func (p *fragPacker) commit(f *fileData, n int) {
	f.fragIndex = uint32(len(p.d.frags)) // the index flush will give it
	f.fragOffset = uint32(p.n)
	p.n += n
}

// flush sends the current fragment down the pipeline.
func (p *fragPacker) flush() error {
	if p.cur == nil || p.n == 0 {
		return nil
	}
	idx := uint32(len(p.d.frags))
	p.d.frags = append(p.d.frags, fragment{})
	s, n := p.cur, p.n
	p.cur, p.n = nil, 0
	return p.submit(&job{slot: s, n: n, frag: idx})
}

func (d *dataWriter) readBlocks(f *fileData, getSlot func() (*slot, error), submit func(*job) error, frags *fragPacker) error {
	bs := int64(d.o.BlockSize)
	r, err := open(f)
	if err != nil {
		return err
	}
	defer r.Close()
	nblocks := int(f.size / bs)
	f.sizes = make([]uint32, nblocks)
	for i := range nblocks {
		s, err := getSlot()
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(r, s.in[:bs]); err != nil {
			return readErr(f, err)
		}
		if err := submit(&job{slot: s, n: int(bs), file: f, block: i}); err != nil {
			return err
		}
	}
	if tail := int(f.size % bs); tail > 0 {
		buf, err := frags.room(tail)
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return readErr(f, err)
		}
		frags.commit(f, tail)
	}
	return checkEOF(f, r)
}

// open returns the file's content; a nil Opener is Size bytes of zeros.
func open(f *fileData) (io.ReadCloser, error) {
	if f.entry.Content == nil {
		return io.NopCloser(io.LimitReader(zeros{}, f.size)), nil
	}
	r, err := f.entry.Content()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", f.path, err)
	}
	return r, nil
}

// readAll reads the whole small file into b, which has one spare byte
// beyond f.size: a regular file read in one call returns short at its end,
// so the usual case is a single read, with no second one to find EOF.
func readAll(f *fileData, b []byte) error {
	r, err := open(f)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.ReadAtLeast(r, b[:f.size+1], int(f.size))
	switch {
	case n > int(f.size):
		return fmt.Errorf("read %s: %w (longer than %d bytes)", f.path, ErrSizeMismatch, f.size)
	case err != nil && n < int(f.size):
		return readErr(f, err)
	case n == int(f.size) && err == nil:
		// The read stopped exactly at the size without seeing EOF or a
		// short read, so the file may go on.
		return checkEOF(f, r)
	}
	return nil
}

func hashFile(f *fileData) ([32]byte, error) {
	var sum [32]byte
	r, err := open(f)
	if err != nil {
		return sum, err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, f.size))
	if err != nil {
		return sum, readErr(f, err)
	}
	if n != f.size {
		return sum, readErr(f, io.ErrUnexpectedEOF)
	}
	if err := checkEOF(f, r); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// ErrSizeMismatch means a file's content did not have the length its entry
// declared, usually because it changed while the image was written.
var ErrSizeMismatch = errors.New("content length differs from the entry's size")

func readErr(f *fileData, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w (shorter than %d bytes)", f.path, ErrSizeMismatch, f.size)
	}
	return fmt.Errorf("read %s: %w", f.path, err)
}

func checkEOF(f *fileData, r io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n > 0 {
		return fmt.Errorf("read %s: %w (longer than %d bytes)", f.path, ErrSizeMismatch, f.size)
	}
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("read %s: %w", f.path, err)
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// countingWriter tracks the absolute position of a sequential writer and
// keeps its first error, so a run of table writes can be checked once.
type countingWriter struct {
	w   io.Writer
	n   uint64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += uint64(n)
	c.err = err
	return n, err
}
