package verdict_test

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/espfat"
	"keel/bootloader/systemdboot"
	"keel/image/fat"
	"keel/image/verdict"
)

type memDisk []byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m[off:]), nil }
func (m memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

// backends are both ESPs: a mounted one (a directory) and keel's FAT writer.
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

func TestWriteRead(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			esp := b.new(t)
			for _, d := range []string{"/keel/a", "/keel/b"} {
				if err := esp.Mkdir(d); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := verdict.Read(esp, "b"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("no record: %v, want ErrNotExist", err)
			}
			first := verdict.Record{Slot: "b", Generation: 3, Entry: "keel-b+1-1.conf", Boot: 1, TriesLeft: 1,
				Result: verdict.Bad, Stage: verdict.StageInitrd, Reason: "mounting root vda3: no such device"}
			second := first
			second.Entry, second.Boot, second.TriesLeft, second.Reason = "keel-b+0-2.conf", 2, 0, strings.Repeat("é", verdict.MaxReason)
			for _, r := range []verdict.Record{first, second} {
				if err := verdict.Write(esp, r); err != nil {
					t.Fatal(err)
				}
				got, err := verdict.Read(esp, "b")
				if err != nil {
					t.Fatal(err)
				}
				want := r
				if len(want.Reason) > verdict.MaxReason {
					// Cut on a character boundary, marked.
					want.Reason = strings.Repeat("é", verdict.MaxReason/2) + "..."
				}
				if got != want {
					t.Errorf("read %+v, want %+v", got, want)
				}
			}
			names, err := esp.ReadDir("/keel/b")
			if err != nil || strings.Join(names, " ") != "verdict.json" {
				t.Errorf("/keel/b holds %v (%v), want only verdict.json", names, err)
			}
			if _, err := verdict.Read(esp, "a"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("slot a: %v, want ErrNotExist", err)
			}
			if err := verdict.Write(esp, verdict.Record{Slot: "c", Generation: 1, Result: verdict.Bad}); err == nil {
				t.Error("a record of slot c was written")
			}
		})
	}
}

// TestCutLeavesCleanable: a cut between the temporary file and the rename
// leaves a *.tmp that the boot's ESP cleanup removes, and the old record.
func TestCutLeavesCleanable(t *testing.T) {
	esp := backends[0].new(t)
	if err := esp.Mkdir("/loader/entries"); err != nil {
		t.Fatal(err)
	}
	if err := esp.Mkdir("/keel/b"); err != nil {
		t.Fatal(err)
	}
	old := verdict.Record{Slot: "b", Generation: 2, Boot: 1, TriesLeft: 1, Result: verdict.Bad, Stage: verdict.StageHealth, Reason: "old"}
	if err := verdict.Write(esp, old); err != nil {
		t.Fatal(err)
	}
	torn := []byte(`{"slot": "b", "gener`)
	if err := esp.WriteFile(verdict.Path("b")+".tmp", bytes.NewReader(torn), int64(len(torn))); err != nil {
		t.Fatal(err)
	}
	done, err := systemdboot.Entries{}.Cleanup(esp)
	if err != nil || len(done) != 1 {
		t.Fatalf("cleanup: %v, %v", done, err)
	}
	if got, err := verdict.Read(esp, "b"); err != nil || got != old {
		t.Errorf("after the cut: %+v, %v; want the old record", got, err)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct{ name, in, wantErr string }{
		{"good", `{"slot":"a","generation":1,"boot":1,"tries_left":2,"result":"good","stage":"health","reason":"app up for 5s"}`, ""},
		{"unknown fields are a newer keel's", `{"slot":"a","generation":1,"result":"bad","since":"later"}`, ""},
		{"torn", `{"slot":"a","gen`, "not a verdict record"},
		{"empty", ``, "not a verdict record"},
		{"two objects", `{"slot":"a","generation":1,"result":"bad"} {}`, "data after"},
		{"other slot name", `{"slot":"c","generation":1,"result":"bad"}`, `slot "c"`},
		{"no result", `{"slot":"a","generation":1}`, `result ""`},
		{"generation 0", `{"slot":"a","generation":0,"result":"bad"}`, "generation 0"},
		{"negative tries", `{"slot":"a","generation":1,"tries_left":-1,"result":"bad"}`, "tries left -1"},
		{"huge", `{"slot":"a","generation":1,"result":"bad","reason":"` + strings.Repeat("x", 70000) + `"}`, "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verdict.Parse([]byte(tc.in))
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestMatchesAndString(t *testing.T) {
	r := verdict.Record{Slot: "b", Generation: 3, Boot: 2, TriesLeft: 0, Result: verdict.Bad, Stage: verdict.StageInitrd, Reason: "no root"}
	if !r.Matches("b", 3) || r.Matches("b", 4) || r.Matches("a", 3) || (verdict.Record{}).Matches("", 0) {
		t.Error("Matches")
	}
	if got, want := r.String(), "trial boot 2 of 2 (generation 3) judged bad in the initrd: no root"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
