package postinst

// The evaluator walks a parsed maintainer script the way dpkg would run it
// on a fresh install inside a chroot — preinst with "install", postinst
// with "configure" and an empty previous version, DPKG_ROOT empty, no
// running systemd — and records every command it would run, with its
// words where they are known and how sure it is that the command runs:
//
//   - always: every condition on the way is known to hold ([ "$1" =
//     configure ], [ -z "$2" ], dpkg --compare-versions "$2" lt X, a file
//     test the tree answers);
//   - maybe: some condition depends on what cannot be known at build time
//     (command output, debconf answers, the running kernel).
//
// Branches known not to run on a fresh install (upgrades, triggers,
// [ -d /run/systemd/system ]) are not entered. Functions are followed
// into at each call with their arguments. Nothing is executed: the
// effects in configure.go decide what to do with the record.

import (
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"keel/rootfs"
)

// certainty is how sure the evaluator is that a command runs.
type certainty uint8

const (
	never certainty = iota
	maybe
	always
)

func (c certainty) String() string {
	return [...]string{"never", "maybe", "always"}[c]
}

func minc(a, b certainty) certainty {
	if a < b {
		return a
	}
	return b
}

// tri is a command's exit status as far as it is known.
type tri uint8

const (
	stUnknown tri = iota
	stTrue
	stFalse
)

func (t tri) not() tri {
	switch t {
	case stTrue:
		return stFalse
	case stFalse:
		return stTrue
	}
	return stUnknown
}

func triOf(b bool) tri {
	if b {
		return stTrue
	}
	return stFalse
}

// and is the certainty of running code guarded by a condition with
// status t.
func (c certainty) and(t tri) certainty {
	switch {
	case c == never || t == stFalse:
		return never
	case t == stTrue:
		return c
	}
	return maybe
}

// value is a word after expansion: its text, if it could be known.
type value struct {
	s     string
	known bool
}

func known(s string) value { return value{s: s, known: true} }

var unknown = value{}

// invocation is one command a script runs.
type invocation struct {
	pkg     *Package
	script  string
	line    int
	argv    []value
	writes  []write // files its output is redirected to
	state   certainty
	umask   int // -1 when not known
	inSubst bool
	handled bool
}

// write is an output redirection to a file.
type write struct {
	appends bool // ">>"
	target  value
}

// name is the command's base name ("update-alternatives" for
// /usr/bin/update-alternatives), "" when a variable names it.
func (inv *invocation) name() string {
	if len(inv.argv) == 0 || !inv.argv[0].known {
		return ""
	}
	return path.Base(inv.argv[0].s)
}

// args returns the arguments when every one of them is known.
func (inv *invocation) args() ([]string, bool) {
	out := make([]string, 0, len(inv.argv)-1)
	for _, a := range inv.argv[1:] {
		if !a.known {
			return nil, false
		}
		out = append(out, a.s)
	}
	return out, true
}

// where is "postinst of foo (line 12)", for messages.
func (inv *invocation) where() string {
	return fmt.Sprintf("%s of %s (line %d)", inv.script, inv.pkg.Name, inv.line)
}

// text is the command line as far as it is known, for messages.
func (inv *invocation) text() string {
	var b strings.Builder
	for i, a := range inv.argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a.known {
			b.WriteString(a.s)
		} else {
			b.WriteString("?")
		}
	}
	return b.String()
}

type flow uint8

const (
	flowNext flow = iota
	flowExit
	flowReturn
	flowBreak
	flowContinue
)

type frame struct {
	pos    []value
	cap    certainty         // maybe after a return that may or may not happen
	locals map[string]*value // saved values of "local" names, restored on return
	loop   bool
}

// Limits that keep a hostile script from making the evaluator work
// forever: function call depth and simple commands evaluated.
const (
	maxDepth = 32
	maxSteps = 200000
)

