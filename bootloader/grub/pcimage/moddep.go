package pcimage

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// moddeps is moddep.lst: for each module, the modules it needs.
type moddeps map[string][]string

// parseModdep reads moddep.lst, one "name: dep dep ..." line per module.
// Where a name has two lines the last wins, as in grub-mkimage's
// read_dep_list, which prepends each line and takes the first match.
func parseModdep(b []byte) (moddeps, error) {
	deps := moddeps{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, list, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("line %d: %q is not \"module: dependencies\"", n, line)
		}
		deps[name] = strings.Fields(list)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return deps, nil
}

// resolve returns the modules to embed for the requested ones: each
// module after the modules it needs, each once. The order is
// grub-mkimage's (util/resolve.c add_module): a depth-first walk that
// visits a module's dependencies last-listed first, then the module, so
// that keel's core.img is byte-for-byte the same as grub-mkimage's.
//
// The kernel loads embedded modules in this order and resolves a
// module's dependencies by name among those already loaded, so a cycle
// can never load; grub-mkimage recurses forever on one, keel says where
// it is. A name in moddep.lst's dependency lists need not have a line of
// its own (GRUB lists modules without dependencies as "name:", but a
// missing line means no dependencies to grub-mkimage too); whether its
// file exists is checked when it is read.
func (d moddeps) resolve(requested []string) ([]string, error) {
	var order []string
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var path []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			i := len(path) - 1
			for path[i] != name {
				i--
			}
			return fmt.Errorf("dependency cycle in moddep.lst: %s -> %s", strings.Join(path[i:], " -> "), name)
		}
		state[name] = visiting
		path = append(path, name)
		deps := d[name]
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i]); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[name] = done
		order = append(order, name)
		return nil
	}
	for _, name := range requested {
		if err := visit(name); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// neededBy names the first module in order that lists dep in moddep.lst,
// for an error about a dependency that cannot be read.
func (d moddeps) neededBy(order []string, dep string) string {
	for _, m := range order {
		for _, x := range d[m] {
			if x == dep {
				return m
			}
		}
	}
	return ""
}
