package postinst

// A parser for the POSIX shell that maintainer scripts are written in,
// enough of it to know which commands a script runs, with which words,
// under which conditions. It never runs anything: eval.go walks the tree
// it builds. Anything it does not understand is a parse error, and the
// whole script is then reported as not run.

import (
	"errors"
	"fmt"
	"strings"
)

// maxScript bounds a script's size: real ones are a few KiB.
const maxScript = 1 << 20

type tokKind uint8

const (
	tWord tokKind = iota
	tOp
	tNewline
	tEOF
)

type token struct {
	kind tokKind
	op   string
	word word
	line int
}

type partKind uint8

const (
	pLit   partKind = iota // literal text
	pParam                 // $name or ${...}: text is the name or the inside of the braces
	pSubst                 // $(...) or `...`: text is the inner script
	pArith                 // $((...))
)

type part struct {
	kind   partKind
	text   string
	quoted bool // inside "..." or '...': no field splitting, no globbing
}

// word is one shell word: literal and expanded parts in order.
type word struct {
	parts []part
	raw   string
}

// keyword is the word's text when it is a single unquoted literal, the
// only form in which "if", "then", "{" ... are reserved words.
func (w word) keyword() string {
	if len(w.parts) == 1 && w.parts[0].kind == pLit && !w.parts[0].quoted {
		return w.parts[0].text
	}
	return ""
}

var operators = []string{"<<-", ";;&", "&&", "||", ";;", ";&", "<<", ">>", "<&", ">&", "<>", ">|", "&>", ";", "&", "|", "(", ")", "<", ">"}

type lexer struct {
	src       string
	pos       int
	line      int
	heredocs  []heredoc // pending, read after the next newline
	wantDelim *heredoc  // the word after << is a delimiter
}

type heredoc struct {
	delim     string
	stripTabs bool
}

func newLexer(src string) *lexer { return &lexer{src: src, line: 1} }

func (l *lexer) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", l.line, fmt.Sprintf(format, args...))
}

