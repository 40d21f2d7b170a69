package resolve

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
)

// order puts the selection in unpack order. Each relation of a selected
// package becomes an edge to the package that satisfies it (the first
// alternative that is selected; among providers, the first by name). The
// strongly connected components of that graph are placed dependencies
// first, ties by their smallest name. Inside a component (a dependency
// cycle) packages whose dependencies are all placed go first, by name;
// when none is left, the cycle is broken at a Depends edge: the package
// that comes first by name among those whose Pre-Depends are all placed.
// A cycle of Pre-Depends alone cannot be broken and is an error.
func (s *solver) order() ([]*cand, error) {
	nodes := slices.Clone(s.trail)
	slices.SortFunc(nodes, func(a, b *cand) int { return strings.Compare(a.p.Name, b.p.Name) })
	id := make(map[*cand]int, len(nodes))
	for i, c := range nodes {
		id[c] = i
	}
	n := len(nodes)
	pre := make([][]int, n)  // pre[i]: what i pre-depends on
	deps := make([][]int, n) // deps[i]: everything i depends on (pre included)
	for i, c := range nodes {
		for k, rels := range [][]relation{c.pre, c.deps} {
			for _, r := range rels {
				q := s.relSatisfier(r)
				if q == nil || q == c {
					continue
				}
				j := id[q]
				if k == 0 {
					pre[i] = append(pre[i], j)
				}
				deps[i] = append(deps[i], j)
			}
		}
		slices.Sort(pre[i])
		pre[i] = slices.Compact(pre[i])
		slices.Sort(deps[i])
		deps[i] = slices.Compact(deps[i])
	}

	comp := components(deps)
	ncomp := 0
	for _, c := range comp {
		ncomp = max(ncomp, c+1)
	}
	members := make([][]int, ncomp)
	for i, c := range comp {
		members[c] = append(members[c], i) // ascending, so members[c][0] is the smallest name
	}
	// Between components: Kahn's algorithm, smallest name first.
	waiting := make([]int, ncomp) // dependencies on other components not yet placed
	users := make([][]int, ncomp) // components depending on this one (with repeats)
	for i := range deps {
		for _, j := range deps[i] {
			if comp[i] != comp[j] {
				waiting[comp[i]]++
				users[comp[j]] = append(users[comp[j]], comp[i])
			}
		}
	}
	ready := &minHeap{key: func(c int) int { return members[c][0] }}
	for c := range ncomp {
		if waiting[c] == 0 {
			heap.Push(ready, c)
		}
	}
	out := make([]*cand, 0, n)
	for ready.Len() > 0 {
		c := heap.Pop(ready).(int)
		placed, err := s.orderCycle(members[c], nodes, pre, deps, comp)
		if err != nil {
			return nil, err
		}
		out = append(out, placed...)
		for _, u := range users[c] {
			if waiting[u]--; waiting[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	return out, nil
}

// orderCycle orders the members of one component (node indexes, sorted
// by name): first whatever has all its dependencies in the component
// placed, else whatever has its Pre-Depends placed, smallest name first.
func (s *solver) orderCycle(members []int, nodes []*cand, pre, deps [][]int, comp []int) ([]*cand, error) {
	if len(members) == 1 {
		return []*cand{nodes[members[0]]}, nil
	}
	c := comp[members[0]]
	left := map[int][2]int{} // unplaced dependencies in the component: all, pre
	allUsers, preUsers := map[int][]int{}, map[int][]int{}
	for _, i := range members {
		var n [2]int
		for _, j := range deps[i] {
			if comp[j] == c {
				n[0]++
				allUsers[j] = append(allUsers[j], i)
			}
		}
		for _, j := range pre[i] {
			if comp[j] == c {
				n[1]++
				preUsers[j] = append(preUsers[j], i)
			}
		}
		left[i] = n
	}
	byIndex := func(i int) int { return i }
	readyAll, readyPre := &minHeap{key: byIndex}, &minHeap{key: byIndex}
	for _, i := range members {
		if left[i][0] == 0 {
			heap.Push(readyAll, i)
		}
		if left[i][1] == 0 {
			heap.Push(readyPre, i)
		}
	}
	placed := map[int]bool{}
	next := func(h *minHeap) int {
		for h.Len() > 0 {
			if i := heap.Pop(h).(int); !placed[i] {
				return i
			}
		}
		return -1
	}
	out := make([]*cand, 0, len(members))
	for len(out) < len(members) {
		i := next(readyAll)
		if i < 0 {
			// Every package left waits for another: break the cycle at a
			// Depends edge.
			if i = next(readyPre); i < 0 {
				return nil, fmt.Errorf("resolve: pre-dependency cycle: %s", preCycle(members, placed, pre, nodes))
			}
		}
		placed[i] = true
		out = append(out, nodes[i])
		for _, u := range allUsers[i] {
			n := left[u]
			if n[0]--; n[0] == 0 {
				heap.Push(readyAll, u)
			}
			left[u] = n
		}
		for _, u := range preUsers[i] {
			n := left[u]
			if n[1]--; n[1] == 0 {
				heap.Push(readyPre, u)
			}
			left[u] = n
		}
	}
	return out, nil
}

// preCycle walks Pre-Depends edges among the unplaced members until a
// package repeats: "a → b → a".
func preCycle(members []int, placed map[int]bool, pre [][]int, nodes []*cand) string {
	in := map[int]bool{}
	for _, i := range members {
		if !placed[i] {
			in[i] = true
		}
	}
	var path []int
	at := map[int]int{}
	i := members[slices.IndexFunc(members, func(i int) bool { return !placed[i] })]
	for {
		if k, ok := at[i]; ok {
			names := make([]string, 0, len(path)-k+1)
			for _, j := range path[k:] {
				names = append(names, nodes[j].p.Name)
			}
			return strings.Join(append(names, nodes[i].p.Name), " → ")
		}
		at[i] = len(path)
		path = append(path, i)
		next := -1
		for _, j := range pre[i] {
			if in[j] {
				next = j
				break
			}
		}
		if next < 0 { // cannot happen: every unplaced member has an unplaced pre-dependency
			return nodes[i].p.Name
		}
		i = next
	}
}

// relSatisfier is the selected package that satisfies r, for ordering.
func (s *solver) relSatisfier(r relation) *cand {
	for i := range r.alts {
		if c := s.satisfier(&r.alts[i]); c != nil {
			return c
		}
	}
	return nil
}

// components numbers the strongly connected components of the graph
// (Tarjan's algorithm, iterative so that a long chain cannot exhaust the
// stack).
func components(edges [][]int) []int {
	n := len(edges)
	index := make([]int, n)
	low := make([]int, n)
	comp := make([]int, n)
	for i := range index {
		index[i] = -1
		comp[i] = -1
	}
	var stack []int
	onStack := make([]bool, n)
	next, ncomp := 0, 0
	type frame struct{ v, e int }
	for root := range n {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			v := f.v
			if f.e < len(edges[v]) {
				w := edges[v][f.e]
				f.e++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{w, 0})
				} else if onStack[w] {
					low[v] = min(low[v], index[w])
				}
				continue
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = ncomp
					if w == v {
						break
					}
				}
				ncomp++
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				u := call[len(call)-1].v
				low[u] = min(low[u], low[v])
			}
		}
	}
	return comp
}

// minHeap of ints ordered by key.
type minHeap struct {
	items []int
	key   func(int) int
}

func (h *minHeap) Len() int           { return len(h.items) }
func (h *minHeap) Less(i, j int) bool { return h.key(h.items[i]) < h.key(h.items[j]) }
func (h *minHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *minHeap) Push(x any)         { h.items = append(h.items, x.(int)) }
func (h *minHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
