package kmod

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// testModDir is a synthetic modules directory modelled on Debian 12's
// 6.1.0 kernel; testdata/README says how it was made.
const testModDir = "testdata/lib/modules/6.1.0-test"

func names(ms []Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// checkOrder fails if a module comes before one of its dependencies or
// appears twice: the two promises of Set.Load.
func checkOrder(t *testing.T, load []Module) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range load {
		if j, dup := pos[m.Name]; dup {
			t.Errorf("%s listed at %d and %d", m.Name, j, i)
		}
		pos[m.Name] = i
	}
	for i, m := range load {
		for _, d := range m.Deps {
			if j, ok := pos[d]; !ok || j > i {
				t.Errorf("%s (at %d) needs %s, which is at %d (present: %v)", m.Name, i, d, j, ok)
			}
		}
	}
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name        string
		request     []string
		wantLoad    []string
		wantBuiltin []string
		wantErr     string
		wantIs      error
	}{
		{
			name: "the list DESIGN §3 measured on Debian 12",
			request: []string{"virtio_blk", "virtio_pci", "squashfs", "ext4", "vfat",
				"nls_cp437", "nls_ascii", "efivarfs"},
			wantLoad: []string{
				"virtio", "virtio_ring", "virtio_blk",
				"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
				"crc32c_generic", "jbd2", "mbcache", "crc16", "ext4",
				"fat", "vfat", "nls_cp437", "nls_ascii", "efivarfs",
			},
			wantBuiltin: []string{"squashfs"},
		},
		{
			name:     "'-' and '_' name one module, in requests and in files",
			request:  []string{"hid-generic", "hid_generic", "usbhid", "virtio-blk"},
			wantLoad: []string{"hid", "hid_generic", "ff_memless", "usbhid", "virtio", "virtio_ring", "virtio_blk"},
		},
		{
			name:     "a shared dependency is loaded once, before its first user",
			request:  []string{"btrfs", "ext4", "jbd2"},
			wantLoad: []string{"crc32c_generic", "libcrc32c", "raid6_pq", "xor", "btrfs", "jbd2", "mbcache", "crc16", "ext4"},
		},
		{
			name:     "a dependency asked for first",
			request:  []string{"virtio_ring", "virtio_blk", "virtio"},
			wantLoad: []string{"virtio", "virtio_ring", "virtio_blk"},
		},
		{
			name:        "builtins are reported once each, never loaded",
			request:     []string{"firmware_class", "zstd-decompress", "squashfs", "squashfs", "xz_dec"},
			wantBuiltin: []string{"firmware_class", "zstd_decompress", "squashfs", "xz_dec"},
		},
		{
			name:     "file names are accepted for names",
			request:  []string{"nls_ascii.ko", " vfat "},
			wantLoad: []string{"nls_ascii", "fat", "vfat"},
		},
		{
			name:    "nothing asked, nothing loaded",
			request: nil,
		},
		{
			name:    "unknown module",
			request: []string{"virtio_blk", "no-such-module"},
			wantErr: `module "no-such-module": no such module in ` + testModDir,
			wantIs:  ErrNotFound,
		},
		{
			name:    "a cycle is an error, not a hang",
			request: []string{"ext4", "cycle-a"},
			wantErr: "dependency cycle in " + testModDir + "/modules.dep: cycle_a -> cycle_c -> cycle_b -> cycle_a",
			wantIs:  ErrCycle,
		},
		{
			name:    "empty name",
			request: []string{""},
			wantErr: `bad module name ""`,
		},
		{
			name:    "a path is not a name",
			request: []string{"../../etc/passwd"},
			wantErr: `bad module name "../../etc/passwd"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := Resolve(testModDir, tc.request)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("error %q does not wrap %v", err, tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(set.Load); !reflect.DeepEqual(got, tc.wantLoad) {
				t.Errorf("load order\n got %v\nwant %v", got, tc.wantLoad)
			}
			if !reflect.DeepEqual(set.Builtin, tc.wantBuiltin) {
				t.Errorf("builtin %v, want %v", set.Builtin, tc.wantBuiltin)
			}
			checkOrder(t, set.Load)
			if set.Version != "6.1.0-test" || set.Dir != testModDir {
				t.Errorf("version %q dir %q", set.Version, set.Dir)
			}
			// Every path must be a file of the modules directory.
			for _, m := range set.Load {
				if _, err := os.Stat(testModDir + "/" + m.Path); err != nil {
					t.Errorf("%s: %v", m.Name, err)
				}
			}
			again, err := Resolve(testModDir, tc.request)
			if err != nil || !reflect.DeepEqual(again, set) {
				t.Errorf("a second Resolve differs: %+v, %v", again, err)
			}
		})
	}
}

func TestResolveModuleFields(t *testing.T) {
	set, err := Resolve(testModDir, []string{"btrfs", "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Module{}
	for _, m := range set.Load {
		byName[m.Name] = m
	}
	for _, want := range []Module{
		{Name: "ext4", Path: "kernel/fs/ext4/ext4.ko", Deps: []string{"crc16", "mbcache", "jbd2", "crc32c_generic"}},
		{Name: "btrfs", Path: "kernel/fs/btrfs/btrfs.ko.zst", Deps: []string{"xor", "raid6_pq", "libcrc32c", "crc32c_generic"}},
		{Name: "raid6_pq", Path: "kernel/lib/raid6/raid6_pq.ko.xz"},
		{Name: "crc16", Path: "kernel/lib/crc16.ko"},
	} {
		if got := byName[want.Name]; !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	}
}

func TestResolveMissingDir(t *testing.T) {
	_, err := Resolve("testdata/lib/modules/no-such-version", []string{"ext4"})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "testdata/lib/modules/no-such-version") {
		t.Errorf("error %v, want one naming the missing directory", err)
	}
}

func TestParseDep(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    map[string][]string // module → deps
		wantErr string
	}{
		{
			name: "comments, blank lines, CRLF, tabs",
			in:   "# made by hand\n\nkernel/a.ko:\tkernel/b-c.ko\r\nkernel/b-c.ko:\r\n",
			want: map[string][]string{"a": {"b_c"}, "b_c": nil},
		},
		{
			name: "a module listed twice keeps its first line",
			in:   "kernel/a.ko: kernel/b.ko\nkernel/b.ko:\nkernel/a.ko:\n",
			want: map[string][]string{"a": {"b"}, "b": nil},
		},
		{
			name: "the same name at two paths: the first wins",
			in:   "updates/a.ko:\nkernel/a-x.ko:\nkernel/a.ko: kernel/a-x.ko\n",
			want: map[string][]string{"a": nil, "a_x": nil},
		},
		{name: "no colon", in: "kernel/a.ko kernel/b.ko\n", wantErr: "line 1: no ':'"},
		{name: "not a module", in: "kernel/a.ko:\nkernel/readme.txt:\n", wantErr: `line 2: "kernel/readme.txt" is not a module file`},
		{name: "bare suffix", in: "kernel/.ko:\n", wantErr: `line 1: "kernel/.ko" is not a module file`},
		{name: "absolute path", in: "/lib/modules/x/a.ko:\n", wantErr: "line 1: module path \"/lib/modules/x/a.ko\" is not a clean path"},
		{name: "path out of the directory", in: "kernel/a.ko: ../../b.ko\n", wantErr: "line 1: dependency: module path \"../../b.ko\""},
		{name: "unclean path", in: "kernel//a.ko:\n", wantErr: "is not a clean path"},
		{name: "dependency without a line", in: "kernel/a.ko: kernel/b.ko\n", wantErr: "line 1: kernel/a.ko needs kernel/b.ko, which has no line of its own"},
		{name: "line too long", in: "kernel/a.ko:" + strings.Repeat(" kernel/b.ko", maxLine/10) + "\n", wantErr: "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx, err := parseDep(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for name, m := range idx.byName {
				got[name] = m.Deps
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"ext4":                           "ext4",
		"hid-generic":                    "hid_generic",
		"kernel/fs/ext4/ext4.ko":         "ext4",
		"kernel/drivers/hid/hid-a.ko.xz": "hid_a",
		"b.ko.zst":                       "b",
		"c.ko.gz":                        "c",
		"d.kox":                          "d.kox",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseDep: any modules.dep either parses or is refused, and resolving
// every module of what parsed ends, with dependencies first.
func FuzzParseDep(f *testing.F) {
	seed, err := os.ReadFile(testModDir + "/modules.dep")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	f.Add("a.ko: b.ko\nb.ko: a.ko\n")
	f.Add("a.ko: a.ko\n")
	f.Fuzz(func(t *testing.T, in string) {
		idx, err := parseDep(strings.NewReader(in))
		if err != nil {
			return
		}
		set := &Set{}
		r := resolver{idx: idx, set: set, state: map[string]int{}}
		for name := range idx.byName {
			if err := r.visit(name); err != nil {
				if !errors.Is(err, ErrCycle) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
		}
		checkOrder(t, set.Load)
	})
}