func (l *lexer) next() (token, error) {
	for {
		// Blanks and line continuations between words.
		for l.pos < len(l.src) {
			c := l.src[l.pos]
			if c == ' ' || c == '\t' || c == '\r' {
				l.pos++
			} else if c == '\\' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '\n' {
				l.pos += 2
				l.line++
			} else {
				break
			}
		}
		if l.pos >= len(l.src) {
			if len(l.heredocs) > 0 {
				return token{}, l.errorf("here-document delimited by %q not terminated", l.heredocs[0].delim)
			}
			return token{kind: tEOF, line: l.line}, nil
		}
		c := l.src[l.pos]
		if c == '#' {
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
			continue
		}
		if c == '\n' {
			line := l.line
			l.pos++
			l.line++
			if err := l.readHeredocs(); err != nil {
				return token{}, err
			}
			return token{kind: tNewline, line: line}, nil
		}
		for _, op := range operators {
			if strings.HasPrefix(l.src[l.pos:], op) {
				l.pos += len(op)
				if op == "<<" || op == "<<-" {
					l.wantDelim = &heredoc{stripTabs: op == "<<-"}
				}
				return token{kind: tOp, op: op, line: l.line}, nil
			}
		}
		line := l.line
		w, err := l.word()
		if err != nil {
			return token{}, err
		}
		// A file descriptor number before a redirection ("2>/dev/null")
		// is dropped: which descriptor is redirected does not matter here.
		if isDigits(w.raw) && l.pos < len(l.src) && (l.src[l.pos] == '<' || l.src[l.pos] == '>') {
			continue
		}
		if l.wantDelim != nil {
			h := *l.wantDelim
			l.wantDelim = nil
			for _, p := range w.parts {
				h.delim += p.text
			}
			if p := w.parts; len(p) > 0 && p[0].kind != pLit {
				return token{}, l.errorf("here-document delimiter %q is not a literal", w.raw)
			}
			l.heredocs = append(l.heredocs, h)
		}
		return token{kind: tWord, word: w, line: line}, nil
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// readHeredocs skips the bodies of the here-documents begun on the line
// just ended. Their text is data, not commands.
func (l *lexer) readHeredocs() error {
	for len(l.heredocs) > 0 {
		h := l.heredocs[0]
		l.heredocs = l.heredocs[1:]
		for {
			if l.pos >= len(l.src) {
				return l.errorf("here-document delimited by %q not terminated", h.delim)
			}
			end := strings.IndexByte(l.src[l.pos:], '\n')
			var line string
			if end < 0 {
				line, l.pos = l.src[l.pos:], len(l.src)
			} else {
				line, l.pos = l.src[l.pos:l.pos+end], l.pos+end+1
			}
			l.line++
			if h.stripTabs {
				line = strings.TrimLeft(line, "\t")
			}
			if strings.TrimRight(line, "\r") == h.delim {
				break
			}
		}
	}
	return nil
}

func isMeta(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', ';', '&', '|', '(', ')', '<', '>':
		return true
	}
	return false
}

// word reads one word starting at l.pos.
func (l *lexer) word() (word, error) {
	start := l.pos
	var w word
	add := func(k partKind, text string, quoted bool) {
		if k == pLit && len(w.parts) > 0 {
			last := &w.parts[len(w.parts)-1]
			if last.kind == pLit && last.quoted == quoted {
				last.text += text
				return
			}
		}
		w.parts = append(w.parts, part{kind: k, text: text, quoted: quoted})
	}
	for l.pos < len(l.src) && !isMeta(l.src[l.pos]) {
		c := l.src[l.pos]
		switch c {
		case '\\':
			if l.pos+1 >= len(l.src) {
				l.pos++
				add(pLit, "\\", false)
				continue
			}
			if l.src[l.pos+1] == '\n' {
				l.pos += 2
				l.line++
				continue
			}
			add(pLit, l.src[l.pos+1:l.pos+2], true)
			l.pos += 2
		case '\'':
			end := strings.IndexByte(l.src[l.pos+1:], '\'')
			if end < 0 {
				return w, l.errorf("unterminated single quote")
			}
			text := l.src[l.pos+1 : l.pos+1+end]
			l.line += strings.Count(text, "\n")
			add(pLit, text, true)
			if text == "" {
				// '' is an empty but present word.
				w.parts = append(w.parts, part{kind: pLit, quoted: true})
			}
			l.pos += end + 2
		case '"':
			l.pos++
			n := len(w.parts)
			if err := l.doubleQuoted(add); err != nil {
				return w, err
			}
			if len(w.parts) == n {
				w.parts = append(w.parts, part{kind: pLit, quoted: true})
			}
		case '$':
			if err := l.dollar(add, false); err != nil {
				return w, err
			}
		case '`':
			text, err := l.backquote()
			if err != nil {
				return w, err
			}
			add(pSubst, text, false)
		default:
			add(pLit, string(c), false)
			l.pos++
		}
	}
	w.raw = l.src[start:l.pos]
	return w, nil
}

func (l *lexer) doubleQuoted(add func(partKind, string, bool)) error {
	for {
		if l.pos >= len(l.src) {
			return l.errorf("unterminated double quote")
		}
		c := l.src[l.pos]
		switch c {
		case '"':
			l.pos++
			return nil
		case '\\':
			if l.pos+1 < len(l.src) {
				n := l.src[l.pos+1]
				switch n {
				case '$', '`', '"', '\\':
					add(pLit, string(n), true)
					l.pos += 2
					continue
				case '\n':
					l.pos += 2
					l.line++
					continue
				}
			}
			add(pLit, "\\", true)
			l.pos++
		case '$':
			if err := l.dollar(add, true); err != nil {
				return err
			}
		case '`':
			text, err := l.backquote()
			if err != nil {
				return err
			}
			add(pSubst, text, true)
		default:
			if c == '\n' {
				l.line++
			}
			add(pLit, string(c), true)
			l.pos++
		}
	}
}

// dollar reads an expansion at l.pos ("$").
func (l *lexer) dollar(add func(partKind, string, bool), quoted bool) error {
	rest := l.src[l.pos+1:]
	switch {
	case strings.HasPrefix(rest, "(("):
		text, n, err := matchParens(rest)
		if err != nil {
			return l.errorf("$((: %v", err)
		}
		l.line += strings.Count(text, "\n")
		l.pos += 1 + n
		add(pArith, text, quoted)
	case strings.HasPrefix(rest, "("):
		text, n, err := matchParens(rest)
		if err != nil {
			return l.errorf("$(: %v", err)
		}
		l.line += strings.Count(text, "\n")
		l.pos += 1 + n
		add(pSubst, text, quoted)
	case strings.HasPrefix(rest, "{"):
		depth := 0
		for i := 0; i < len(rest); i++ {
			switch rest[i] {
			case '{':
				depth++
			case '}':
				depth--
				if depth == 0 {
					add(pParam, rest[1:i], quoted)
					l.pos += 1 + i + 1
					return nil
				}
			case '\\':
				i++
			case '\'':
				if !quoted {
					if j := strings.IndexByte(rest[i+1:], '\''); j >= 0 {
						i += j + 1
					}
				}
			}
		}
		return l.errorf("unterminated ${")
	case rest != "" && (isNameStart(rest[0])):
		i := 1
		for i < len(rest) && isNameChar(rest[i]) {
			i++
		}
		add(pParam, rest[:i], quoted)
		l.pos += 1 + i
	case rest != "" && strings.IndexByte("@*#?$!-0123456789", rest[0]) >= 0:
		add(pParam, rest[:1], quoted)
		l.pos += 2
	default:
		add(pLit, "$", quoted)
		l.pos++
	}
	return nil
}

// matchParens returns the text inside the parenthesis that s starts with
// and the length consumed, including both parentheses. Quotes and nested
// parentheses are skipped over; a case pattern's lone ")" inside $(...) is
// not supported.
func matchParens(s string) (string, int, error) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return s[1:i], i + 1, nil
			}
		case '\\':
			i++
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", 0, errors.New("unterminated single quote")
			}
			i += j + 1
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		}
	}
	return "", 0, errors.New("unbalanced parentheses")
}

