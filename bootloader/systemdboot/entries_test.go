package systemdboot_test

import (
	"bytes"
	"errors"
	"path"
	"sort"
	"strings"
	"testing"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/espfat"
	"keel/bootloader/systemdboot"
	"keel/image/fat"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		file        string
		slot        string
		left, done  int
		counted, ok bool
	}{
		{"keel-a.conf", "a", 0, 0, false, true},
		{"keel-b+3.conf", "b", 3, 0, true, true},
		{"keel-b+2-1.conf", "b", 2, 1, true, true},
		{"keel-b+0-3.conf", "b", 0, 3, true, true},
		{"keel-b+3.conf.tmp", "", 0, 0, false, false},
		{"keel-b.conf.del", "", 0, 0, false, false},
		{"other.conf", "", 0, 0, false, false},
		{"keel-.conf", "", 0, 0, false, false},
		{"keel-b+x.conf", "", 0, 0, false, false},
		{"keel-b+-1.conf", "", 0, 0, false, false},
		{"keel-B.conf", "", 0, 0, false, false},
	}
	for _, tt := range tests {
		slot, left, done, counted, ok := systemdboot.ParseName(tt.file)
		if slot != tt.slot || left != tt.left || done != tt.done || counted != tt.counted || ok != tt.ok {
			t.Errorf("ParseName(%q) = %q %d %d %v %v, want %q %d %d %v %v", tt.file, slot, left, done, counted, ok, tt.slot, tt.left, tt.done, tt.counted, tt.ok)
		}
	}
}

// memDisk is a disk in memory for the FAT backend.
type memDisk []byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m[off:]), nil }
func (m memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

// backends are every bootloader.DirESP: each test runs against all of them.
var backends = []struct {
	name string
	new  func(t *testing.T) bootloader.DirESP
}{
	{"espdir", func(t *testing.T) bootloader.DirESP { return espdir.Dir{Root: t.TempDir()} }},
	{"espfat", func(t *testing.T) bootloader.DirESP {
		const size = 34 << 20
		fs, err := fat.Format(make(memDisk, size), size, fat.FormatOptions{Label: "ESP"})
		if err != nil {
			t.Fatal(err)
		}
		return espfat.ESP{FS: fs}
	}},
}

func newESP(t *testing.T, b func(t *testing.T) bootloader.DirESP) bootloader.DirESP {
	esp := b(t)
	for _, d := range []string{"/loader/entries", "/keel/a", "/keel/b"} {
		if err := esp.Mkdir(d); err != nil {
			t.Fatal(err)
		}
	}
	return esp
}

func entry(slot string, gen, tries int) bootloader.Entry {
	return bootloader.Entry{Slot: slot, Title: "t (slot " + slot + ")", Generation: gen,
		Kernel: "/keel/" + slot + "/vmlinuz", Initrd: "/keel/" + slot + "/initrd", Options: "keel.slot=" + slot, Tries: tries}
}

// efiEntry boots the slot's unified kernel image.
func efiEntry(slot string, gen, tries int) bootloader.Entry {
	return bootloader.Entry{Slot: slot, Title: "t (slot " + slot + ")", Generation: gen, EFI: "/keel/" + slot + "/keel.efi", Tries: tries}
}

// kinds are the two kinds of entry keel writes: each test of entry
// changes runs with both.
var kinds = []struct {
	name  string
	entry func(slot string, gen, tries int) bootloader.Entry
}{{"linux", entry}, {"efi", efiEntry}, {"linux in a, efi in b", func(slot string, gen, tries int) bootloader.Entry {
	if slot == "a" {
		return entry(slot, gen, tries)
	}
	return efiEntry(slot, gen, tries)
}}}

// TestFormatEntry: the bytes of both kinds, and that ParseEntry reads
// back what was written.
func TestFormatEntry(t *testing.T) {
	tests := []struct {
		name string
		e    bootloader.Entry
		want string
	}{
		{"kernel and initrd", entry("b", 2, 3),
			"title t (slot b)\nsort-key keel\nversion 2\nlinux /keel/b/vmlinuz\ninitrd /keel/b/initrd\noptions keel.slot=b\n"},
		{"unified kernel image", efiEntry("b", 2, 3),
			"title t (slot b)\nsort-key keel\nversion 2\nefi /keel/b/keel.efi\n"},
		{"unified kernel image: options are not written", func() bootloader.Entry { e := efiEntry("a", 5, 0); e.Options = "console=ttyS0"; return e }(),
			"title t (slot a)\nsort-key keel\nversion 5\nefi /keel/a/keel.efi\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := systemdboot.FormatEntry(tt.e)
			if got != tt.want {
				t.Fatalf("FormatEntry:\n%s\nwant:\n%s", got, tt.want)
			}
			st, err := systemdboot.ParseEntry(systemdboot.EntryName(tt.e.Slot, tt.e.Tries), []byte(got))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.e
			if want.EFI != "" {
				want.Options = ""
			}
			if st.Entry != want {
				t.Errorf("read back %+v, want %+v", st.Entry, want)
			}
		})
	}
	for _, b := range backends {
		esp := newESP(t, b.new)
		both := entry("b", 2, 3)
		both.EFI = "/keel/b/keel.efi"
		if err := (systemdboot.Entries{}).WriteEntry(esp, both); err == nil {
			t.Errorf("%s: an entry with a kernel and an EFI image was written", b.name)
		}
		if got := names(t, esp, systemdboot.EntriesDir); got != "" {
			t.Errorf("%s: entries %q after a refused write", b.name, got)
		}
	}
}