type evaluator struct {
	pkg     *Package
	script  string
	tree    *rootfs.Tree
	vars    map[string]value
	funcs   map[string]*funcDef
	invs    []*invocation
	umask   int
	exitCap certainty
	depth   int
	subst   int
	steps   int
	notes   []string // what the evaluator could not follow
}

// evaluate records the commands script (the text of pkg's maintainer
// script of that name) runs on a fresh install.
func evaluate(t *rootfs.Tree, pkg *Package, script, text string) ([]*invocation, []string, error) {
	l, err := parseScript(text)
	if err != nil {
		return nil, nil, err
	}
	ev := &evaluator{
		pkg: pkg, script: script, tree: t,
		vars: map[string]value{}, funcs: map[string]*funcDef{},
		umask: 0o022, exitCap: always,
	}
	args := []value{known("configure"), known("")}
	if script == "preinst" {
		args = []value{known("install")}
	}
	fr := &frame{pos: args, cap: always}
	ev.list(l, always, fr) // an exit or return ends the script; either way the record is complete
	if ev.steps > maxSteps {
		return nil, nil, fmt.Errorf("more than %d commands evaluated; giving up", maxSteps)
	}
	return ev.invs, ev.notes, nil
}

func (ev *evaluator) note(format string, args ...any) {
	ev.notes = append(ev.notes, fmt.Sprintf(format, args...))
}

func (ev *evaluator) list(l list, s certainty, fr *frame) (tri, flow) {
	st := stTrue
	for _, ao := range l.items {
		eff := minc(s, minc(ev.exitCap, fr.cap))
		if eff == never || ev.steps > maxSteps {
			return stUnknown, flowNext
		}
		var fl flow
		st, fl = ev.andOr(ao, eff, fr)
		if fl != flowNext {
			return st, fl
		}
	}
	return st, flowNext
}

func (ev *evaluator) andOr(ao andOr, s certainty, fr *frame) (tri, flow) {
	st, fl := ev.pipeline(ao.first, s, fr)
	if fl != flowNext {
		return st, fl
	}
	for _, tail := range ao.rest {
		var s2 certainty
		if tail.op == "&&" {
			s2 = s.and(st)
		} else {
			s2 = s.and(st.not())
		}
		if s2 == never {
			continue
		}
		st2, fl := ev.pipeline(tail.p, s2, fr)
		if fl != flowNext {
			return st2, fl
		}
		switch {
		case tail.op == "&&" && st == stTrue, tail.op == "||" && st == stFalse:
			st = st2
		case tail.op == "&&" && st2 == stFalse, tail.op == "||" && st2 == stTrue:
			st = st2
		default:
			st = stUnknown
		}
	}
	return st, flowNext
}

func (ev *evaluator) pipeline(pl pipeline, s certainty, fr *frame) (tri, flow) {
	var st tri
	if len(pl.cmds) == 1 {
		var fl flow
		st, fl = ev.command(pl.cmds[0], s, fr)
		if fl != flowNext {
			return st, fl
		}
	} else {
		// Each part of a pipeline runs in a subshell: its assignments and
		// exits stay there.
		saved := ev.snapshot()
		for _, c := range pl.cmds {
			st, _ = ev.command(c, s, fr)
		}
		ev.vars = saved
	}
	if pl.bang {
		st = st.not()
	}
	return st, flowNext
}

func (ev *evaluator) snapshot() map[string]value {
	m := make(map[string]value, len(ev.vars))
	for k, v := range ev.vars {
		m[k] = v
	}
	return m
}

