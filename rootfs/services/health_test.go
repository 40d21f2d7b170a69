package services

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"keel/rootfs"
)

func TestHealthRoundTrip(t *testing.T) {
	svcs := []Service{{Name: "web", Command: []string{"x"}}, {Name: "db", Command: []string{"y"}}}
	for _, h := range []Health{
		{Require: []string{"web", "db"}, Grace: 90 * time.Second},
		{Require: []string{}},
	} {
		tr := rootfs.New()
		if err := WriteHealth(tr, h, svcs); err != nil {
			t.Fatal(err)
		}
		e, ok := tr.Get(HealthFile)
		if !ok {
			t.Fatal("no health file in the tree")
		}
		rc, err := e.Content()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := LoadHealth(fstest.MapFS{"etc/keel/health.json": {Data: b}})
		if err != nil || !ok {
			t.Fatalf("%v, %v\n%s", ok, err, b)
		}
		if !reflect.DeepEqual(got, h) {
			t.Errorf("got %+v, want %+v\n%s", got, h, b)
		}
	}
}

func TestHealthDefaultsAndErrors(t *testing.T) {
	h, ok, err := LoadHealth(fstest.MapFS{})
	if ok || err != nil {
		t.Errorf("missing file: %v %v %v", h, ok, err)
	}
	h, _, err = LoadHealth(fstest.MapFS{"etc/keel/health.json": {Data: []byte(`{"require":["a"]}`)}})
	if err != nil || h.EffectiveGrace() != DefaultGrace {
		t.Errorf("no grace: %+v, %v", h, err)
	}
	for _, tc := range []struct{ grace, deadline time.Duration }{
		{0, DefaultGrace + StartTimeout},
		{5 * time.Second, 95 * time.Second},
		{time.Hour, time.Hour + 90*time.Second},
	} {
		if got := (Health{Grace: tc.grace}).Deadline(); got != tc.deadline {
			t.Errorf("grace %v: deadline %v, want %v", tc.grace, got, tc.deadline)
		}
	}
	for doc, want := range map[string]string{
		`{"require":["a"],"grace":"soon"}`: "grace",
		`{"require":["a"],"grace":"-1s"}`:  "grace",
		`{"require":["a"],"tries":3}`:      "unknown field",
		`{"require":["a"]} x`:              "data after",
	} {
		_, _, err := LoadHealth(fstest.MapFS{"etc/keel/health.json": {Data: []byte(doc)}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", doc, err, want)
		}
	}
	err = WriteHealth(rootfs.New(), Health{Require: []string{"nope"}}, nil)
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown required service: %v", err)
	}
}