func names(t *testing.T, esp bootloader.DirESP, dir string) string {
	t.Helper()
	n, err := esp.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(n)
	return strings.Join(n, " ")
}

func put(t *testing.T, esp bootloader.DirESP, p, content string) {
	t.Helper()
	if err := esp.WriteFile(p, strings.NewReader(content), int64(len(content))); err != nil {
		t.Fatal(err)
	}
}

func TestMarkAndRemove(t *testing.T) {
	for _, b := range backends {
		for _, k := range kinds {
			t.Run(b.name+"/"+k.name, func(t *testing.T) { testMarkAndRemove(t, b.new, k.entry) })
		}
	}
}

func testMarkAndRemove(t *testing.T, backend func(t *testing.T) bootloader.DirESP, entry func(string, int, int) bootloader.Entry) {
	esp := newESP(t, backend)
	m := systemdboot.Entries{}
	for _, e := range []bootloader.Entry{entry("a", 1, 0), entry("b", 2, 3)} {
		if err := m.WriteEntry(esp, e); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		do   func() error
		want string
		err  error
	}{
		{"written", func() error { return nil }, "keel-a.conf keel-b+3.conf", nil},
		{"mark b bad", func() error { return m.MarkBad(esp, "b") }, "keel-a.conf keel-b+0-0.conf", nil},
		{"mark b bad again", func() error { return m.MarkBad(esp, "b") }, "keel-a.conf keel-b+0-0.conf", nil},
		{"mark b good", func() error { return m.MarkGood(esp, "b") }, "keel-a.conf keel-b.conf", nil},
		{"remove b", func() error { return m.RemoveEntry(esp, "b") }, "keel-a.conf", nil},
		{"remove b again", func() error { return m.RemoveEntry(esp, "b") }, "keel-a.conf", nil},
		{"mark b good, no entry", func() error { return m.MarkGood(esp, "b") }, "keel-a.conf", systemdboot.ErrNoEntry},
		{"trial with a boot done", func() error {
			return esp.Rename("/loader/entries/keel-a.conf", "/loader/entries/keel-a+2-1.conf")
		}, "keel-a+2-1.conf", nil},
		{"mark a bad keeps the count", func() error { return m.MarkBad(esp, "a") }, "keel-a+0-1.conf", nil},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.err) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.err)
		}
		if got := names(t, esp, systemdboot.EntriesDir); got != s.want {
			t.Fatalf("%s: entries %q, want %q", s.name, got, s.want)
		}
	}
	es, err := m.Entries(esp)
	if err != nil || len(es) != 1 || es[0].State() != "bad" || es[0].TriesDone != 1 || es[0].Generation != 1 || es[0].Kernel != entry("a", 1, 0).Kernel || es[0].EFI != entry("a", 1, 0).EFI {
		t.Errorf("entries %+v (%v)", es, err)
	}
}