func (ev *evaluator) command(c command, s certainty, fr *frame) (tri, flow) {
	switch c := c.(type) {
	case *simpleCmd:
		return ev.simple(c, s, fr)
	case *ifCmd:
		reach := s
		ran := false
		st := stTrue
		for i := range c.conds {
			cst, fl := ev.list(c.conds[i], reach, fr)
			if fl != flowNext {
				return cst, fl
			}
			if bs := reach.and(cst); bs != never {
				bst, fl := ev.list(c.bodies[i], bs, fr)
				if fl != flowNext {
					return bst, fl
				}
				st, ran = bst, true
				if bs != s {
					st = stUnknown
				}
			}
			if reach = reach.and(cst.not()); reach == never {
				break
			}
		}
		if c.els != nil && reach != never {
			bst, fl := ev.list(*c.els, reach, fr)
			if fl != flowNext {
				return bst, fl
			}
			st = bst
			if ran || reach != s {
				st = stUnknown
			}
		}
		return st, flowNext
	case *caseCmd:
		subj := ev.joined(c.subject, s, fr)
		reach := s
		for _, item := range c.items {
			m := stFalse
			for _, pw := range item.patterns {
				pat := ev.pattern(pw, s, fr)
				switch {
				case !subj.known || !pat.known:
					if m == stFalse {
						m = stUnknown
					}
				case fnmatch(pat.s, subj.s):
					m = stTrue
				}
				if m == stTrue {
					break
				}
			}
			if bs := reach.and(m); bs != never {
				if st, fl := ev.list(item.body, bs, fr); fl != flowNext {
					return st, fl
				}
			}
			if reach = reach.and(m.not()); reach == never {
				break
			}
		}
		return stUnknown, flowNext
	case *forCmd:
		var items []value
		allKnown := true
		if c.noIn {
			items = fr.pos
		} else {
			for _, w := range c.words {
				items = append(items, ev.fields(w, s, fr, true)...)
			}
		}
		for _, it := range items {
			allKnown = allKnown && it.known
		}
		if !allKnown {
			ev.assign(c.name, unknown, s)
			_, fl := ev.loopBody(c.body, maybe, fr)
			return stUnknown, fl
		}
		for _, it := range items {
			ev.assign(c.name, it, s)
			_, fl := ev.loopBody(c.body, s, fr)
			if fl == flowBreak {
				break
			}
			if fl != flowNext {
				return stUnknown, fl
			}
		}
		return stUnknown, flowNext
	case *whileCmd:
		cst, fl := ev.list(c.cond, s, fr)
		if fl != flowNext {
			return cst, fl
		}
		if c.until {
			cst = cst.not()
		}
		if bs := s.and(cst); bs != never {
			// The body is followed once, as "maybe": how often a loop runs
			// is rarely known.
			if _, fl := ev.loopBody(c.body, minc(bs, maybe), fr); fl != flowNext && fl != flowBreak {
				return stUnknown, fl
			}
		}
		return stUnknown, flowNext
	case *groupCmd:
		return ev.list(c.body, s, fr)
	case *funcDef:
		ev.funcs[c.name] = c
		return stTrue, flowNext
	}
	return stUnknown, flowNext
}

func (ev *evaluator) loopBody(body list, s certainty, fr *frame) (tri, flow) {
	wasLoop := fr.loop
	fr.loop = true
	st, fl := ev.list(body, s, fr)
	fr.loop = wasLoop
	if fl == flowContinue {
		fl = flowNext
	}
	return st, fl
}

// assign sets a variable. An assignment that may or may not happen leaves
// the variable unknown unless it already had the same value.
func (ev *evaluator) assign(name string, v value, s certainty) {
	if s == never {
		return
	}
	if s == maybe {
		if old, ok := ev.vars[name]; !ok || !old.known || !v.known || old.s != v.s {
			v = unknown
		}
	}
	ev.vars[name] = v
}

