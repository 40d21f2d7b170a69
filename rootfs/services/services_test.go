package services

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"keel/rootfs"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range []Service{
		{Name: "min", Command: []string{"/bin/true"}},
		{
			Name: "web", Command: []string{"/usr/bin/httpd", "-f", "-p", "80"},
			Restart: OnFailure, Env: map[string]string{"B": "2", "A": "1"},
			User: "www", WorkingDir: "/var/www",
		},
		{Name: "test@1", Command: []string{"sh", "-c", "echo hi"}, Restart: Never, OnExit: Poweroff},
	} {
		t.Run(s.Name, func(t *testing.T) {
			b, err := Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			if !reflect.DeepEqual(got, s) {
				t.Errorf("got %+v, want %+v", got, s)
			}
			b2, err := Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != string(b2) {
				t.Errorf("second encoding differs:\n%s\n%s", b, b2)
			}
		})
	}
}

// The documented example must decode: it is the format's reference.
func TestDocExample(t *testing.T) {
	doc := `{
	  "name": "web",
	  "command": ["/usr/bin/httpd", "-f", "-p", "80"],
	  "restart": "always",
	  "env": {"MODE": "production"},
	  "user": "www",
	  "working_dir": "/var/www",
	  "on_exit": ""
	}`
	s, err := Unmarshal([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "web" || s.RestartPolicy() != Always || s.Env["MODE"] != "production" {
		t.Errorf("decoded %+v", s)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", `{"name":"a","command":["x"],"restart_sec":3}`, "unknown field"},
		{"trailing data", `{"name":"a","command":["x"]} {}`, "data after"},
		{"not json", `name: a`, "decoding service"},
		{"empty command", `{"name":"a","command":[]}`, "command is empty"},
		{"no command", `{"name":"a"}`, "command is empty"},
		{"bad name", `{"name":"../etc","command":["x"]}`, "service name"},
		{"empty name", `{"name":"","command":["x"]}`, "service name"},
		{"bad restart", `{"name":"a","command":["x"],"restart":"sometimes"}`, "restart"},
		{"bad on_exit", `{"name":"a","command":["x"],"on_exit":"halt"}`, "on_exit"},
		{"bad env", `{"name":"a","command":["x"],"env":{"A-B":"1"}}`, "not a variable name"},
		{"nul in arg", `{"name":"a","command":["x\u0000y"]}`, "NUL"},
		{"relative dir", `{"name":"a","command":["x"],"working_dir":"var"}`, "not absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestWriteThenLoad(t *testing.T) {
	svcs := []Service{
		{Name: "zeta", Command: []string{"/bin/z"}},
		{Name: "alpha", Command: []string{"/bin/a"}, Restart: Never, OnExit: Reboot},
	}
	tr := rootfs.New()
	if err := Write(tr, svcs); err != nil {
		t.Fatal(err)
	}
	// Copy the tree into a MapFS, as the squashfs would carry it.
	m := fstest.MapFS{}
	err := tr.Walk(func(p string, e *rootfs.Entry) error {
		if e.Type != rootfs.TypeFile {
			return nil
		}
		if e.Mode != 0o644 {
			t.Errorf("%s: mode %#o", p, e.Mode)
		}
		rc, err := e.Content()
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		m[strings.TrimPrefix(p, "/")] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["etc/keel/services/alpha.json"]; !ok {
		t.Fatalf("files written: %v", keys(m))
	}
	m["etc/keel/services/README"] = &fstest.MapFile{Data: []byte("ignored")}
	got, err := Load(m, Dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Service{svcs[1], svcs[0]} // name order
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestWriteRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		svcs []Service
		want string
	}{
		{"duplicate", []Service{{Name: "a", Command: []string{"x"}}, {Name: "a", Command: []string{"y"}}}, "defined twice"},
		{"invalid", []Service{{Name: "a"}}, "command is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(rootfs.New(), tc.svcs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Run("missing dir is no services", func(t *testing.T) {
		got, err := Load(fstest.MapFS{}, Dir)
		if err != nil || got != nil {
			t.Errorf("got %v, %v", got, err)
		}
	})
	t.Run("name must match file", func(t *testing.T) {
		m := fstest.MapFS{"etc/keel/services/b.json": {Data: []byte(`{"name":"a","command":["x"]}`)}}
		_, err := Load(m, Dir)
		if err == nil || !strings.Contains(err.Error(), "b.json") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("bad file is named", func(t *testing.T) {
		m := fstest.MapFS{"etc/keel/services/a.json": {Data: []byte(`{`)}}
		_, err := Load(m, Dir)
		if err == nil || !strings.Contains(err.Error(), "etc/keel/services/a.json") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("os.DirFS", func(t *testing.T) {
		root := t.TempDir()
		d := filepath.Join(root, "etc/keel/services")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "a.json"), []byte(`{"name":"a","command":["x"]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := Load(os.DirFS(root), Dir)
		if err != nil || len(got) != 1 || got[0].Name != "a" {
			t.Errorf("got %v, %v", got, err)
		}
	})
}

func keys(m fstest.MapFS) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}
