package profiles

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
)

// SchemaURI is the JSON Schema dialect Schema writes.
const SchemaURI = "https://json-schema.org/draft/2020-12/schema"

// Schema returns a JSON Schema (draft 2020-12) of a profile as written,
// generated from the Go types and their doc/enum/required tags, so that
// editors can complete and check profiles. Every object refuses unknown
// properties, as Load does. The output is deterministic: keys are sorted.
//
// The schema cannot say everything Load checks (files existing, unique
// names, references between users, groups and services); Load is the
// authority.
func Schema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := g.object(reflect.TypeFor[Profile]())
	root["$schema"] = SchemaURI
	root["title"] = "keel profile"
	root["description"] = fmt.Sprintf("A keel profile, version %d: one declarative file that keel build turns into a bootable A/B disk image.", Version)
	root["$defs"] = g.defs
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding profile schema: %w", err)
	}
	return append(b, '\n'), nil
}

type schemaGen struct {
	defs map[string]any
}

// scalarSchemas are the types written as something other than their Go
// kind suggests; each becomes one entry of $defs.
var scalarSchemas = map[reflect.Type]func() map[string]any{
	sizeType: func() map[string]any {
		return map[string]any{
			"description": "A size: bytes, or a number with a unit. K, M, G, T (with or without i/iB) are powers of 1024; KB, MB, GB, TB are powers of 1000.",
			"anyOf": []any{
				map[string]any{"type": "string", "pattern": `^[0-9]+(\.[0-9]+)?\s*([KkMmGgTt]([Ii]([Bb])?|[Bb])?|B)?$`},
				map[string]any{"type": "integer", "minimum": 1},
			},
		}
	},
	modeType: func() map[string]any {
		return map[string]any{
			"description": "Permission bits, always octal: \"0755\", 0755, 755 and 0o755 all mean rwxr-xr-x.",
			"anyOf": []any{
				map[string]any{"type": "string", "pattern": `^(0[oO]?)?[0-7]{1,4}$`},
				map[string]any{"type": "integer", "minimum": 0},
			},
		}
	},
	durationType: func() map[string]any {
		return map[string]any{
			"description": "A duration as Go writes it: 10s, 1m30s, 500ms.",
			"type":        "string",
			"pattern":     `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
		}
	},
}

// extraSchemas add what tags cannot say: which fields of a type exclude
// each other. A source is exactly one thing; a kernel may be completed by
// an include, so a single file may give neither file nor image, but not both.
var extraSchemas = map[reflect.Type]map[string]any{
	reflect.TypeFor[Source](): {"oneOf": []any{
		map[string]any{"required": []string{"image"}},
		map[string]any{"required": []string{"dir"}},
		map[string]any{"required": []string{"file"}},
	}},
	reflect.TypeFor[Kernel](): {"allOf": []any{
		map[string]any{"not": map[string]any{"required": []string{"file", "image"}}},
		map[string]any{"not": map[string]any{"required": []string{"package", "file"}}},
		map[string]any{"not": map[string]any{"required": []string{"package", "image"}}},
	}},
}

func (g *schemaGen) typ(t reflect.Type) map[string]any {
	if f, ok := scalarSchemas[t]; ok {
		g.defs[t.Name()] = f()
		return map[string]any{"$ref": "#/$defs/" + t.Name()}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Int:
		return map[string]any{"type": "integer"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.typ(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.typ(t.Elem())}
	case reflect.Struct:
		if _, ok := g.defs[t.Name()]; !ok {
			g.defs[t.Name()] = nil // mark, in case a type ever refers to itself
			g.defs[t.Name()] = g.object(t)
		}
		return map[string]any{"$ref": "#/$defs/" + t.Name()}
	}
	panic(fmt.Sprintf("profiles: no schema for %s", t))
}

// object is the schema of a struct. Every property may also be null, which
// in a profile means "not set" (and so unsets what an include set). Required
// fields of the profile itself are not required by the schema, because any
// one file may be completed by the files it includes; Load checks them after
// merging.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range structFields(t) {
		ft := t.Field(f.index).Type
		s := g.typ(ft)
		if f.enum != nil {
			var enum []any
			for _, e := range f.enum {
				if ft.Kind() == reflect.Int {
					n, _ := strconv.Atoi(e)
					enum = append(enum, n)
				} else {
					enum = append(enum, e)
				}
			}
			s["enum"] = enum
		}
		if ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.String {
			// Values are taken as written, so WORKERS: 4 is fine.
			s["additionalProperties"] = map[string]any{"type": []string{"string", "number", "boolean"}}
		}
		p := map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
		if f.doc != "" {
			p["description"] = f.doc
		}
		props[f.name] = p
		if f.required && t != reflect.TypeFor[Profile]() {
			required = append(required, f.name)
		}
	}
	o := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if required != nil {
		o["required"] = required
	}
	for k, v := range extraSchemas[t] {
		o[k] = v
	}
	return o
}