func (ev *evaluator) simple(c *simpleCmd, s certainty, fr *frame) (tri, flow) {
	ev.steps++
	if ev.steps > maxSteps {
		return stUnknown, flowExit
	}
	var argv []value
	for _, w := range c.words {
		argv = append(argv, ev.fields(w, s, fr, true)...)
	}
	if len(argv) == 0 {
		for _, a := range c.assigns {
			name, v := ev.assignment(a, s, fr)
			ev.assign(name, v, s)
		}
		for _, r := range c.redirs {
			ev.joined(r.target, s, fr)
		}
		return stTrue, flowNext
	}
	// Prefix assignments only reach the command's environment.
	for _, a := range c.assigns {
		ev.assignment(a, s, fr)
	}
	inv := &invocation{pkg: ev.pkg, script: ev.script, line: c.line, argv: argv, state: s, umask: ev.umask, inSubst: ev.subst > 0}
	for _, r := range c.redirs {
		target := ev.joined(r.target, s, fr)
		switch r.op {
		case ">", ">>", ">|", "&>", "<>":
			if !target.known || (target.s != "/dev/null" && !isDigits(target.s)) {
				inv.writes = append(inv.writes, write{appends: r.op == ">>", target: target})
			}
		}
	}
	if !argv[0].known {
		ev.invs = append(ev.invs, inv)
		return stUnknown, flowNext
	}
	switch name := argv[0].s; name {
	case "exit", "return":
		st := stTrue
		if len(argv) > 1 {
			st = stUnknown
			if argv[1].known {
				st = triOf(argv[1].s == "0")
			}
		}
		if name == "return" && ev.depth == 0 && !fr.loop {
			name = "exit" // return at the top of a sourced script; treat as exit
		}
		if s == always {
			if name == "exit" {
				return st, flowExit
			}
			return st, flowReturn
		}
		if name == "exit" {
			ev.exitCap = maybe
		} else {
			fr.cap = maybe
		}
		return stUnknown, flowNext
	case "break", "continue":
		if !fr.loop {
			return stTrue, flowNext
		}
		if s == always {
			if name == "break" {
				return stTrue, flowBreak
			}
			return stTrue, flowContinue
		}
		return stUnknown, flowNext
	case "set":
		for i, a := range argv[1:] {
			if a.known && a.s == "--" {
				if s == always {
					fr.pos = append([]value(nil), argv[i+2:]...)
				} else {
					fr.pos = nil
					ev.note("line %d: set -- in a conditional branch; positional parameters unknown after it", c.line)
				}
				break
			}
		}
		return stTrue, flowNext
	case "shift":
		n := 1
		if len(argv) > 1 {
			if !argv[1].known {
				n = -1
			} else if v, err := strconv.Atoi(argv[1].s); err == nil {
				n = v
			}
		}
		if s == always && n >= 0 && n <= len(fr.pos) {
			fr.pos = fr.pos[n:]
		} else {
			for i := range fr.pos {
				fr.pos[i] = unknown
			}
		}
		return stTrue, flowNext
	case "local", "export", "readonly", "typeset", "declare":
		for _, a := range argv[1:] {
			if !a.known {
				continue
			}
			n, v, isAssign := strings.Cut(a.s, "=")
			if name == "local" && fr.locals != nil {
				if _, saved := fr.locals[n]; !saved {
					if old, ok := ev.vars[n]; ok {
						fr.locals[n] = &old
					} else {
						fr.locals[n] = nil
					}
				}
			}
			if isAssign && isName(n) {
				ev.assign(n, known(v), s)
			}
		}
		return stTrue, flowNext
	case "unset":
		for _, a := range argv[1:] {
			if a.known && isName(a.s) {
				ev.assign(a.s, known(""), s)
			}
		}
		return stTrue, flowNext
	case "read":
		for _, a := range argv[1:] {
			if a.known && isName(a.s) {
				ev.vars[a.s] = unknown
			}
		}
		return stUnknown, flowNext
	case "umask":
		if len(argv) > 1 {
			m, err := strconv.ParseUint(argv[1].s, 8, 32)
			if !argv[1].known || err != nil || s != always {
				ev.umask = -1
			} else {
				ev.umask = int(m) & 0o777
			}
		}
		return stTrue, flowNext
	case ".", "source":
		// A shell library from the tree is read as the shell would
		// (dpkg's postinst sources dpkg-error.sh for its functions);
		// debconf's confmodule is not: it re-runs the script under
		// debconf, whose questions keel leaves at their defaults.
		if len(argv) == 2 && argv[1].known && argv[1].s != debconfModule && path.IsAbs(argv[1].s) && ev.depth < maxDepth {
			if l, ok := ev.library(argv[1].s); ok {
				ev.depth++
				st, fl := ev.list(l, s, fr)
				ev.depth--
				if fl == flowReturn {
					fl = flowNext
				}
				return st, fl
			}
		}
	case "command":
		if len(argv) > 1 && argv[1].known && !strings.HasPrefix(argv[1].s, "-") {
			// "command foo args" runs foo, skipping functions.
			inv.argv = argv[1:]
			ev.invs = append(ev.invs, inv)
			return ev.status(inv), flowNext
		}
	}
	if fd, ok := ev.funcs[argv[0].s]; ok {
		if ev.depth >= maxDepth {
			ev.note("line %d: functions nested deeper than %d; %s not followed", c.line, maxDepth, argv[0].s)
			return stUnknown, flowNext
		}
		nfr := &frame{pos: append([]value(nil), argv[1:]...), cap: always, locals: map[string]*value{}}
		ev.depth++
		st, fl := ev.command(fd.body, s, nfr)
		ev.depth--
		for n, old := range nfr.locals {
			if old == nil {
				delete(ev.vars, n)
			} else {
				ev.vars[n] = *old
			}
		}
		if fl == flowReturn {
			fl = flowNext
		}
		if nfr.cap == maybe && st != stUnknown {
			st = stUnknown
		}
		return st, fl
	}
	ev.invs = append(ev.invs, inv)
	if name := inv.name(); name == "exec" && s == always {
		return stUnknown, flowExit
	}
	return ev.status(inv), flowNext
}