func TestCleanup(t *testing.T) {
	body := func(e bootloader.Entry) string { return systemdboot.FormatEntry(e) }
	tests := []struct {
		name  string
		files map[string]string
		want  map[string]string // dir → names left
	}{
		{"nothing to do",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0))},
			map[string]string{"/loader/entries": "keel-a.conf"}},
		{"temporary entry without its final name",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0)), "/loader/entries/keel-b+3.conf.tmp": body(entry("b", 2, 3))},
			map[string]string{"/loader/entries": "keel-a.conf"}},
		{"temporary entry beside its final name, same bytes",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0)), "/loader/entries/keel-b+3.conf": body(entry("b", 2, 3)), "/loader/entries/keel-b+3.conf.tmp": body(entry("b", 2, 3))},
			map[string]string{"/loader/entries": "keel-a.conf keel-b+3.conf keel-b+3.conf.stale"}},
		{"entry being removed",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0)), "/loader/entries/keel-b+3.conf.del": body(entry("b", 2, 3))},
			map[string]string{"/loader/entries": "keel-a.conf"}},
		{"empty entry from a cut rename",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0)), "/loader/entries/keel-b.conf": ""},
			map[string]string{"/loader/entries": "keel-a.conf"}},
		{"damaged entry",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0)), "/loader/entries/keel-b.conf": "garbage\n"},
			map[string]string{"/loader/entries": "keel-a.conf keel-b.conf.stale"}},
		{"duplicates: the newest generation stays",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 3, 0)), "/loader/entries/keel-a+0-3.conf": body(entry("a", 1, 3))},
			map[string]string{"/loader/entries": "keel-a.conf"}},
		{"duplicates of one generation, cut bless: same bytes, may share clusters",
			map[string]string{"/loader/entries/keel-b.conf": body(entry("b", 2, 0)), "/loader/entries/keel-b+2-1.conf": body(entry("b", 2, 0)), "/loader/entries/keel-a.conf": body(entry("a", 1, 0))},
			map[string]string{"/loader/entries": "keel-a.conf keel-b+2-1.conf.stale keel-b.conf"}},
		{"kernel and initrd leftovers",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0)),
				"/keel/b/vmlinuz": "kernel", "/keel/b/vmlinuz.tmp": "kernel", "/keel/b/initrd": "initrd v1", "/keel/b/initrd.tmp": "initrd v2", "/keel/a/vmlinuz": "k"},
			map[string]string{"/keel/b": "initrd vmlinuz vmlinuz.stale", "/keel/a": "vmlinuz"}},
		{"entry with a damaged version is left alone",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0)),
				"/loader/entries/keel-b+3.conf": strings.Replace(body(entry("b", 2, 3)), "version 2", "version 2x", 1)},
			map[string]string{"/loader/entries": "keel-a.conf keel-b+3.conf"}},
		{"unified kernel image: nothing to do",
			map[string]string{"/loader/entries/keel-a.conf": body(efiEntry("a", 1, 0)), "/loader/entries/keel-b+3.conf": body(efiEntry("b", 2, 3)),
				"/keel/a/keel.efi": "MZ a", "/keel/b/keel.efi": "MZ b"},
			map[string]string{"/loader/entries": "keel-a.conf keel-b+3.conf", "/keel/a": "keel.efi", "/keel/b": "keel.efi"}},
		{"unified kernel image leftovers",
			map[string]string{"/loader/entries/keel-a.conf": body(efiEntry("a", 1, 0)), "/keel/a/keel.efi": "MZ a",
				"/keel/b/keel.efi.tmp": "MZ b, half", "/keel/a/keel.efi.tmp": "MZ a"},
			map[string]string{"/keel/a": "keel.efi keel.efi.stale", "/keel/b": ""}},
		{"a slot's old kernel entry and its new efi entry: the newest generation stays",
			map[string]string{"/loader/entries/keel-a.conf": body(efiEntry("a", 3, 0)), "/loader/entries/keel-a+0-3.conf": body(entry("a", 1, 3))},
			map[string]string{"/loader/entries": "keel-a.conf"}},
		{"entry with both linux and efi is left alone",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0)),
				"/loader/entries/keel-b+3.conf": body(entry("b", 2, 3)) + "efi /keel/b/keel.efi\n"},
			map[string]string{"/loader/entries": "keel-a.conf keel-b+3.conf"}},
		{"efi entry with an empty path: not bootable, kept aside",
			map[string]string{"/loader/entries/keel-a.conf": body(efiEntry("a", 1, 0)), "/loader/entries/keel-b+3.conf": "title t\nversion 2\nefi \"\"\n"},
			map[string]string{"/loader/entries": "keel-a.conf keel-b+3.conf.stale"}},
		{"other loaders' entries are not ours",
			map[string]string{"/loader/entries/keel-a.conf": body(entry("a", 1, 0)), "/loader/entries/debian.conf": "", "/loader/entries/x.tmp": "x"},
			map[string]string{"/loader/entries": "debian.conf keel-a.conf"}},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				esp := newESP(t, b.new)
				for p, c := range tt.files {
					put(t, esp, p, c)
				}
				done, err := systemdboot.Entries{}.Cleanup(esp)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("cleanup: %q", done)
				for dir, want := range tt.want {
					if got := names(t, esp, dir); got != want {
						t.Errorf("%s: %q, want %q", dir, got, want)
					}
				}
				// A second run finds nothing left to do.
				again, err := systemdboot.Entries{}.Cleanup(esp)
				for _, a := range again {
					if !strings.HasPrefix(a, "left ") { // a damaged entry is reported every time
						t.Errorf("second cleanup: %q, %v", again, err)
					}
				}
				if err != nil {
					t.Errorf("second cleanup: %v", err)
				}
				for p, c := range tt.files {
					if strings.HasSuffix(p, ".conf") && !strings.Contains(p, "+") && c != "" && c != "garbage\n" {
						if got, err := esp.ReadFile(p); err != nil || !bytes.Equal(got, []byte(c)) {
							t.Errorf("%s changed or gone (%v)", path.Base(p), err)
						}
					}
				}
			})
		}
	}
}

