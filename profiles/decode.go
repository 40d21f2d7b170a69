package profiles

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder fills Go values from the merged YAML tree, strictly: unknown
// fields and wrong types are errors, reported at the node with its field
// path. It records where every value was written (for Profile.Where and for
// validation errors) and which fields failed, so that validation does not
// pile a second error onto a field that already has one.
type decoder struct {
	l    *loader
	pos  map[string]Pos
	bad  map[string]bool
	errs []*Error
}

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	d.bad[field] = true
	e := &Error{Pos: d.l.pos(n), Field: field, Msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			e.Err = err
		}
	}
	d.errs = append(d.errs, e)
}

var (
	sizeType     = reflect.TypeFor[Size]()
	modeType     = reflect.TypeFor[FileMode]()
	durationType = reflect.TypeFor[Duration]()
)

// decode stores n into v. tag is the keel:"..." tag of the field v is.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, field, tag string) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // null is "not set": the field keeps its zero value and its default
	}
	d.pos[field] = d.l.pos(n)
	t := v.Type()
	switch t {
	case sizeType:
		if !d.scalar(n, field, "a size") {
			return
		}
		s, err := ParseSize(n.Value)
		if err != nil {
			d.errorf(n, field, "%v", err)
			return
		}
		v.SetInt(int64(s))
		return
	case modeType:
		if !d.scalar(n, field, "an octal mode") {
			return
		}
		if n.Tag != "!!int" && n.Tag != "!!str" {
			d.errorf(n, field, "expected an octal mode like \"0644\", got %s", describe(n))
			return
		}
		m, err := ParseFileMode(n.Value)
		if err != nil {
			d.errorf(n, field, "%v", err)
			return
		}
		v.SetUint(uint64(m))
		return
	case durationType:
		if !d.scalar(n, field, "a duration") {
			return
		}
		dur, err := ParseDuration(n.Value)
		if err != nil {
			d.errorf(n, field, "%v", err)
			return
		}
		v.SetInt(int64(dur))
		return
	}

	switch t.Kind() {
	case reflect.String:
		// Any scalar is taken as the text it was written as, so that
		// `version: 1.0` means "1.0", not the float 1.
		if !d.scalar(n, field, "a string") {
			return
		}
		s, err := d.resolve(n, tag)
		if err != nil {
			d.errorf(n, field, "%v", err)
			return
		}
		v.SetString(s)
	case reflect.Int:
		if !d.scalar(n, field, "an integer") {
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Tag != "!!int" || err != nil {
			d.errorf(n, field, "expected an integer, got %s", describe(n))
			return
		}
		if v.OverflowInt(i) {
			d.errorf(n, field, "%s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		if !d.scalar(n, field, "true or false") {
			return
		}
		// YAML 1.2 booleans only: "yes" and "on" are strings, a classic
		// YAML 1.1 surprise.
		if n.Tag != "!!bool" {
			d.errorf(n, field, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, field, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			sub := fmt.Sprintf("%s[%d]", field, i)
			if c.Kind == yaml.ScalarNode && c.Tag == "!!null" {
				d.errorf(c, sub, "empty list item")
				continue
			}
			d.decode(c, s.Index(i), sub, tag)
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, field, "expected a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			sub := joinField(field, k.Value)
			val := reflect.New(t.Elem()).Elem()
			d.decode(n.Content[i+1], val, sub, tag)
			m.SetMapIndex(reflect.ValueOf(k.Value), val)
		}
		v.Set(m)
	case reflect.Struct:
		d.decodeStruct(n, v, field)
	default:
		panic(fmt.Sprintf("profiles: no decoder for %s (field %s)", t, field))
	}
}

// scalar reports a type error unless n is a scalar.
func (d *decoder) scalar(n *yaml.Node, field, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, field, "expected %s, got %s", want, describe(n))
		return false
	}
	return true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, field string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, field, "expected a mapping, got %s", describe(n))
		return
	}
	fields := structFields(v.Type())
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := joinField(field, k.Value)
		j := slices.IndexFunc(fields, func(f fieldInfo) bool { return f.name == k.Value })
		if j < 0 {
			d.errorf(k, sub, "unknown field (known: %s)", knownNames(fields))
			continue
		}
		f := fields[j]
		d.decode(val, v.Field(f.index), sub, f.keel)
		if f.enum != nil && v.Field(f.index).Kind() == reflect.String && !d.bad[sub] && val.Tag != "!!null" && !slices.Contains(f.enum, v.Field(f.index).String()) {
			d.errorf(val, sub, "%q is not one of %s", v.Field(f.index).String(), strings.Join(f.enum, ", "))
		}
	}
	for _, f := range fields {
		sub := joinField(field, f.name)
		if _, ok := d.pos[sub]; f.required && !ok && !d.bad[sub] {
			d.errorf(n, sub, "required field is missing")
		}
	}
}

// fieldInfo is what the decoder and the schema generator need of a struct
// field.
type fieldInfo struct {
	name     string // yaml name
	index    int
	doc      string
	keel     string
	enum     []string
	required bool
}

func structFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || name == "-" || name == "" {
			continue
		}
		f := fieldInfo{name: name, index: i, doc: sf.Tag.Get("doc"), keel: sf.Tag.Get("keel"), required: sf.Tag.Get("required") == "true"}
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, ",")
		}
		out = append(out, f)
	}
	return out
}

func knownNames(fields []fieldInfo) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// localTransports are the image transports whose reference is a local path.
var localTransports = []string{"oci:", "oci-archive:", "docker-archive:", "dir:"}

// resolve applies a field's keel:"..." tag to a scalar: path fields get ${VAR}
// expansion and are made absolute against the directory of their file.
func (d *decoder) resolve(n *yaml.Node, tag string) (string, error) {
	s := n.Value
	switch tag {
	case "path":
		return d.absPath(n, s)
	case "ref":
		for _, tr := range localTransports {
			if rest, ok := strings.CutPrefix(s, tr); ok {
				// As containers/image does, the path ends at the first
				// colon; what follows names an image inside it.
				p, ref, hasRef := strings.Cut(rest, ":")
				p, err := d.absPath(n, p)
				if err != nil {
					return "", err
				}
				if hasRef {
					return tr + p + ":" + ref, nil
				}
				return tr + p, nil
			}
		}
	}
	return s, nil
}

func (d *decoder) absPath(n *yaml.Node, s string) (string, error) {
	s, err := expandEnv(s, d.l.env)
	if err != nil || s == "" || filepath.IsAbs(s) {
		return s, err
	}
	f := d.l.files[n]
	if f == nil {
		return s, nil
	}
	return filepath.Join(filepath.Dir(f.abs), s), nil
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// describe names the kind of a YAML node for type errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!int":
			return "an integer (" + n.Value + ")"
		case "!!float":
			return "a number (" + n.Value + ")"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}
