package install

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"

	"keel/bootloader"
	"keel/image/bundle"
	"keel/image/delta"
)

// InstallDelta installs the bundle at src, as Install does, fetching only
// what the running slot does not already hold. It reads the bundle's
// header, manifest and signature by range requests and checks them as
// OpenBundle and Install do (any refusal is a *RefusedError, before
// anything is written); then, when the bundle has an index, the index,
// which must match its sha256 in the signed manifest and describe the
// manifest's artifacts (a refusal too). The steps are Install's; in steps 2
// and 3 each chunk the running slot has (by the slot's index on the ESP,
// else by chunking the slot and its files) is read from it, and the others
// are fetched from src, adjacent ones in one range; every chunk is checked
// against the index, and each artifact against the manifest, before it is
// used. A bundle without an index, or one on a server that ignores range
// requests, is read as Install reads a stream: the rest of it, from after
// its signature to its end, in one request (reopened where it broke off).
func InstallDelta(ctx context.Context, t Target, src delta.Source, trusted []ed25519.PublicKey, o Options) (*Result, error) {
	o = o.withDefaults(t)
	fo := o.Fetch
	if fo.Logger == nil {
		fo.Logger = o.Logger
	}
	rem := delta.NewRemote(src, fo)
	progress := func(stage string) {
		if o.Progress != nil {
			o.Progress(stage, 0, 0)
		}
	}
	progress("reading the bundle's manifest from " + src.String())
	hdr := make([]byte, bundle.HeaderSize)
	if err := rem.ReadAt(ctx, hdr, 0); err != nil {
		return nil, remoteErr("reading the bundle's header", err)
	}
	n, err := bundle.HeadSize(hdr)
	if err != nil {
		return nil, Refuse(err)
	}
	head := make([]byte, n)
	copy(head, hdr)
	if err := rem.ReadAt(ctx, head[len(hdr):], int64(len(hdr))); err != nil {
		return nil, remoteErr("reading the bundle's manifest", err)
	}
	b, err := OpenBundle(bytes.NewReader(head), trusted)
	if err != nil {
		return nil, err
	}
	m := b.Manifest
	pl, err := prepare(t, m, o)
	if err != nil {
		return nil, err
	}
	o.Logger.Info("installing", "name", m.Name, "version", m.Version, "slot", pl.slot, "key", b.KeyID, "source", src.String())

	ia, indexed := m.Artifact(bundle.Index)
	if skipped := rem.Skipped(); indexed && skipped > 0 {
		// Every range would come with all the bytes before it.
		o.Logger.Warn("the server ignores range requests: fetching the bundle whole", "source", src.String(), "skipped", skipped)
		indexed = false
	}
	if !indexed {
		// Nothing to choose from: the rest of the bundle as a stream,
		// checked as Install checks one (to its end).
		body := rem.Rest(ctx, n)
		defer body.Close()
		rest, err := OpenBundle(io.MultiReader(bytes.NewReader(head), body), trusted)
		if err != nil {
			return nil, err
		}
		res, err := pl.stream(ctx, t, rest, o)
		if res != nil {
			res.Fetched, res.Requests = rem.Fetched(), rem.Requests()
		}
		return res, err
	}
	// The bundle must end with its last artifact, which a stream finds
	// by reading past it: of the byte before its end and the one after,
	// only the first may be there.
	end := n + m.Total()
	tail, err := rem.Peek(ctx, end-1, 2)
	if err != nil {
		return nil, err
	}
	switch len(tail) {
	case 0:
		return nil, Refuse(fmt.Errorf("%w: %s ends before byte %d, the end of its last artifact", bundle.ErrTruncated, src, end))
	case 2:
		return nil, Refuse(fmt.Errorf("%w: %s goes on after byte %d, the end of its last artifact", bundle.ErrCorrupt, src, end))
	}
	progress("reading the bundle's index")
	index, err := readIndex(bundle.Verified(ia, rem.Range(ctx, n, ia.Size)), ia, m)
	if err != nil {
		return nil, remoteErr("reading the index", err)
	}
	x, err := delta.Parse(index)
	if err != nil {
		return nil, Refuse(err) // readIndex parsed it already
	}
	progress(fmt.Sprintf("looking for the bundle's chunks in slot %s", t.Booted))
	st, err := localChunks(ctx, t, x.Params, o)
	if err != nil {
		return nil, err
	}
	d := &deltaArtifacts{ctx: ctx, m: m, x: x, st: st, rem: rem, head: n, next: 1}
	res, err := pl.run(ctx, t, d, index, o)
	d.close()
	o.Logger.Info("delta install", "fetched", rem.Fetched(), "requests", rem.Requests(), "reused", d.stats.Local, "rejected", d.stats.Rejected)
	if res != nil {
		res.Fetched, res.Requests, res.Reused = rem.Fetched(), rem.Requests(), d.stats.Local
	}
	return res, err
}

// remoteErr turns a bundle that is bad (truncated, corrupt, an index
// whose hash does not match) into a refusal: nothing was written yet.
// A network error stays what it is.
func remoteErr(what string, err error) error {
	if IsRefused(err) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%w: %w", bundle.ErrTruncated, err)
	}
	return refuseBad(fmt.Errorf("%s: %w", what, err))
}

