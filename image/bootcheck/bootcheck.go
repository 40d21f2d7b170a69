// Package bootcheck predicts, without running anything, whether a keel disk
// boots and into which slot: it applies systemd-boot's own rules for
// choosing an entry to the ESP it finds on the disk, then checks that the
// chosen entry's kernel, initrd and root partition (or its unified kernel
// image and root partition) are, byte for byte, those of a known build.
//
// The rules are systemd-boot 252's (Debian 12's, which keel installs),
// read from its src/boot/efi/boot.c:
//
//   - config_load_entries: every file in \loader\entries whose name does not
//     start with "." or "auto-", is not a directory and ends in ".conf"
//     (any case) is read; a file that cannot be read is skipped;
//   - line_get_key_value: lines split at \n or \r, blanks trimmed, "#"
//     comments and lines without a separator skipped, key and value split at
//     the first space or tab, a quoted value unquoted; the content ends at
//     its first NUL byte (it is read as a C string);
//   - config_entry_add_from_file: an entry needs a "linux" or an "efi"
//     line (the last of them decides the kind and the file), an "efi" line
//     that names the loader itself drops the entry, and the file it names
//     must exist on the ESP (only opened, not read), or the entry is
//     dropped; its id is the file name in lower case;
//   - config_entry_parse_tries: "+LEFT[-DONE]" before ".conf" is the boot
//     counter;
//   - config_entry_compare: entries with no tries left last; then, if both
//     have a sort-key, by sort-key, machine-id, and version newest first
//     (strverscmp_improved); then by id newest first; then more tries left
//     first, then fewer tries done first;
//   - config_default_entry_select: without EFI variables (a disk that has
//     not booted; keel sets none) the first entry, in that order, whose id
//     matches loader.conf's "default" glob, case-insensitively; else the
//     first entry.
//
// A linux entry's slot is what its options say (root=PARTUUID= and
// keel.slot=, which must agree). An efi entry boots a unified kernel image
// whose command line names no slot: keel-init takes the slot from the
// entry's id, which systemd-boot passes in LoaderEntrySelected
// ("keel-b+3.conf" is slot b), and the root from the partition labelled
// root-<slot>; the image and that partition must be one known build's.
//
// These rules are written here afresh, not taken from bootloader/systemdboot
// (whose ParseName and ParseEntry read the same files for keelctl): a
// checker that shared the code it checks would share its bugs, and this one
// must also judge names and files keel never writes.
//
// What firmware reads is read here with keel's FAT reader (image/fat),
// which follows the same on-disk rules (long names checked against their
// short entry, case-insensitive lookup); a file it cannot read, for
// instance because its cluster chain is broken, counts as unreadable.
package bootcheck

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"keel/image/bundle"
	"keel/image/disk"
	"keel/image/fat"
	"keel/image/install"
)

// ErrUnbootable says the disk does not boot into a known build.
var ErrUnbootable = errors.New("does not boot")

// Prediction is what the disk boots.
type Prediction struct {
	Slot       string // "a" or "b": the root partition's slot
	Version    string // the build's image version (its manifest's)
	Generation string // the entry's version line
	Entry      string // the entry's file name, e.g. keel-b+3.conf
	TriesLeft  int    // -1: the entry is not counted (blessed)
	Why        string // the entries in systemd-boot's order, for a log
}

func (p Prediction) String() string {
	return fmt.Sprintf("slot %s (%s, entry %s, generation %s)", p.Slot, p.Version, p.Entry, p.Generation)
}

