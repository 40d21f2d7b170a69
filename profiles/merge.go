package profiles

import "go.yaml.in/yaml/v3"

// alternatives lists, per mapping (by field path), keys that stand for one
// choice: when a later file sets any of the first group, all of them are
// dropped from the earlier files, so that an including file can swap a
// kernel file for a kernel image without the merge holding both.
var alternatives = map[string]struct{ set, drop []string }{
	"kernel": {set: []string{"file", "image"}, drop: []string{"file", "image", "path"}},
}

// merge returns the merge of src over dst (see the package documentation):
// mappings are merged key by key, lists are appended, anything else in src
// replaces what dst had. Neither input is modified; unchanged subtrees are
// shared, so the result must not be modified either.
func (l *loader) merge(dst, src *yaml.Node, field string) *yaml.Node {
	if dst == nil {
		return src
	}
	if dst.Kind != yaml.MappingNode || src.Kind != yaml.MappingNode {
		return src
	}
	out := *dst
	l.files[&out] = l.files[dst] // a merged mapping is where it was first written
	out.Content = append([]*yaml.Node(nil), dst.Content...)
	if alt, ok := alternatives[field]; ok && hasAnyKey(src, alt.set) {
		out.Content = dropKeys(out.Content, alt.drop)
	}
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		j := keyIndex(out.Content, k.Value)
		if j < 0 {
			out.Content = append(out.Content, k, v)
			continue
		}
		old := out.Content[j+1]
		switch {
		case old.Kind == yaml.MappingNode && v.Kind == yaml.MappingNode:
			out.Content[j+1] = l.merge(old, v, joinField(field, k.Value))
		case old.Kind == yaml.SequenceNode && v.Kind == yaml.SequenceNode:
			seq := *old
			l.files[&seq] = l.files[old]
			seq.Content = append(append([]*yaml.Node(nil), old.Content...), v.Content...)
			out.Content[j+1] = &seq
		default:
			out.Content[j], out.Content[j+1] = k, v
		}
	}
	return &out
}

func keyIndex(content []*yaml.Node, key string) int {
	for i := 0; i+1 < len(content); i += 2 {
		if content[i].Value == key {
			return i
		}
	}
	return -1
}

func hasAnyKey(n *yaml.Node, keys []string) bool {
	for _, k := range keys {
		if keyIndex(n.Content, k) >= 0 {
			return true
		}
	}
	return false
}

func dropKeys(content []*yaml.Node, keys []string) []*yaml.Node {
	out := content[:0:0]
	for i := 0; i+1 < len(content); i += 2 {
		drop := false
		for _, k := range keys {
			drop = drop || content[i].Value == k
		}
		if !drop {
			out = append(out, content[i], content[i+1])
		}
	}
	return out
}