// deltaArtifacts gives Install's steps the artifacts after the index, each
// assembled by a delta.Reader and checked whole by bundle.Verified.
type deltaArtifacts struct {
	ctx   context.Context
	m     bundle.Manifest
	x     *delta.Index
	st    *delta.Store
	rem   *delta.Remote
	head  int64
	next  int // in m.Artifacts
	cur   *delta.Reader
	stats delta.Stats
}

func (d *deltaArtifacts) Next() (bundle.Artifact, io.Reader, error) {
	d.close()
	if d.next == len(d.m.Artifacts) {
		return bundle.Artifact{}, nil, io.EOF
	}
	a := d.m.Artifacts[d.next]
	d.next++
	sec, ok := d.x.Section(a.Name)
	if !ok { // delta.Index.Check said it has them all
		return a, nil, fmt.Errorf("%w: index has no section %s", bundle.ErrCorrupt, a.Name)
	}
	off, _ := d.m.Offset(d.head, a.Name)
	d.cur = delta.NewReader(d.ctx, sec, d.st, d.rem, off)
	return a, bundle.Verified(a, d.cur), nil
}

func (d *deltaArtifacts) close() {
	if d.cur != nil {
		d.cur.Close()
		s := d.cur.Stats
		d.stats.Local += s.Local
		d.stats.Remote += s.Remote
		d.stats.Requests += s.Requests
		d.stats.Rejected += s.Rejected
		d.cur = nil
	}
}

// localChunks finds the chunks the running slot holds: its partition and
// its files on the ESP. The slot's index, kept on the ESP, says where
// they are without reading them; a slot without one (installed from a
// bundle without an index, or built before indexes) is chunked with p:
// the first Running.RootBytes of its partition (else as much as its
// squashfs superblock says it uses) and its kernel, initrd or unified
// kernel image. Neither is trusted: each chunk is hashed again when read.
func localChunks(ctx context.Context, t Target, p delta.Params, o Options) (*delta.Store, error) {
	st := delta.NewStore()
	part, ok := t.Layout.Slot(t.Booted)
	if !ok {
		return nil, Refuse(fmt.Errorf("the disk has no partition %q", "root-"+t.Booted))
	}
	root := io.NewSectionReader(t.Disk, part.Start, part.Size)
	files := map[string]*espFile{}
	for _, name := range []string{bundle.Kernel, bundle.Initrd, bundle.UKI} {
		files[name] = &espFile{esp: t.ESP, path: path.Join("/keel", t.Booted, espName[name])}
	}
	if raw, err := t.ESP.ReadFile(IndexPath(t.Booted)); err == nil {
		x, err := delta.Parse(raw)
		switch {
		case err != nil:
			o.Logger.Warn("the running slot's index is unreadable: chunking the slot", "path", IndexPath(t.Booted), "err", err)
		case x.Params != p:
			o.Logger.Info("the running slot's index has other chunk sizes: chunking the slot", "path", IndexPath(t.Booted))
		default:
			for _, s := range x.Sections {
				if s.Name == bundle.Rootfs && s.Size <= part.Size {
					st.Add("slot "+t.Booted, root, &s)
				} else if f := files[s.Name]; f != nil {
					st.Add(f.path, f, &s)
				}
			}
			return st, nil
		}
	}
	size := t.Running.RootBytes
	if size <= 0 || size > part.Size {
		size = squashfsBytes(root)
	}
	if err := st.Scan(ctx, p, "slot "+t.Booted, root, size); err != nil {
		return nil, err
	}
	for _, name := range []string{bundle.Kernel, bundle.Initrd, bundle.UKI} {
		f := files[name]
		b, err := f.load()
		if err != nil {
			continue // a slot has either kind's files, not both
		}
		if err := st.Scan(ctx, p, f.path, bytes.NewReader(b), int64(len(b))); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// squashfsBytes is how much of a slot its squashfs takes: bytes_used in
// its superblock rounded up to 4 KiB, as keel's writer (and mksquashfs)
// pad it; 0 if the slot does not start with a squashfs.
func squashfsBytes(r *io.SectionReader) int64 {
	var sb [96]byte
	if _, err := r.ReadAt(sb[:], 0); err != nil || string(sb[:4]) != "hsqs" {
		return 0
	}
	used := int64(binary.LittleEndian.Uint64(sb[40:]))
	if used <= 0 || used > r.Size() {
		return 0
	}
	return min((used+4095)/4096*4096, r.Size())
}

// espFile reads a file of the ESP when a chunk is first wanted from it.
type espFile struct {
	esp  bootloader.ESP
	path string
	once sync.Once
	b    []byte
	err  error
}

func (f *espFile) load() ([]byte, error) {
	f.once.Do(func() { f.b, f.err = f.esp.ReadFile(f.path) })
	return f.b, f.err
}

func (f *espFile) ReadAt(p []byte, off int64) (int, error) {
	b, err := f.load()
	if err != nil {
		return 0, err
	}
	return bytes.NewReader(b).ReadAt(p, off)
}