// library parses a shell file of the tree for ".".
func (ev *evaluator) library(p string) (list, bool) {
	_, e, err := ev.tree.Resolve(p)
	if err != nil || e.Type != rootfs.TypeFile || e.Size > maxScript || e.Content == nil {
		return list{}, false
	}
	r, err := e.Content()
	if err != nil {
		return list{}, false
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxScript))
	if err != nil {
		return list{}, false
	}
	l, err := parseScript(string(b))
	if err != nil {
		ev.note("%s not parsed: %v", p, err)
		return list{}, false
	}
	return l, true
}

func isName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

// assignment expands a NAME=value word.
func (ev *evaluator) assignment(w word, s certainty, fr *frame) (string, value) {
	first := w.parts[0]
	name, rest, _ := strings.Cut(first.text, "=")
	parts := append([]part{{kind: pLit, text: rest}}, w.parts[1:]...)
	return name, ev.joinedParts(parts, s, fr)
}

// joined expands w as one string, without field splitting or globbing
// (assignments, redirection targets, case subjects).
func (ev *evaluator) joined(w word, s certainty, fr *frame) value {
	return ev.joinedParts(w.parts, s, fr)
}

func (ev *evaluator) joinedParts(parts []part, s certainty, fr *frame) value {
	var b strings.Builder
	ok := true
	for _, p := range parts {
		v := ev.partValue(p, s, fr)
		ok = ok && v.known
		b.WriteString(v.s)
	}
	if !ok {
		return unknown
	}
	return known(b.String())
}

// pattern expands a case pattern: quoted parts match literally.
func (ev *evaluator) pattern(w word, s certainty, fr *frame) value {
	var b strings.Builder
	for _, p := range w.parts {
		v := ev.partValue(p, s, fr)
		if !v.known {
			return unknown
		}
		if p.quoted || p.kind != pLit {
			b.WriteString(escapeGlob(v.s))
		} else {
			b.WriteString(v.s)
		}
	}
	return known(b.String())
}

