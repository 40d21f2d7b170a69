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
		t.Run(b.name, func(t *testing.T) {
			esp := newESP(t, b.new)
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
			if err != nil || len(es) != 1 || es[0].State() != "bad" || es[0].TriesDone != 1 || es[0].Generation != 1 || es[0].Kernel != "/keel/a/vmlinuz" {
				t.Errorf("entries %+v (%v)", es, err)
			}
		})
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
