// Package install applies a signed update bundle to the inactive slot of a
// keel disk, in the order of DESIGN §4, each step durable before the next:
//
//  1. remove the target slot's entry (nothing points at the slot any more);
//  2. stream the root filesystem into the slot's partition, hashing;
//  3. write the slot's kernel and initrd (or its unified kernel image,
//     keel.efi), the bundle's chunk index (image/delta) and image.json
//     under temporary names, sync, rename into place, sync;
//  4. write the slot's entry keel-<slot>+<tries>.conf with the next
//     generation through a temporary name, sync.
//
// The entry is of the bundle's kind: a linux entry for a kernel and an
// initrd, an efi entry (no options: the image's command line is signed
// into it) for a unified kernel image, whatever kind the booted slot's
// entry is.
//
// The booted slot's partition, files on the ESP and entry are never
// written, so a failure or a power cut at any point leaves a disk that
// boots as it did. The same code runs on a disk image file (keel update)
// and on a running device (keelctl install): the disk is an io.WriterAt and
// the ESP a bootloader.DirESP. Install reads the bundle as a stream;
// InstallDelta takes the same steps with the artifacts assembled from the
// running slot's chunks and the ranges of the bundle it lacks.
package install

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"strings"

	"keel/bootloader"
	"keel/image/bundle"
	"keel/image/delta"
	"keel/image/disk"
	"keel/image/fetch"
)

// Errors callers branch on. A refused bundle wraps one of these (or one of
// bundle's) in a *RefusedError; nothing on the disk has changed when they
// are returned.
var (
	ErrIncompatible  = errors.New("bundle is for another kind of device")
	ErrWrongArch     = errors.New("bundle is for another architecture")
	ErrDowngrade     = errors.New("bundle is older than the running image")
	ErrTooLarge      = errors.New("artifact does not fit")
	ErrBadManifest   = errors.New("manifest does not describe a keel update")
	ErrBootedNotGood = errors.New("the running slot is not blessed")
	ErrBusy          = errors.New("busy")
)

// RefusedError is an install, or a change of entries, turned down before
// anything was written: the bundle (signature, key, header, manifest,
// compatibility, architecture, version, size), the disk's state (the
// running slot not blessed, no or a damaged boot entry) or another update
// running. Commands exit 3 for it. An error found after writing began (a
// tampered or truncated artifact, a full ESP, an I/O error) is not one:
// parts of the inactive slot may have been written.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Refuse wraps err as a *RefusedError (nil stays nil).
func Refuse(err error) error {
	if err == nil {
		return nil
	}
	var r *RefusedError
	if errors.As(err, &r) {
		return err
	}
	return &RefusedError{Err: err}
}

// IsRefused reports whether err says nothing was written.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// OpenBundle is bundle.Open for installing: a bundle turned away for what
// it is (no or a bad signature, an untrusted key, a corrupt or truncated
// header or manifest) comes back as a *RefusedError; an error reading the
// stream does not.
func OpenBundle(r io.Reader, trusted []ed25519.PublicKey) (*bundle.Reader, error) {
	b, err := bundle.Open(r, trusted)
	if err == nil {
		return b, nil
	}
	for _, e := range []error{bundle.ErrBadSignature, bundle.ErrUnknownKey, bundle.ErrNoSignature, bundle.ErrCorrupt, bundle.ErrTruncated} {
		if errors.Is(err, e) {
			return nil, Refuse(err)
		}
	}
	return nil, err
}

// Disk is the whole disk: an image file or a block device. If it has a
// Sync method, Install calls it after writing the slot.
type Disk interface {
	io.ReaderAt
	io.WriterAt
}

// Target is the disk being updated and what runs from it.
type Target struct {
	Disk   Disk
	Layout *disk.Layout // partitions by label (ReadLayout)
	ESP    bootloader.DirESP
	Loader bootloader.Manager
	// Booted is the running slot, "a" or "b": on a device from keel.slot
	// on the kernel command line or, booted from a unified kernel image,
	// from the entry systemd-boot booted (LoaderEntrySelected); for an
	// image file the newest good entry's.
	Booted string
	// Running is the booted slot's image, which the bundle must match.
	Running Image
}

// Options change how Install decides and reports.
type Options struct {
	// Tries is the trial boots before falling back; 0 means the running
	// image's update.tries, else DefaultTries.
	Tries          int
	AllowDowngrade bool // install a version older than the running one
	// Progress is called at each stage and while writing, with bytes
	// done of total for the current artifact (0, 0 between artifacts).
	Progress func(stage string, done, total int64)
	Logger   *slog.Logger
	// Fetch is how InstallDelta fetches ranges of the bundle: bandwidth
	// cap, retries, stall timeout (its Progress is not used).
	Fetch fetch.Options
}