func (ev *evaluator) partValue(p part, s certainty, fr *frame) value {
	switch p.kind {
	case pLit:
		return known(p.text)
	case pParam:
		if p.text == "@" || p.text == "*" {
			var vs []string
			for _, v := range fr.pos {
				if !v.known {
					return unknown
				}
				vs = append(vs, v.s)
			}
			return known(strings.Join(vs, " "))
		}
		return ev.param(p.text, s, fr)
	case pSubst:
		ev.substitution(p.text, s, fr)
		return unknown
	}
	return unknown
}

// fields expands w into words as the shell does for a command line:
// unquoted expansions are split at blanks, an unquoted empty expansion
// disappears, "$@" gives one word per positional parameter, and a word
// with unquoted glob characters is unknown (it names files).
func (ev *evaluator) fields(w word, s certainty, fr *frame, glob bool) []value {
	var out []value
	var cur strings.Builder
	curKnown, curHas := true, false
	flush := func() {
		if curHas {
			v := known(cur.String())
			if !curKnown {
				v = unknown
			}
			out = append(out, v)
		}
		cur.Reset()
		curKnown, curHas = true, false
	}
	for _, p := range w.parts {
		switch {
		case p.kind == pLit:
			if glob && !p.quoted && hasGlob(p.text) {
				curKnown = false
			}
			cur.WriteString(p.text)
			curHas = true
		case p.kind == pParam && p.text == "@" && p.quoted:
			for i, v := range fr.pos {
				if i > 0 {
					flush()
				}
				cur.WriteString(v.s)
				curKnown = curKnown && v.known
				curHas = true
			}
		case p.kind == pSubst || p.kind == pArith:
			if p.kind == pSubst {
				ev.substitution(p.text, s, fr)
			}
			curKnown, curHas = false, true
		default:
			v := ev.partValue(p, s, fr)
			if p.quoted {
				cur.WriteString(v.s)
				curKnown = curKnown && v.known
				curHas = true
				continue
			}
			if !v.known {
				curKnown, curHas = false, true
				continue
			}
			// Field splitting at IFS blanks.
			pieces := strings.Fields(v.s)
			if len(pieces) == 0 {
				continue
			}
			if strings.IndexAny(v.s[:1], " \t\n") == 0 {
				flush()
			}
			for i, piece := range pieces {
				if i > 0 {
					flush()
				}
				cur.WriteString(piece)
				curHas = true
				if glob && hasGlob(piece) {
					curKnown = false
				}
			}
			if last := v.s[len(v.s)-1]; last == ' ' || last == '\t' || last == '\n' {
				flush()
			}
		}
	}
	flush()
	return out
}

// substitution follows the commands of $(...): they run, in a subshell.
func (ev *evaluator) substitution(text string, s certainty, fr *frame) {
	if s == never {
		return
	}
	if ev.subst >= maxDepth {
		ev.note("command substitutions nested deeper than %d not followed", maxDepth)
		return
	}
	l, err := parseScript(text)
	if err != nil {
		ev.note("command substitution $(%s) not parsed: %v", text, err)
		return
	}
	saved := ev.snapshot()
	savedCap := ev.exitCap
	ev.subst++
	ev.list(l, s, fr)
	ev.subst--
	ev.vars, ev.exitCap = saved, savedCap
}