// Predict reads the disk of size bytes in r and says which slot it boots.
// known are the builds the disk may hold (bundle manifests: each
// artifact's size and sha256); the chosen entry's kernel, initrd and root
// partition must all be one known build's, or the disk does not boot
// (ErrUnbootable, with the reason).
func Predict(r io.ReaderAt, size int64, known ...bundle.Manifest) (Prediction, error) {
	l, err := install.ReadLayout(r, size)
	if err != nil {
		return Prediction{}, fmt.Errorf("%w: %v", ErrUnbootable, err)
	}
	espPart, ok := findESP(l)
	if !ok {
		return Prediction{}, fmt.Errorf("%w: no EFI system partition", ErrUnbootable)
	}
	esp, err := fat.Open(readOnly{io.NewSectionReader(r, espPart.Start, espPart.Size)}, espPart.Size, fat.OpenOptions{})
	if err != nil {
		return Prediction{}, fmt.Errorf("%w: ESP: %v", ErrUnbootable, err)
	}
	if b, err := esp.ReadFile("/EFI/BOOT/BOOTX64.EFI"); err != nil || !bytes.HasPrefix(b, []byte("MZ")) {
		return Prediction{}, fmt.Errorf("%w: firmware finds no \\EFI\\BOOT\\BOOTX64.EFI (%v)", ErrUnbootable, err)
	}
	pattern := ""
	if b, err := esp.ReadFile("/loader/loader.conf"); err == nil {
		for _, kv := range keyValues(b) {
			if kv[0] == "default" {
				pattern = strings.ToLower(kv[1])
			}
		}
	}
	entries, err := loadEntries(esp)
	if err != nil {
		return Prediction{}, err
	}
	sort.SliceStable(entries, func(i, j int) bool { return compare(entries[i], entries[j]) < 0 })
	var why []string
	for _, e := range entries {
		why = append(why, e.file)
	}
	if len(entries) == 0 {
		return Prediction{}, fmt.Errorf("%w: no bootable entry in \\loader\\entries", ErrUnbootable)
	}
	chosen := entries[0]
	for _, e := range entries {
		if pattern != "" && globMatch(pattern, e.id) {
			chosen = e
			break
		}
	}
	p := Prediction{Entry: chosen.file, Generation: chosen.version, TriesLeft: chosen.triesLeft,
		Why: fmt.Sprintf("entries in systemd-boot's order: %s; default %q picks %s", strings.Join(why, " "), pattern, chosen.file)}
	m, slot, err := verify(r, l, esp, chosen, known)
	if err != nil {
		return p, fmt.Errorf("%w: entry %s: %v (%s)", ErrUnbootable, chosen.file, err, p.Why)
	}
	p.Slot, p.Version = slot, m.Version
	return p, nil
}

func findESP(l *disk.Layout) (disk.Partition, bool) {
	for _, p := range l.Partitions {
		if strings.EqualFold(p.Type, disk.TypeESP) {
			return p, true
		}
	}
	return disk.Partition{}, false
}

// entry is a Type #1 entry as systemd-boot holds it.
type entry struct {
	file, id           string
	version, sortKey   string
	machineID          string
	hasSortKey         bool
	linux              string // the file booted: a kernel, or an EFI image
	efi                bool   // linux is an EFI image ("efi" line)
	initrd             []string
	options            string
	triesLeft, triesDn int // -1: not counted
}

func loadEntries(esp *fat.FS) ([]entry, error) {
	ents, err := esp.ReadDir("/loader/entries")
	if err != nil {
		return nil, nil // no directory: no entries
	}
	var out []entry
	for _, f := range ents {
		if strings.HasPrefix(f.Name, ".") || f.IsDir || !strings.HasSuffix(strings.ToLower(f.Name), ".conf") || strings.HasPrefix(f.Name, "auto-") {
			continue
		}
		b, err := esp.ReadFile(path.Join("/loader/entries", f.Name))
		if err != nil {
			continue
		}
		e := entry{file: f.Name, id: strings.ToLower(f.Name), triesLeft: -1, triesDn: -1}
		hasLoader := false
		for _, kv := range keyValues(b) {
			switch kv[0] {
			case "title":
			case "version":
				e.version = kv[1]
			case "sort-key":
				e.sortKey, e.hasSortKey = kv[1], true
			case "machine-id":
				e.machineID = kv[1]
			case "linux":
				e.linux, e.efi, hasLoader = kv[1], false, true
			case "efi":
				e.linux, e.efi, hasLoader = kv[1], true, true
			case "initrd":
				e.initrd = append(e.initrd, kv[1])
			case "options":
				if e.options != "" {
					e.options += " "
				}
				e.options += kv[1]
			}
		}
		if !hasLoader {
			continue
		}
		if e.efi && strings.EqualFold(toPath(e.linux), firmwareLoader) {
			continue // "do not add an entry for ourselves"
		}
		if _, err := esp.Stat(toPath(e.linux)); err != nil {
			continue // the loader checks that the kernel exists
		}
		e.triesLeft, e.triesDn = parseTries(f.Name)
		out = append(out, e)
	}
	return out, nil
}