// DefaultTries is profiles.DefaultTries: what an entry gets when no count
// is given.
const DefaultTries = 3

// Result describes a finished install.
type Result struct {
	Slot       string
	Generation int
	Entry      string // the entry's file name, e.g. keel-b+3.conf
	Image      Image
	RootBytes  int64
	// A delta install (InstallDelta) counts what it fetched: the bytes
	// received (header, manifest, index and the chunks missing locally),
	// the requests made for them, and the bytes taken from the running
	// slot. Install leaves them 0: it reads the bundle whole.
	Fetched  int64
	Requests int
	Reused   int64
}

// Install writes the bundle b into the slot that is not booted and makes it
// the trial default. b's signature has been checked by bundle.Open; the
// manifest (and the index, when the bundle has one) is checked against the
// running image before anything is written, and a refusal then is a
// *RefusedError. If a later step fails, the temporary files it left on the
// ESP are removed (best effort; nothing of the booted slot is touched).
func Install(ctx context.Context, t Target, b *bundle.Reader, o Options) (*Result, error) {
	o = o.withDefaults(t)
	pl, err := prepare(t, b.Manifest, o)
	if err != nil {
		return nil, err
	}
	o.Logger.Info("installing", "name", b.Manifest.Name, "version", b.Manifest.Version, "slot", pl.slot, "key", b.KeyID)
	return pl.stream(ctx, t, b, o)
}

// stream installs from b as it streams: its index first, if it has one,
// read and checked before anything is written.
func (pl *plan) stream(ctx context.Context, t Target, b *bundle.Reader, o Options) (*Result, error) {
	var index []byte
	if a, ok := b.Manifest.Artifact(bundle.Index); ok {
		_, r, err := next(b, bundle.Index)
		if err != nil {
			return nil, refuseBad(err)
		}
		if index, err = readIndex(r, a, b.Manifest); err != nil {
			return nil, err
		}
	}
	return pl.run(ctx, t, b, index, o)
}

// withDefaults fills in what o leaves to the running image.
func (o Options) withDefaults(t Target) Options {
	if o.Tries == 0 {
		o.Tries = t.Running.Tries
	}
	if o.Tries <= 0 {
		o.Tries = DefaultTries
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// plan is an install decided on: where it goes and what it says there.
type plan struct {
	m      bundle.Manifest
	slot   string
	part   disk.Partition
	booted bootloader.EntryState // the running slot's entry
	gen    int                   // the highest generation on the ESP
	im     Image
}

// prepare checks that m may be installed on t (any refusal is a
// *RefusedError) and decides where.
func prepare(t Target, m bundle.Manifest, o Options) (*plan, error) {
	slot, err := otherSlot(t.Booted)
	if err != nil {
		return nil, Refuse(err)
	}
	part, ok := t.Layout.Slot(slot)
	if !ok {
		return nil, Refuse(fmt.Errorf("the disk has no partition %q", "root-"+slot))
	}
	if err := Check(t.Running, m, o.AllowDowngrade); err != nil {
		return nil, Refuse(err)
	}
	root, _ := m.Artifact(bundle.Rootfs)
	if root.Size > part.Size {
		return nil, Refuse(fmt.Errorf("rootfs of %d bytes, slot %s of %d: %w", root.Size, slot, part.Size, ErrTooLarge))
	}
	entries, err := t.Loader.Entries(t.ESP)
	if errors.Is(err, bootloader.ErrDamagedEntry) {
		return nil, Refuse(fmt.Errorf("%w (which slot boots is unknown: repair or remove it by hand)", err))
	}
	if err != nil {
		return nil, err
	}
	booted, gen, err := bootedEntry(entries, t.Booted)
	if err != nil {
		return nil, Refuse(err)
	}
	// The bundle does not say how many tries its image wants: keep the
	// running image's setting for the next update too.
	im := Image{Name: m.Name, Version: m.Version, Compatible: m.Compatible, Arch: m.Arch, BuildID: m.BuildID, Tries: t.Running.Tries, RootBytes: root.Size}
	if m.Verity != nil {
		im.RootHash = m.Verity.RootHash
	}
	return &plan{m: m, slot: slot, part: part, booted: booted, gen: gen, im: im}, nil
}

// readIndex reads the index artifact a from r, which checks its hash, and
// checks that it describes m's artifacts. Nothing has been written yet: a
// bad index is a refusal.
func readIndex(r io.Reader, a bundle.Artifact, m bundle.Manifest) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, bundle.MaxIndex+1))
	if err != nil {
		return nil, refuseBad(fmt.Errorf("reading the index: %w", err))
	}
	if int64(len(raw)) != a.Size {
		return nil, Refuse(fmt.Errorf("index of %d bytes, manifest says %d: %w", len(raw), a.Size, bundle.ErrCorrupt))
	}
	x, err := delta.Parse(raw)
	if err == nil {
		err = x.Check(m)
	}
	if err != nil {
		return nil, Refuse(fmt.Errorf("%w: %w", bundle.ErrCorrupt, err))
	}
	return raw, nil
}