// TestDamagedVersion: an entry that names a kernel but whose version is
// not a generation number is an error naming the file, not generation 0,
// and nothing that changes entries touches it.
func TestDamagedVersion(t *testing.T) {
	good := systemdboot.FormatEntry(entry("b", 2, 3))
	tests := []struct {
		name string
		body string
		err  error // nil: parses; errDamaged: ErrDamagedEntry; other: any error
		gen  int
	}{
		{"good", good, nil, 2},
		{"no linux line: a cut's leftover", "title x\nversion 2\n", errLeftover, 0},
		{"empty", "", errLeftover, 0},
		{"no version line", strings.Replace(good, "version 2\n", "", 1), systemdboot.ErrDamagedEntry, 0},
		{"version with a letter", strings.Replace(good, "version 2", "version 2x", 1), systemdboot.ErrDamagedEntry, 0},
		{"version zero", strings.Replace(good, "version 2", "version 0", 1), systemdboot.ErrDamagedEntry, 0},
		{"negative version", strings.Replace(good, "version 2", "version -2", 1), systemdboot.ErrDamagedEntry, 0},
		{"empty version", strings.Replace(good, "version 2", "version", 1), systemdboot.ErrDamagedEntry, 0},
		{"efi", systemdboot.FormatEntry(efiEntry("b", 2, 3)), nil, 2},
		{"efi without a version", "title t\nefi /keel/b/keel.efi\n", systemdboot.ErrDamagedEntry, 0},
		{"efi with a damaged version", "title t\nversion 2x\nefi /keel/b/keel.efi\n", systemdboot.ErrDamagedEntry, 0},
		{"efi with an empty path: a cut's leftover", "title t\nversion 2\nefi \"\"\n", errLeftover, 0},
		{"linux and efi", good + "efi /keel/b/keel.efi\n", systemdboot.ErrDamagedEntry, 0},
		{"efi and linux", "version 2\nefi /keel/b/keel.efi\nlinux /keel/b/vmlinuz\n", systemdboot.ErrDamagedEntry, 0},
		{"efi and an empty linux", "version 2\nefi /keel/b/keel.efi\nlinux \"\"\n", systemdboot.ErrDamagedEntry, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := systemdboot.ParseEntry("keel-b+3.conf", []byte(tt.body))
			switch {
			case tt.err == nil && (err != nil || st.Generation != tt.gen):
				t.Fatalf("generation %d (%v), want %d", st.Generation, err, tt.gen)
			case tt.err == systemdboot.ErrDamagedEntry && !errors.Is(err, tt.err):
				t.Fatalf("error %v, want %v", err, tt.err)
			case tt.err == errLeftover && (err == nil || errors.Is(err, systemdboot.ErrDamagedEntry)):
				t.Fatalf("error %v, want a leftover", err)
			}
			if err != nil && !strings.Contains(err.Error(), "keel-b+3.conf") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			esp := newESP(t, b.new)
			m := systemdboot.Entries{}
			put(t, esp, "/loader/entries/keel-a.conf", systemdboot.FormatEntry(entry("a", 1, 0)))
			put(t, esp, "/loader/entries/keel-b+3.conf", strings.Replace(good, "version 2", "version 2x", 1))
			if _, err := m.Entries(esp); !errors.Is(err, systemdboot.ErrDamagedEntry) || !strings.Contains(err.Error(), "/loader/entries/keel-b+3.conf") {
				t.Errorf("Entries: %v, want ErrDamagedEntry naming the file", err)
			}
			for name, do := range map[string]func() error{
				"mark good":   func() error { return m.MarkGood(esp, "b") },
				"mark bad":    func() error { return m.MarkBad(esp, "b") },
				"mark a good": func() error { return m.MarkGood(esp, "a") },
			} {
				if err := do(); !errors.Is(err, systemdboot.ErrDamagedEntry) {
					t.Errorf("%s: %v, want ErrDamagedEntry", name, err)
				}
			}
			if got := names(t, esp, systemdboot.EntriesDir); got != "keel-a.conf keel-b+3.conf" {
				t.Errorf("entries %q, want both untouched", got)
			}
		})
	}
}

var errLeftover = errors.New("leftover")
