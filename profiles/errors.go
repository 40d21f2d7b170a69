package profiles

import (
	"errors"
	"fmt"
	"strings"
)

// Pos is where something was written: a file and a 1-based line and column.
// Line and Column are 0 when unknown (a file that could not be read).
type Pos struct {
	File         string
	Line, Column int
}

func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Error is one problem with a profile. Load returns them joined with
// errors.Join; errors.As finds the first, Errors lists them all.
//
// Its text is one line, "FILE:LINE:COL: FIELD: MESSAGE", the form editors and
// CI logs turn into links.
type Error struct {
	Pos
	Field string // field path, e.g. "disk.slot" or "users[1].uid"; "" for the whole file
	Msg   string
	Err   error // the cause, when there is one (e.g. an fs.PathError)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.Pos.String())
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errors returns every *Error in err (as returned by Load), in order.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		var pe *Error
		switch u := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		default:
			if errors.As(err, &pe) {
				out = append(out, pe)
			}
		}
	}
	walk(err)
	return out
}

// Where returns where the value of a field was written, e.g.
// p.Where("sources[2].image"), and whether it was written at all (fields
// filled by defaults were not). Later stages (rootfs, image) use it to report
// their own errors at the right line through Errorf.
func (p *Profile) Where(field string) (Pos, bool) {
	pos, ok := p.pos[field]
	return pos, ok
}

// Errorf returns an *Error about field, placed where the field was written,
// or, for a field that was defaulted, where its nearest written parent was (the
// loaded file itself at worst).
func (p *Profile) Errorf(field, format string, args ...any) *Error {
	e := &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
	for f := field; ; f = parentField(f) {
		if pos, ok := p.pos[f]; ok {
			e.Pos = pos
			break
		}
		if f == "" {
			break
		}
	}
	for _, a := range args {
		if err, ok := a.(error); ok {
			e.Err = err
		}
	}
	return e
}

// parentField drops the last element of a field path: "a.b[2].c" -> "a.b[2]"
// -> "a.b" -> "a" -> "".
func parentField(f string) string {
	i := strings.LastIndexAny(f, ".[")
	if i < 0 {
		return ""
	}
	return f[:i]
}

// FieldError is a failure while building what a field names, e.g. a
// registry that does not answer for sources[2].image, or a directory that
// cannot be read: it prints where the field was written, as Error does,
// but it is not a problem of the profile, so it is not an *Error and
// Errors does not list it (keel exits 1 for it, not 2).
type FieldError struct {
	Pos
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	return (&Error{Pos: e.Pos, Field: e.Field, Msg: e.Err.Error()}).Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// At wraps err, a failure while building what field names, with the
// place the field was written (see Errorf for defaulted fields).
func (p *Profile) At(field string, err error) error {
	e := p.Errorf(field, "")
	return &FieldError{Pos: e.Pos, Field: field, Err: err}
}