// refuseBad makes an error that says the bundle is bad (a hash mismatch,
// truncated, corrupt) a refusal: for errors met before anything was
// written. An error reading the stream stays what it is.
func refuseBad(err error) error {
	for _, e := range []error{bundle.ErrHashMismatch, bundle.ErrTruncated, bundle.ErrCorrupt} {
		if errors.Is(err, e) {
			return Refuse(err)
		}
	}
	return err
}

// artifacts hands the install steps each artifact after the index, in
// install order, as bundle.Reader.Next does: a reader that reports a hash
// mismatch or a short stream with the last bytes instead of io.EOF, and
// io.EOF (or ErrCorrupt, for data after the last artifact) at the end.
// A *bundle.Reader streams them; a delta install assembles them from
// chunks.
type artifacts interface {
	Next() (bundle.Artifact, io.Reader, error)
}

// run takes the steps of DESIGN §4. index is the bundle's index (nil when
// it has none), kept on the ESP for the next delta install.
func (pl *plan) run(ctx context.Context, t Target, arts artifacts, index []byte, o Options) (res *Result, err error) {
	progress := func(stage string, done, total int64) {
		if o.Progress != nil {
			o.Progress(stage, done, total)
		}
	}
	m, slot, part := pl.m, pl.slot, pl.part

	// 1. Nothing may point at the slot while it is overwritten.
	progress(fmt.Sprintf("removing slot %s's boot entry", slot), 0, 0)
	if err := t.Loader.RemoveEntry(t.ESP, slot); err != nil {
		return nil, fmt.Errorf("step 1: %w", err)
	}
	if err := removeSlotFiles(t.ESP, slot); err != nil {
		return nil, fmt.Errorf("step 1: %w", err)
	}
	if err := t.ESP.Sync(); err != nil {
		return nil, fmt.Errorf("step 1: sync ESP: %w", err)
	}
	// From here on a failure leaves the slot without an entry; what it
	// wrote under temporary names on the ESP goes.
	defer func() {
		if err != nil {
			if cerr := removeTemporaries(t.ESP, t.Loader, slot, o.Tries); cerr != nil {
				o.Logger.Warn("cleaning up after a failed install", "err", cerr)
			}
		}
	}()

	// 2. The root filesystem, straight from the stream into the partition.
	stage := fmt.Sprintf("writing rootfs to slot %s", slot)
	a, r, err := next(arts, bundle.Rootfs)
	if err != nil {
		return nil, err
	}
	w := &offsetWriter{w: t.Disk, off: part.Start, limit: part.Size}
	err = copyVerified(ctx, w, r, a, func(done int64) { progress(stage, done, a.Size) })
	if werr := w.wait(); err == nil && werr != nil {
		err = fmt.Errorf("sync disk: %w", werr)
	}
	if err != nil {
		return nil, fmt.Errorf("step 2: slot %s: %w", slot, err)
	}
	if s, ok := t.Disk.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return nil, fmt.Errorf("step 2: sync disk: %w", err)
		}
	}

	// 3. Kernel and initrd, or the unified kernel image, and the index,
	// under temporary names, then renamed.
	dir := path.Join("/keel", slot)
	if err := t.ESP.Mkdir(dir); err != nil {
		return nil, fmt.Errorf("step 3: mkdir %s: %w", dir, err)
	}
	files := m.Files()
	for _, name := range files {
		a, r, err := next(arts, name)
		if err != nil {
			return nil, err
		}
		p := path.Join(dir, espName[name]) + ".tmp"
		stage := fmt.Sprintf("writing %s to %s", name, path.Join(dir, espName[name]))
		vr := &verifier{ctx: ctx, r: r, a: a, progress: func(done int64) { progress(stage, done, a.Size) }}
		if err := t.ESP.WriteFile(p, vr, a.Size); err != nil {
			return nil, fmt.Errorf("step 3: %s: %w", name, firstErr(vr.err, err))
		}
		if vr.done != a.Size || vr.err != nil {
			return nil, fmt.Errorf("step 3: %s: %d of %d bytes read: %w", name, vr.done, a.Size, firstErr(vr.err, bundle.ErrTruncated))
		}
	}
	// The bundle must end with its last artifact (image/bundle's rule: a
	// stream marked Padded, a block device, ends there by definition).
	last := files[len(files)-1]
	if _, _, err := arts.Next(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("step 3: after the %s: %w", last, firstErr(err, bundle.ErrCorrupt))
	}
	if index != nil {
		files = append(files, bundle.Index)
		if err := t.ESP.WriteFile(IndexPath(slot)+".tmp", bytes.NewReader(index), int64(len(index))); err != nil {
			return nil, fmt.Errorf("step 3: index: %w", err)
		}
	}
	if err := t.ESP.Sync(); err != nil {
		return nil, fmt.Errorf("step 3: sync ESP: %w", err)
	}
	for _, name := range files {
		p := path.Join(dir, espName[name])
		if err := t.ESP.Rename(p+".tmp", p); err != nil {
			return nil, fmt.Errorf("step 3: rename %s.tmp: %w", p, err)
		}
	}
	if err := WriteImage(t.ESP, slot, pl.im); err != nil {
		return nil, fmt.Errorf("step 3: %w", err)
	}
	if err := t.ESP.Sync(); err != nil {
		return nil, fmt.Errorf("step 3: sync ESP: %w", err)
	}

	// 4. The entry: from now on the loader tries the new slot first.
	e := bootloader.Entry{
		Slot: slot, Title: fmt.Sprintf("%s %s (slot %s)", m.Name, m.Version, slot), Generation: pl.gen + 1, Tries: o.Tries,
	}
	if m.UsesUKI() {
		e.EFI = UKIPath(slot)
	} else {
		e.Kernel, e.Initrd = path.Join(dir, "vmlinuz"), path.Join(dir, "initrd")
		e.Options = SlotOptions(pl.booted.Options, part.GUID, slot)
	}
	progress(fmt.Sprintf("writing slot %s's boot entry", slot), 0, 0)
	if err := t.Loader.WriteEntry(t.ESP, e); err != nil {
		return nil, fmt.Errorf("step 4: %w", err)
	}
	if err := t.ESP.Sync(); err != nil {
		return nil, fmt.Errorf("step 4: sync ESP: %w", err)
	}
	return &Result{Slot: slot, Generation: e.Generation, Entry: entryFile(&t, slot), Image: pl.im, RootBytes: pl.im.RootBytes}, nil
}