func (l *lexer) backquote() (string, error) {
	var b strings.Builder
	for i := l.pos + 1; i < len(l.src); i++ {
		c := l.src[i]
		if c == '\\' && i+1 < len(l.src) && strings.IndexByte("$`\\", l.src[i+1]) >= 0 {
			b.WriteByte(l.src[i+1])
			i++
			continue
		}
		if c == '`' {
			l.line += strings.Count(l.src[l.pos:i], "\n")
			l.pos = i + 1
			return b.String(), nil
		}
		b.WriteByte(c)
	}
	return "", l.errorf("unterminated backquote")
}

func isNameStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNameChar(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

// The syntax tree.

type list struct{ items []andOr }

type andOr struct {
	first pipeline
	rest  []andOrTail
}

type andOrTail struct {
	op string // "&&" or "||"
	p  pipeline
}

type pipeline struct {
	bang bool
	cmds []command
}

type command interface{}

type redirect struct {
	op     string
	target word
}

type simpleCmd struct {
	assigns []word // NAME=value words
	words   []word
	redirs  []redirect
	line    int
}

type ifCmd struct {
	conds  []list
	bodies []list
	els    *list
}

type caseItem struct {
	patterns []word
	body     list
}

type caseCmd struct {
	subject word
	items   []caseItem
}

type forCmd struct {
	name  string
	words []word
	noIn  bool // "for x; do": the positional parameters
	body  list
}

type whileCmd struct {
	until bool
	cond  list
	body  list
}

type groupCmd struct{ body list }

type funcDef struct {
	name string
	body command
}

type parser struct {
	lex   *lexer
	buf   []token
	depth int
}

// maxNesting bounds how deeply compound commands nest; real scripts
// nest a handful deep.
const maxNesting = 200

// parseScript parses a whole script.
func parseScript(src string) (list, error) {
	if len(src) > maxScript {
		return list{}, fmt.Errorf("script of %d bytes is too large", len(src))
	}
	p := &parser{lex: newLexer(src)}
	l, err := p.list(nil)
	if err != nil {
		return l, err
	}
	t, err := p.peek(0)
	if err != nil {
		return l, err
	}
	if t.kind != tEOF {
		return l, fmt.Errorf("line %d: unexpected %s", t.line, describe(t))
	}
	return l, nil
}

func describe(t token) string {
	switch t.kind {
	case tOp:
		return fmt.Sprintf("%q", t.op)
	case tWord:
		return fmt.Sprintf("%q", t.word.raw)
	case tNewline:
		return "newline"
	}
	return "end of script"
}

func (p *parser) peek(n int) (token, error) {
	for len(p.buf) <= n {
		t, err := p.lex.next()
		if err != nil {
			return t, err
		}
		p.buf = append(p.buf, t)
	}
	return p.buf[n], nil
}

func (p *parser) next() (token, error) {
	t, err := p.peek(0)
	if err != nil {
		return t, err
	}
	p.buf = p.buf[1:]
	return t, nil
}

func (p *parser) skipNewlines() error {
	for {
		t, err := p.peek(0)
		if err != nil {
			return err
		}
		if t.kind != tNewline {
			return nil
		}
		p.next()
	}
}

func (p *parser) expectKeyword(kw string) error {
	if err := p.skipNewlines(); err != nil {
		return err
	}
	t, err := p.next()
	if err != nil {
		return err
	}
	if t.kind != tWord || t.word.keyword() != kw {
		return fmt.Errorf("line %d: expected %q, found %s", t.line, kw, describe(t))
	}
	return nil
}

func (p *parser) expectOp(op string) error {
	if err := p.skipNewlines(); err != nil {
		return err
	}
	t, err := p.next()
	if err != nil {
		return err
	}
	if t.kind != tOp || t.op != op {
		return fmt.Errorf("line %d: expected %q, found %s", t.line, op, describe(t))
	}
	return nil
}

// list parses and-or lists until a reserved word of stops, a ")", a ";;"
// or the end.
func (p *parser) list(stops map[string]bool) (list, error) {
	var l list
	for {
		if err := p.skipNewlines(); err != nil {
			return l, err
		}
		t, err := p.peek(0)
		if err != nil {
			return l, err
		}
		if t.kind == tEOF {
			return l, nil
		}
		if t.kind == tOp && (t.op == ")" || t.op == ";;" || t.op == ";&" || t.op == ";;&") {
			return l, nil
		}
		if t.kind == tWord && stops[t.word.keyword()] {
			return l, nil
		}
		ao, err := p.andOr()
		if err != nil {
			return l, err
		}
		l.items = append(l.items, ao)
		t, err = p.peek(0)
		if err != nil {
			return l, err
		}
		if t.kind == tOp && (t.op == ";" || t.op == "&") {
			p.next()
		}
	}
}

func (p *parser) andOr() (andOr, error) {
	var ao andOr
	first, err := p.pipeline()
	if err != nil {
		return ao, err
	}
	ao.first = first
	for {
		t, err := p.peek(0)
		if err != nil {
			return ao, err
		}
		if t.kind != tOp || (t.op != "&&" && t.op != "||") {
			return ao, nil
		}
		p.next()
		if err := p.skipNewlines(); err != nil {
			return ao, err
		}
		pl, err := p.pipeline()
		if err != nil {
			return ao, err
		}
		ao.rest = append(ao.rest, andOrTail{op: t.op, p: pl})
	}
}

func (p *parser) pipeline() (pipeline, error) {
	var pl pipeline
	t, err := p.peek(0)
	if err != nil {
		return pl, err
	}
	if t.kind == tWord && t.word.keyword() == "!" {
		p.next()
		pl.bang = true
	}
	for {
		c, err := p.command()
		if err != nil {
			return pl, err
		}
		pl.cmds = append(pl.cmds, c)
		t, err := p.peek(0)
		if err != nil {
			return pl, err
		}
		if t.kind != tOp || t.op != "|" {
			return pl, nil
		}
		p.next()
		if err := p.skipNewlines(); err != nil {
			return pl, err
		}
	}
}

var reserved = map[string]bool{
	"then": true, "else": true, "elif": true, "fi": true, "do": true, "done": true,
	"esac": true, "}": true, "in": true,
}

func (p *parser) command() (command, error) {
	t, err := p.peek(0)
	if err != nil {
		return nil, err
	}
	if p.depth++; p.depth > maxNesting {
		return nil, fmt.Errorf("line %d: commands nested more than %d deep", t.line, maxNesting)
	}
	defer func() { p.depth-- }()
	var c command
	switch {
	case t.kind == tOp && t.op == "(":
		p.next()
		body, err := p.list(nil)
		if err != nil {
			return nil, err
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		c = &groupCmd{body: body}
	case t.kind == tWord:
		switch kw := t.word.keyword(); kw {
		case "if":
			c, err = p.ifCmd()
		case "case":
			c, err = p.caseCmd()
		case "for":
			c, err = p.forCmd()
		case "while", "until":
			c, err = p.whileCmd()
		case "{":
			p.next()
			body, err2 := p.list(map[string]bool{"}": true})
			if err2 != nil {
				return nil, err2
			}
			err = p.expectKeyword("}")
			c = &groupCmd{body: body}
		case "function":
			p.next()
			name, err2 := p.next()
			if err2 != nil {
				return nil, err2
			}
			if t2, _ := p.peek(0); t2.kind == tOp && t2.op == "(" {
				p.next()
				if err := p.expectOp(")"); err != nil {
					return nil, err
				}
			}
			c, err = p.funcBody(name)
		default:
			if reserved[kw] {
				return nil, fmt.Errorf("line %d: unexpected %q", t.line, kw)
			}
			if t2, err2 := p.peek(1); err2 == nil && t2.kind == tOp && t2.op == "(" {
				if t3, err3 := p.peek(2); err3 == nil && t3.kind == tOp && t3.op == ")" {
					name, _ := p.next()
					p.next()
					p.next()
					return p.funcBody(name)
				}
			}
			return p.simple()
		}
	case t.kind == tOp && isRedirect(t.op):
		return p.simple()
	default:
		return nil, fmt.Errorf("line %d: unexpected %s", t.line, describe(t))
	}
	if err != nil {
		return nil, err
	}
	// Redirections after a compound command ("done < file") are dropped.
	for {
		t, err := p.peek(0)
		if err != nil {
			return nil, err
		}
		if t.kind != tOp || !isRedirect(t.op) {
			return c, nil
		}
		p.next()
		if _, err := p.next(); err != nil {
			return nil, err
		}
	}
}

func (p *parser) funcBody(name token) (command, error) {
	if name.kind != tWord || name.word.keyword() == "" {
		return nil, fmt.Errorf("line %d: bad function name %s", name.line, describe(name))
	}
	if err := p.skipNewlines(); err != nil {
		return nil, err
	}
	body, err := p.command()
	if err != nil {
		return nil, err
	}
	return &funcDef{name: name.word.keyword(), body: body}, nil
}

func isRedirect(op string) bool {
	switch op {
	case "<", ">", ">>", "<<", "<<-", "<&", ">&", "<>", ">|", "&>":
		return true
	}
	return false
}

func (p *parser) simple() (command, error) {
	c := &simpleCmd{}
	for {
		t, err := p.peek(0)
		if err != nil {
			return nil, err
		}
		if c.line == 0 {
			c.line = t.line
		}
		if t.kind == tOp && isRedirect(t.op) {
			p.next()
			target, err := p.next()
			if err != nil {
				return nil, err
			}
			if target.kind != tWord {
				return nil, fmt.Errorf("line %d: redirection %s without a target", t.line, t.op)
			}
			c.redirs = append(c.redirs, redirect{op: t.op, target: target.word})
			continue
		}
		if t.kind != tWord {
			break
		}
		if len(c.words) == 0 && isAssignment(t.word) {
			p.next()
			c.assigns = append(c.assigns, t.word)
			continue
		}
		p.next()
		c.words = append(c.words, t.word)
	}
	if len(c.words) == 0 && len(c.assigns) == 0 && len(c.redirs) == 0 {
		t, _ := p.peek(0)
		return nil, fmt.Errorf("line %d: expected a command, found %s", t.line, describe(t))
	}
	return c, nil
}

// isAssignment reports whether w is NAME=... with an unquoted name.
func isAssignment(w word) bool {
	if len(w.parts) == 0 || w.parts[0].kind != pLit || w.parts[0].quoted {
		return false
	}
	name, _, ok := strings.Cut(w.parts[0].text, "=")
	if !ok || name == "" || !isNameStart(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if !isNameChar(name[i]) {
			return false
		}
	}
	return true
}

func (p *parser) ifCmd() (command, error) {
	c := &ifCmd{}
	p.next() // if
	for {
		cond, err := p.list(map[string]bool{"then": true})
		if err != nil {
			return nil, err
		}
		if err := p.expectKeyword("then"); err != nil {
			return nil, err
		}
		body, err := p.list(map[string]bool{"elif": true, "else": true, "fi": true})
		if err != nil {
			return nil, err
		}
		c.conds, c.bodies = append(c.conds, cond), append(c.bodies, body)
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		switch t.word.keyword() {
		case "elif":
			continue
		case "else":
			els, err := p.list(map[string]bool{"fi": true})
			if err != nil {
				return nil, err
			}
			c.els = &els
			return c, p.expectKeyword("fi")
		case "fi":
			return c, nil
		}
		return nil, fmt.Errorf("line %d: expected %q, found %s", t.line, "fi", describe(t))
	}
}

func (p *parser) caseCmd() (command, error) {
	p.next() // case
	subj, err := p.next()
	if err != nil {
		return nil, err
	}
	if subj.kind != tWord {
		return nil, fmt.Errorf("line %d: case without a word", subj.line)
	}
	if err := p.expectKeyword("in"); err != nil {
		return nil, err
	}
	c := &caseCmd{subject: subj.word}
	for {
		if err := p.skipNewlines(); err != nil {
			return nil, err
		}
		t, err := p.next()
		if err != nil {
			return nil, err
		}
		if t.kind == tWord && t.word.keyword() == "esac" {
			return c, nil
		}
		if t.kind == tOp && t.op == "(" {
			if t, err = p.next(); err != nil {
				return nil, err
			}
		}
		var item caseItem
		for {
			if t.kind != tWord {
				return nil, fmt.Errorf("line %d: bad case pattern %s", t.line, describe(t))
			}
			item.patterns = append(item.patterns, t.word)
			sep, err := p.next()
			if err != nil {
				return nil, err
			}
			if sep.kind == tOp && sep.op == ")" {
				break
			}
			if sep.kind != tOp || sep.op != "|" {
				return nil, fmt.Errorf("line %d: bad case pattern list near %s", sep.line, describe(sep))
			}
			if t, err = p.next(); err != nil {
				return nil, err
			}
		}
		if item.body, err = p.list(map[string]bool{"esac": true}); err != nil {
			return nil, err
		}
		c.items = append(c.items, item)
		t, err = p.peek(0)
		if err != nil {
			return nil, err
		}
		if t.kind == tOp && (t.op == ";;" || t.op == ";&" || t.op == ";;&") {
			p.next()
		}
	}
}

func (p *parser) forCmd() (command, error) {
	p.next() // for
	name, err := p.next()
	if err != nil {
		return nil, err
	}
	if name.kind != tWord || name.word.keyword() == "" {
		return nil, fmt.Errorf("line %d: bad for loop variable", name.line)
	}
	c := &forCmd{name: name.word.keyword(), noIn: true}
	if err := p.skipNewlines(); err != nil {
		return nil, err
	}
	t, err := p.peek(0)
	if err != nil {
		return nil, err
	}
	if t.kind == tWord && t.word.keyword() == "in" {
		p.next()
		c.noIn = false
		for {
			t, err := p.next()
			if err != nil {
				return nil, err
			}
			if t.kind == tWord {
				c.words = append(c.words, t.word)
				continue
			}
			if t.kind == tNewline || t.kind == tOp && t.op == ";" {
				break
			}
			return nil, fmt.Errorf("line %d: unexpected %s in for loop", t.line, describe(t))
		}
	} else if t.kind == tOp && t.op == ";" {
		p.next()
	}
	if err := p.expectKeyword("do"); err != nil {
		return nil, err
	}
	if c.body, err = p.list(map[string]bool{"done": true}); err != nil {
		return nil, err
	}
	return c, p.expectKeyword("done")
}

func (p *parser) whileCmd() (command, error) {
	t, _ := p.next()
	c := &whileCmd{until: t.word.keyword() == "until"}
	var err error
	if c.cond, err = p.list(map[string]bool{"do": true}); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("do"); err != nil {
		return nil, err
	}
	if c.body, err = p.list(map[string]bool{"done": true}); err != nil {
		return nil, err
	}
	return c, p.expectKeyword("done")
}
