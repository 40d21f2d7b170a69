package profiles

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestSchemaGolden(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/schema.golden.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./profiles -run Schema -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Schema() differs from %s; if the change is intended, run go test ./profiles -run Schema -update", golden)
	}
	again, _ := Schema()
	if !bytes.Equal(got, again) {
		t.Errorf("Schema() is not deterministic")
	}
}

// TestSchemaShape checks the schema is JSON of the intended shape: every
// yaml field of every type is a property, every object refuses unknown
// properties, and the enums are there.
func TestSchemaShape(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Schema string `json:"$schema"`
		object
		Defs map[string]object `json:"$defs"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %q", s.Schema)
	}
	objects := map[string]object{"Profile": s.object}
	for k, v := range s.Defs {
		objects[k] = v
	}
	for _, typ := range []reflect.Type{
		reflect.TypeFor[Profile](), reflect.TypeFor[Kernel](), reflect.TypeFor[Source](), reflect.TypeFor[User](),
		reflect.TypeFor[Group](), reflect.TypeFor[Service](), reflect.TypeFor[Disk](), reflect.TypeFor[Squashfs](),
		reflect.TypeFor[Update](), reflect.TypeFor[Health](), reflect.TypeFor[Boot](),
	} {
		o, ok := objects[typ.Name()]
		if !ok {
			t.Errorf("no schema for %s", typ.Name())
			continue
		}
		if o.Type != "object" || o.AdditionalProperties == nil || *o.AdditionalProperties {
			t.Errorf("%s: type %q, additionalProperties %v; want a closed object", typ.Name(), o.Type, o.AdditionalProperties)
		}
		for _, f := range structFields(typ) {
			p, ok := o.Properties[f.name]
			if !ok {
				t.Errorf("%s: no property %s", typ.Name(), f.name)
			} else if p.Description == "" {
				t.Errorf("%s.%s: no description", typ.Name(), f.name)
			}
		}
		if len(o.Properties) != len(structFields(typ)) {
			t.Errorf("%s: %d properties, want %d", typ.Name(), len(o.Properties), len(structFields(typ)))
		}
	}
	for _, c := range []struct {
		obj, prop string
		enum      []any
	}{
		{"Profile", "arch", []any{"x86_64", "aarch64"}},
		{"Squashfs", "compression", []any{"zstd", "xz", "gzip"}},
		{"Service", "restart", []any{"always", "on-failure", "never"}},
		{"Profile", "keel", []any{1.0}},
	} {
		p := objects[c.obj].Properties[c.prop]
		if len(p.AnyOf) != 2 {
			t.Errorf("%s.%s: anyOf = %v, want the type and null", c.obj, c.prop, p.AnyOf)
			continue
		}
		if got := p.AnyOf[0].Enum; !slices.Equal(got, c.enum) {
			t.Errorf("%s.%s enum = %v, want %v", c.obj, c.prop, got, c.enum)
		}
	}
	// A file may be completed by its includes: nothing is required at the
	// top, but list items are never merged, so theirs are.
	if req := s.Required; req != nil {
		t.Errorf("Profile required = %v, want none", req)
	}
	if req := objects["User"].Required; !slices.Equal(req, []string{"name", "uid"}) {
		t.Errorf("User required = %v", req)
	}
}

type object struct {
	Type                 string              `json:"type"`
	AdditionalProperties *bool               `json:"additionalProperties"`
	Properties           map[string]property `json:"properties"`
	Required             []string            `json:"required"`
}

type property struct {
	Description string `json:"description"`
	AnyOf       []struct {
		Enum []any `json:"enum"`
	} `json:"anyOf"`
}
