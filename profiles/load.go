package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the profile at path with the files it includes, fills in
// defaults and validates it. Every problem found is an *Error; they come
// back joined with errors.Join, ordered by file and line.
func Load(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.Join(&Error{Pos: Pos{File: path}, Msg: fsMsg(err), Err: err})
	}
	return Parse(path, data)
}

// Parse is Load for a profile already in memory: name is the file it is
// said to come from, used in errors and as the base of its relative paths
// (includes are still read from disk).
func Parse(name string, data []byte) (*Profile, error) {
	l := &loader{env: os.LookupEnv, files: map[*yaml.Node]*srcFile{}, seen: map[string]bool{}, index: map[string]int{}}
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	top := &srcFile{abs: abs, display: name}
	root, includes := l.load(top, data, nil)
	if len(l.errs) > 0 {
		return nil, l.joined()
	}

	p := &Profile{Files: l.order, pos: map[string]Pos{}}
	d := &decoder{l: l, pos: p.pos, bad: map[string]bool{}}
	d.decode(root, reflect.ValueOf(p).Elem(), "", "")
	// The whole profile is "in" the loaded file, even though its merged
	// root mapping was first written by the first file included.
	p.pos[""] = Pos{File: name, Line: 1, Column: 1}
	for i, inc := range includes {
		p.Include = append(p.Include, inc.path)
		p.pos[fmt.Sprintf("include[%d]", i)] = inc.pos
	}
	p.setDefaults()
	v := &checker{p: p, bad: d.bad}
	v.check()
	// After validation, whose errors name modules by their index as written.
	p.Kernel.Modules = dedupe(p.Kernel.Modules)
	l.errs = append(l.errs, d.errs...)
	l.errs = append(l.errs, v.errs...)
	if len(l.errs) > 0 {
		return nil, l.joined()
	}
	return p, nil
}

// srcFile is one profile file being loaded.
type srcFile struct {
	abs     string // absolute path, the base of its relative paths
	display string // the path shown in errors: as the user gave it, or relative to its includer's
}

// include is one resolved entry of a file's include list.
type include struct {
	path    string // absolute
	display string
	pos     Pos
	field   string
}

// loader reads profile files and their includes into one merged YAML tree,
// remembering which file every node came from.
type loader struct {
	env   func(string) (string, bool)
	files map[*yaml.Node]*srcFile
	seen  map[string]bool // files already merged (by absolute path)
	order []string        // absolute paths, in merge order
	index map[string]int  // display name -> order of first reading, to sort errors
	errs  []*Error
}

func (l *loader) errorf(pos Pos, field, format string, args ...any) {
	e := &Error{Pos: pos, Field: field, Msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			e.Err = err
		}
	}
	l.errs = append(l.errs, e)
}

// joined sorts the errors by file (in the order the files were read), line
// and column, and joins them.
func (l *loader) joined() error {
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i], l.errs[j]
		if a.File != b.File {
			return l.index[a.File] < l.index[b.File]
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func (l *loader) pos(n *yaml.Node) Pos {
	f := l.files[n]
	if f == nil {
		return Pos{}
	}
	return Pos{File: f.display, Line: n.Line, Column: n.Column}
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// load parses one file, loads its includes (depth first, skipping files
// already merged) and returns the merge of its includes and itself, along
// with its own resolved include list. chain holds the files including it,
// to report cycles.
func (l *loader) load(f *srcFile, data []byte, chain []*srcFile) (*yaml.Node, []include) {
	if _, ok := l.index[f.display]; !ok {
		l.index[f.display] = len(l.index)
	}
	l.seen[f.abs] = true
	root := l.parse(f, data)
	if root == nil {
		return nil, nil
	}
	l.checkVersion(root)
	incs := l.includes(f, root)
	chain = append(chain, f)

	var merged *yaml.Node
	for _, inc := range incs {
		if i := chainIndex(chain, inc.path); i >= 0 {
			names := []string{}
			for _, c := range chain[i:] {
				names = append(names, c.display)
			}
			names = append(names, inc.display)
			l.errorf(inc.pos, inc.field, "include cycle: %s", strings.Join(names, " -> "))
			continue
		}
		if l.seen[inc.path] {
			continue // already merged through another include: merge each file once
		}
		data, err := readInclude(inc.path)
		if err != nil {
			l.errorf(inc.pos, inc.field, "%s: %s", inc.path, fsMsg(err))
			continue
		}
		n, _ := l.load(&srcFile{abs: inc.path, display: inc.display}, data, chain)
		if n != nil {
			merged = l.merge(merged, n, "")
		}
	}
	l.order = append(l.order, f.abs)
	return l.merge(merged, root, ""), incs
}

// maxProfileSize bounds what an include may read: profiles are small, and
// an include of /dev/zero must fail, not fill the memory.
const maxProfileSize = 4 << 20

// readInclude reads an included profile file, which must be a regular file
// (a FIFO or a device would block or never end).
func readInclude(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProfileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxProfileSize {
		return nil, fmt.Errorf("larger than %s; not a profile", Size(maxProfileSize))
	}
	return data, nil
}

func chainIndex(chain []*srcFile, abs string) int {
	for i, c := range chain {
		if c.abs == abs {
			return i
		}
	}
	return -1
}

// parse decodes one file into a YAML mapping node, with aliases expanded
// and every node attributed to f. It reports syntax errors, duplicate keys
// and a root that is not a mapping, and returns nil if the file is unusable.
func (l *loader) parse(f *srcFile, data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if err == io.EOF {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: 1}}}
	} else if err != nil {
		l.syntaxError(f, err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			l.syntaxError(f, err)
		} else {
			l.errorf(Pos{File: f.display, Line: extra.Line, Column: extra.Column}, "", "a profile is one YAML document; this is a second one")
		}
		return nil
	}
	budget := maxNodes
	root, err := expand(doc.Content[0], &budget)
	if err != nil {
		l.errorf(Pos{File: f.display, Line: doc.Content[0].Line, Column: doc.Content[0].Column}, "", "%v", err)
		return nil
	}
	l.attribute(root, f)
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line, Column: root.Column}
		l.files[root] = f
	}
	if root.Kind != yaml.MappingNode {
		l.errorf(l.pos(root), "", "a profile is a mapping of fields, not %s", describe(root))
		return nil
	}
	if !l.checkDuplicates(root, "") {
		return nil
	}
	return root
}