// param expands $name, $1, ${name...}.
func (ev *evaluator) param(text string, s certainty, fr *frame) value {
	if text == "" {
		return unknown
	}
	if strings.HasPrefix(text, "#") && len(text) > 1 {
		v := ev.lookup(text[1:], fr)
		if !v.known {
			return unknown
		}
		return known(strconv.Itoa(len(v.s)))
	}
	i := 0
	switch {
	case isNameStart(text[0]):
		for i < len(text) && isNameChar(text[i]) {
			i++
		}
	case text[0] >= '0' && text[0] <= '9':
		for i < len(text) && text[i] >= '0' && text[i] <= '9' {
			i++
		}
	default:
		i = 1
	}
	name, op := text[:i], text[i:]
	v := ev.lookup(name, fr)
	if op == "" {
		return v
	}
	colon := strings.HasPrefix(op, ":")
	if colon {
		op = op[1:]
	}
	if op == "" {
		return unknown // ${x:offset} and the like
	}
	kind, arg := op[:1], op[1:]
	if (kind == "#" || kind == "%") && strings.HasPrefix(arg, kind) {
		kind, arg = kind+kind, arg[1:]
	}
	// "set" for the :- family: empty counts as unset with a colon.
	set := func() (bool, bool) {
		if !v.known {
			return false, false
		}
		if colon {
			return v.s != "", true
		}
		_, isSet := ev.isSet(name, fr)
		return isSet, true
	}
	switch kind {
	case "-", "=":
		isSet, ok := set()
		if !ok {
			return unknown
		}
		if isSet {
			return v
		}
		w := ev.operand(arg, s, fr)
		if kind == "=" && isName(name) {
			ev.assign(name, w, s)
		}
		return w
	case "+":
		isSet, ok := set()
		if !ok {
			return unknown
		}
		if !isSet {
			return known("")
		}
		return ev.operand(arg, s, fr)
	case "?":
		return v
	case "#", "##", "%", "%%":
		pat := ev.operand(arg, s, fr)
		if !v.known || !pat.known {
			return unknown
		}
		return known(trimPattern(v.s, pat.s, kind))
	}
	return unknown
}

// operand expands the word of ${name:-word}.
func (ev *evaluator) operand(text string, s certainty, fr *frame) value {
	l := newLexer(text)
	var b strings.Builder
	for l.pos < len(l.src) {
		if isMeta(l.src[l.pos]) {
			b.WriteByte(l.src[l.pos])
			l.pos++
			continue
		}
		w, err := l.word()
		if err != nil {
			return unknown
		}
		v := ev.joined(w, s, fr)
		if !v.known {
			return unknown
		}
		b.WriteString(v.s)
	}
	return known(b.String())
}

// lookup is a variable's value. Variables a script never set are
// unknown, except what dpkg puts into a maintainer script's environment.
func (ev *evaluator) lookup(name string, fr *frame) value {
	if v, ok := ev.isSet(name, fr); ok {
		return v
	}
	if name != "" && name[0] >= '0' && name[0] <= '9' {
		return known("")
	}
	return unknown
}

func (ev *evaluator) isSet(name string, fr *frame) (value, bool) {
	if name == "" {
		return unknown, false
	}
	if name[0] >= '0' && name[0] <= '9' {
		n, err := strconv.Atoi(name)
		if err != nil {
			return unknown, false
		}
		if n == 0 {
			return known("/var/lib/dpkg/info/" + ev.pkg.Name + "." + ev.script), true
		}
		if n <= len(fr.pos) {
			return fr.pos[n-1], true
		}
		return known(""), false
	}
	switch name {
	case "#":
		return known(strconv.Itoa(len(fr.pos))), true
	case "?", "$", "!", "-":
		return unknown, true
	}
	if v, ok := ev.vars[name]; ok {
		return v, true
	}
	switch name {
	case "DPKG_ROOT":
		return known(""), true
	case "DPKG_MAINTSCRIPT_PACKAGE":
		return known(ev.pkg.Name), true
	case "DPKG_MAINTSCRIPT_NAME":
		return known(ev.script), true
	case "DPKG_MAINTSCRIPT_ARCH":
		return known(ev.pkg.Architecture), true
	case "DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT":
		return known("1"), true
	case "DPKG_ADMINDIR":
		return known("/var/lib/dpkg"), true
	case "IFS":
		return known(" \t\n"), true
	}
	return unknown, false
}