// firmwareLoader is the loader's own path as firmware runs it with no
// boot variables (loaded_image_path).
const firmwareLoader = "/EFI/BOOT/BOOTX64.EFI"

// keyValues splits a file into key/value pairs as line_get_key_value does.
func keyValues(b []byte) [][2]string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	var out [][2]string
	for _, line := range strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.Trim(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			continue
		}
		k, v := line[:i], strings.TrimLeft(line[i+1:], " \t")
		if len(v) >= 2 && v[0] == '"' && strings.HasSuffix(v, `"`) {
			v = v[1 : len(v)-1]
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

// toPath is stra_to_path: backslashes as separators, one at a time.
func toPath(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	return path.Clean("/" + p)
}

// parseTries is config_entry_parse_tries for a name ending in ".conf":
// -1, -1 when the name has no valid counter.
func parseTries(file string) (left, done int) {
	stem := file[:len(file)-len(".conf")]
	i := strings.LastIndexByte(stem, '+')
	if i < 0 {
		return -1, -1
	}
	c := stem[i+1:]
	l, d, hasDone := strings.Cut(c, "-")
	isNum := func(s string) bool {
		if s == "" {
			return false
		}
		for _, r := range s {
			if r < '0' || r > '9' {
				return false
			}
		}
		return true
	}
	if !isNum(l) || (hasDone && !isNum(d)) {
		return -1, -1
	}
	left, err := strconv.Atoi(l)
	if err != nil {
		return -1, -1
	}
	if hasDone {
		if done, err = strconv.Atoi(d); err != nil {
			return -1, -1
		}
	}
	return left, done
}

// compare is config_entry_compare: < 0 when a comes first.
func compare(a, b entry) int {
	if r := cmpBool(a.triesLeft == 0, b.triesLeft == 0); r != 0 {
		return r
	}
	if r := cmpBool(!a.hasSortKey, !b.hasSortKey); r != 0 {
		return r
	}
	if a.hasSortKey && b.hasSortKey {
		if r := strings.Compare(a.sortKey, b.sortKey); r != 0 {
			return r
		}
		if r := strings.Compare(a.machineID, b.machineID); r != 0 {
			return r
		}
		if r := -VersionCompare(a.version, b.version); r != 0 {
			return r
		}
	}
	if r := -VersionCompare(a.id, b.id); r != 0 {
		return r
	}
	if a.triesLeft < 0 || b.triesLeft < 0 {
		return 0
	}
	if a.triesLeft != b.triesLeft {
		if a.triesLeft > b.triesLeft {
			return -1
		}
		return 1
	}
	return a.triesDn - b.triesDn
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// globMatch is MetaiMatch on lower-cased strings.
func globMatch(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// verify checks that e boots a known build: kernel, initrd and root
// partition (or unified kernel image and root partition) all of one
// manifest.
func verify(r io.ReaderAt, l *disk.Layout, esp *fat.FS, e entry, known []bundle.Manifest) (bundle.Manifest, string, error) {
	if e.efi {
		return verifyUKI(r, l, esp, e, known)
	}
	kernel, err := esp.ReadFile(toPath(e.linux))
	if err != nil {
		return bundle.Manifest{}, "", fmt.Errorf("kernel %s unreadable: %v", e.linux, err)
	}
	var initrd []byte
	for _, p := range e.initrd {
		b, err := esp.ReadFile(toPath(p))
		if err != nil {
			return bundle.Manifest{}, "", fmt.Errorf("initrd %s unreadable: %v", p, err)
		}
		initrd = append(initrd, b...)
	}
	guid, slot := "", ""
	for _, f := range strings.Fields(e.options) {
		if v, ok := strings.CutPrefix(f, "root=PARTUUID="); ok {
			guid = v
		}
		if v, ok := strings.CutPrefix(f, "keel.slot="); ok {
			slot = v
		}
	}
	var root disk.Partition
	found := false
	for _, p := range l.Partitions {
		if guid != "" && strings.EqualFold(p.GUID, guid) {
			root, found = p, true
		}
	}
	if !found {
		return bundle.Manifest{}, "", fmt.Errorf("no partition %q (options %q)", guid, e.options)
	}
	if root.Label != "root-"+slot {
		return bundle.Manifest{}, "", fmt.Errorf("keel.slot=%s but root=PARTUUID= names partition %s", slot, root.Label)
	}
	ks, is := sum(kernel), sum(initrd)
	return match(r, root, slot, known, func(m bundle.Manifest) bool {
		k, _ := m.Artifact(bundle.Kernel)
		i, _ := m.Artifact(bundle.Initrd)
		return !m.UsesUKI() && k.SHA256 == ks && i.SHA256 == is
	}, "kernel or initrd differ")
}

// verifyUKI checks an efi entry: the image it names is a known build's
// unified kernel image, and the root partition of the slot its id names
// holds the same build's rootfs.
func verifyUKI(r io.ReaderAt, l *disk.Layout, esp *fat.FS, e entry, known []bundle.Manifest) (bundle.Manifest, string, error) {
	image, err := esp.ReadFile(toPath(e.linux))
	if err != nil {
		return bundle.Manifest{}, "", fmt.Errorf("EFI image %s unreadable: %v", e.linux, err)
	}
	slot, ok := entrySlot(e.id)
	if !ok {
		return bundle.Manifest{}, "", fmt.Errorf("keel-init finds no slot in the entry id %q (LoaderEntrySelected)", e.id)
	}
	var root disk.Partition
	found := false
	for _, p := range l.Partitions {
		if p.Label == "root-"+slot {
			root, found = p, true
		}
	}
	if !found {
		return bundle.Manifest{}, "", fmt.Errorf("no partition labelled root-%s for entry %s", slot, e.id)
	}
	us := sum(image)
	return match(r, root, slot, known, func(m bundle.Manifest) bool {
		u, ok := m.Artifact(bundle.UKI)
		return ok && u.SHA256 == us
	}, "not its unified kernel image")
}

// entrySlot is the slot keel-init reads from an entry id: keel-SLOT.conf,
// keel-SLOT+LEFT.conf or keel-SLOT+LEFT-DONE.conf.
func entrySlot(id string) (string, bool) {
	stem, ok := strings.CutSuffix(id, ".conf")
	if !ok {
		return "", false
	}
	stem, ok = strings.CutPrefix(stem, "keel-")
	if !ok {
		return "", false
	}
	slot, _, _ := strings.Cut(stem, "+")
	if slot == "" || strings.ContainsFunc(slot, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') }) {
		return "", false
	}
	return slot, true
}

// match finds the known build whose boot files boots says are the
// entry's (why names the difference otherwise) and whose rootfs the root
// partition holds.
func match(r io.ReaderAt, root disk.Partition, slot string, known []bundle.Manifest, boots func(bundle.Manifest) bool, why string) (bundle.Manifest, string, error) {
	var tried []string
	for _, m := range known {
		rf, _ := m.Artifact(bundle.Rootfs)
		if !boots(m) {
			tried = append(tried, m.Version+": "+why)
			continue
		}
		if rf.Size > root.Size {
			tried = append(tried, m.Version+": rootfs larger than the partition")
			continue
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(r, root.Start, rf.Size)); err != nil {
			return bundle.Manifest{}, "", fmt.Errorf("read %s: %v", root.Label, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != rf.SHA256 {
			tried = append(tried, m.Version+": "+root.Label+" differs")
			continue
		}
		return m, slot, nil
	}
	return bundle.Manifest{}, "", fmt.Errorf("not a known build (%s)", strings.Join(tried, "; "))
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readOnly lets fat.Open read a disk it must not change.
type readOnly struct{ *io.SectionReader }

func (readOnly) WriteAt([]byte, int64) (int, error) { return 0, errors.New("bootcheck: read-only") }