// syntaxError turns a yaml.v3 error into an *Error. yaml.v3 tells only a
// line, and for parser (not scanner) errors it is the 0-based line of the
// construct being parsed, one less than an editor shows; it is reported as
// given, since the error does not say which kind it is.
func (l *loader) syntaxError(f *srcFile, err error) {
	if m := yamlLineErr.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		l.errorf(Pos{File: f.display, Line: line}, "", "%s", m[2])
		return
	}
	l.errorf(Pos{File: f.display}, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// maxNodes bounds alias expansion, so that a "billion laughs" file fails
// instead of eating the memory of the build host.
const maxNodes = 100000

// expand returns a deep copy of n with every alias replaced by a copy of
// what it points to. Copies matter: merging mutates nodes, and two places
// sharing one node through an alias must not change together.
func expand(n *yaml.Node, budget *int) (*yaml.Node, error) {
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("too many YAML nodes (more than %d after expanding aliases)", maxNodes)
	}
	if n.Kind == yaml.AliasNode {
		c, err := expand(n.Alias, budget)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		var err error
		if c.Content[i], err = expand(k, budget); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func (l *loader) attribute(n *yaml.Node, f *srcFile) {
	l.files[n] = f
	for _, c := range n.Content {
		l.attribute(c, f)
	}
}

// checkDuplicates reports a key given twice in one mapping, which YAML
// forbids and which would otherwise silently mean "the last one".
func (l *loader) checkDuplicates(n *yaml.Node, field string) bool {
	ok := true
	switch n.Kind {
	case yaml.MappingNode:
		first := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			sub := joinField(field, k.Value)
			if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag == "!!merge" {
				l.errorf(l.pos(k), field, "YAML merge keys (<<) are not supported; use include")
				ok = false
				continue
			}
			if prev, dup := first[k.Value]; dup {
				l.errorf(l.pos(k), sub, "duplicate key (first at line %d)", prev.Line)
				ok = false
				continue
			}
			first[k.Value] = k
			ok = l.checkDuplicates(n.Content[i+1], sub) && ok
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ok = l.checkDuplicates(c, fmt.Sprintf("%s[%d]", field, i)) && ok
		}
	}
	return ok
}

// checkVersion checks the keel: field of one file. Each file is checked on
// its own, because merging would hide an included file's version.
func (l *loader) checkVersion(root *yaml.Node) {
	v := lookup(root, "keel")
	if v == nil || (v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
		return
	}
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		return // the decoder reports the type
	}
	if n, err := strconv.Atoi(v.Value); err != nil || n != Version {
		l.errorf(l.pos(v), "keel", "unsupported profile version %s (this keel reads version %d)", v.Value, Version)
	}
}

// includes removes the include field from a file's root mapping and
// returns its entries resolved to absolute paths.
func (l *loader) includes(f *srcFile, root *yaml.Node) []include {
	var v *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "include" {
			v = root.Content[i+1]
			root.Content = append(root.Content[:i:i], root.Content[i+2:]...)
			break
		}
	}
	if v == nil || (v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		l.errorf(l.pos(v), "include", "expected a list of files, got %s", describe(v))
		return nil
	}
	var out []include
	for i, n := range v.Content {
		field := fmt.Sprintf("include[%d]", i)
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			l.errorf(l.pos(n), field, "expected a file name, got %s", describe(n))
			continue
		}
		p, err := expandEnv(n.Value, l.env)
		if err != nil {
			l.errorf(l.pos(n), field, "%v", err)
			continue
		}
		inc := include{path: p, display: p, pos: l.pos(n), field: field}
		if !filepath.IsAbs(p) {
			inc.path = filepath.Join(filepath.Dir(f.abs), p)
			inc.display = filepath.Join(filepath.Dir(f.display), p)
		}
		out = append(out, inc)
	}
	return out
}

// lookup returns the value of key in mapping n, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// fsMsg is the short text of a file system error, without the path the
// error message already names: "no such file", "permission denied".
func fsMsg(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