// removeTemporaries removes what a failed install of slot wrote under
// temporary names: its kernel, initrd or unified kernel image, image.json
// and entry (written for tries). They belong to the slot being written,
// never to the booted one.
func removeTemporaries(esp bootloader.DirESP, loader bootloader.Manager, slot string, tries int) error {
	var errs []error
	var tmps []string
	for _, n := range slotFiles {
		tmps = append(tmps, path.Join("/keel", slot, n)+".tmp")
	}
	for _, p := range append(tmps, loader.Temporaries(slot, tries)...) {
		if err := esp.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := esp.Sync(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// espName is where each artifact lives in /keel/<slot>/.
var espName = map[string]string{bundle.Kernel: "vmlinuz", bundle.Initrd: "initrd", bundle.UKI: "keel.efi", bundle.Index: "index"}

// slotFiles are the files of a slot on the ESP that an install replaces:
// either kind's boot files, so that a slot that changes kind keeps no
// stale file, the index and image.json.
var slotFiles = []string{"vmlinuz", "initrd", "keel.efi", "index", "image.json"}

// UKIPath is where a slot's unified kernel image lives on the ESP.
func UKIPath(slot string) string { return path.Join("/keel", slot, espName[bundle.UKI]) }

// IndexPath is where the index of a slot's bundle is kept on the ESP
// (image/delta): the chunks a delta install can take from the slot while
// it runs. keel build writes slot a's; an install from a bundle that has
// one writes the slot's.
func IndexPath(slot string) string { return path.Join("/keel", slot, espName[bundle.Index]) }

// entryFile names slot's entry as the loader shows it, for messages.
func entryFile(t *Target, slot string) string {
	es, err := t.Loader.Entries(t.ESP)
	if err != nil {
		return "the entry of slot " + slot
	}
	for _, e := range es {
		if e.Slot == slot {
			return e.File
		}
	}
	return "the entry of slot " + slot
}

func otherSlot(s string) (string, error) {
	switch s {
	case "a":
		return "b", nil
	case "b":
		return "a", nil
	}
	return "", fmt.Errorf("booted slot %q: want a or b", s)
}

// Check refuses a manifest that is not for the running image: another
// compatible string, another architecture, an older version (unless
// allowDowngrade), or not the artifacts of one set (bundle.InstallOrder,
// bundle.UKIOrder, either after an index) in order.
func Check(running Image, m bundle.Manifest, allowDowngrade bool) error {
	order := m.Order()
	if len(m.Artifacts) != len(order) {
		return fmt.Errorf("%w: %d artifacts, want %s", ErrBadManifest, len(m.Artifacts), strings.Join(order, ", "))
	}
	for i, a := range m.Artifacts {
		if a.Name != order[i] {
			return fmt.Errorf("%w: artifact %d is %q, want %q", ErrBadManifest, i+1, a.Name, order[i])
		}
		if a.Size <= 0 {
			return fmt.Errorf("%w: artifact %s has size %d", ErrBadManifest, a.Name, a.Size)
		}
	}
	if m.Compatible != running.Compatible {
		return fmt.Errorf("%w: bundle %s %s is for %q, this image is %q", ErrIncompatible, m.Name, m.Version, m.Compatible, running.Compatible)
	}
	if m.Arch != running.Arch {
		return fmt.Errorf("%w: bundle is for %s, this image is %s", ErrWrongArch, m.Arch, running.Arch)
	}
	if CompareVersions(m.Version, running.Version) < 0 && !allowDowngrade {
		return fmt.Errorf("%w: bundle has %s, running %s (allow a downgrade to install it)", ErrDowngrade, m.Version, running.Version)
	}
	return nil
}

// bootedEntry returns the booted slot's entry, which must be blessed: the
// install removes the other slot's entry, and if the booted one were a
// trial that failed nothing would be left to fall back to. It also returns
// the highest generation on the ESP.
func bootedEntry(es []bootloader.EntryState, booted string) (bootloader.EntryState, int, error) {
	gen := 0
	var b *bootloader.EntryState
	for i, e := range es {
		gen = max(gen, e.Generation)
		if e.Slot == booted && b == nil {
			b = &es[i]
		}
	}
	if b == nil {
		return bootloader.EntryState{}, 0, fmt.Errorf("no boot entry for the running slot %s", booted)
	}
	if b.State() != "good" {
		return bootloader.EntryState{}, 0, fmt.Errorf("%w: slot %s's entry %s is %s; mark it good first (keelctl mark-good) or let the health check bless it",
			ErrBootedNotGood, booted, b.File, b.State())
	}
	return *b, gen, nil
}

// removeSlotFiles deletes the slot's old kernel, initrd, unified kernel
// image and image.json (and their temporary names) once no entry points at
// them, so that an ESP with room for two kernels per slot is enough.
// Anything else there (a *.stale kept by Cleanup) stays.
func removeSlotFiles(esp bootloader.DirESP, slot string) error {
	for _, n := range slotFiles {
		for _, p := range []string{path.Join("/keel", slot, n), path.Join("/keel", slot, n) + ".tmp"} {
			if err := esp.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", p, err)
			}
		}
	}
	return nil
}

// SlotOptions turns the booted entry's kernel command line into the other
// slot's: root=PARTUUID= and keel.slot= point at the new slot, everything
// else (console, init=, the profile's cmdline) is kept. A booted entry
// without options (an efi entry: its command line is inside the image)
// gives just root=PARTUUID= and keel.slot=: a kernel and initrd installed
// from such a slot boot without the profile's cmdline and init=.
func SlotOptions(booted, partGUID, slot string) string {
	out := []string{"root=PARTUUID=" + strings.ToLower(partGUID), "keel.slot=" + slot}
	for _, f := range strings.Fields(booted) {
		if strings.HasPrefix(f, "root=") || strings.HasPrefix(f, "keel.slot=") {
			continue
		}
		out = append(out, f)
	}
	return strings.Join(out, " ")
}

func next(b artifacts, want string) (bundle.Artifact, io.Reader, error) {
	a, r, err := b.Next()
	if errors.Is(err, io.EOF) {
		return a, nil, fmt.Errorf("bundle ends before the %s: %w", want, bundle.ErrTruncated)
	}
	if err != nil {
		return a, nil, fmt.Errorf("reading the %s: %w", want, err)
	}
	if a.Name != want {
		return a, nil, fmt.Errorf("%w: got artifact %q, want %q", ErrBadManifest, a.Name, want)
	}
	return a, r, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
