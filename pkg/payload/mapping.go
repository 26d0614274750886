package payload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/scanner"

	"github.com/PaesslerAG/gval"
	"github.com/PaesslerAG/jsonpath"

	"github.com/inlet-dev/inlet/pkg/jsontext"
)

// language is JSONPath (github.com/PaesslerAG/jsonpath) with filter
// operators that understand the json.Number values Decode produces. The
// library's own == compares with reflect.DeepEqual, so json.Number("10")
// never equals the constant 10, and it has no < or > at all.
var language = gval.NewLanguage(
	jsonpath.Language(),
	gval.PropositionalLogic(),
	comparison("==", func(x, y any) bool { return equal(x, y) }),
	comparison("!=", func(x, y any) bool { return !equal(x, y) }),
	comparison("<", less),
	comparison("<=", func(x, y any) bool { return less(x, y) || orderedEqual(x, y) }),
	comparison(">", func(x, y any) bool { return less(y, x) }),
	comparison(">=", func(x, y any) bool { return less(y, x) || orderedEqual(x, y) }),
	match("=~", true),
	match("!~", false),
	gval.PrefixExtension(scanner.Char, singleQuoted),
)

// singleQuoted parses a string in single quotes, as JSONPath writes
// $['key']. gval would read it as a Go rune literal and refuse any key
// longer than one character.
func singleQuoted(_ context.Context, p *gval.Parser) (gval.Evaluable, error) {
	text := p.TokenText()
	if len(text) < 2 || text[0] != '\'' || text[len(text)-1] != '\'' {
		return nil, fmt.Errorf("unterminated string %s", text)
	}
	rest := text[1 : len(text)-1]
	var b strings.Builder
	for rest != "" {
		r, _, tail, err := strconv.UnquoteChar(rest, '\'')
		if err != nil {
			return nil, fmt.Errorf("invalid string %s", text)
		}
		b.WriteRune(r)
		rest = tail
	}
	return p.Const(b.String()), nil
}

// comparison defines an operator whose operands are compared as JSON
// values: numbers with numbers, strings with strings, and never a number
// with a string, as RFC 9535 compares them. A comparison of different
// kinds is false (and != true).
func comparison(name string, test func(x, y any) bool) gval.Language {
	return gval.InfixEvalOperator(name, func(a, b gval.Evaluable) (gval.Evaluable, error) {
		return func(c context.Context, v any) (any, error) {
			x, err := a(c, v)
			if err != nil {
				return nil, err
			}
			y, err := b(c, v)
			if err != nil {
				return nil, err
			}
			return test(x, y), nil
		}, nil
	})
}

// number returns v as a float64 when it is a number of any Go type.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		// The text is valid; a value beyond float64 becomes ±Inf, which
		// still orders correctly.
		f, _ := strconv.ParseFloat(string(n), 64)
		return f, true
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

func equal(x, y any) bool {
	if a, ok := number(x); ok {
		b, ok := number(y)
		return ok && a == b
	}
	switch a := x.(type) {
	case nil:
		return y == nil
	case string:
		b, ok := y.(string)
		return ok && a == b
	case bool:
		b, ok := y.(bool)
		return ok && a == b
	case []any:
		b, ok := y.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !equal(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := y.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok || !equal(av, bv) {
				return false
			}
		}
		return true
	}
	return false
}

// less orders two numbers or two strings; anything else is unordered.
func less(x, y any) bool {
	if a, ok := number(x); ok {
		b, ok := number(y)
		return ok && a < b
	}
	if a, ok := x.(string); ok {
		b, ok := y.(string)
		return ok && a < b
	}
	return false
}

// orderedEqual is equality for <= and >=: only numbers and strings are
// ordered, so only they can be "less or equal".
func orderedEqual(x, y any) bool {
	if _, ok := number(x); ok {
		return equal(x, y)
	}
	if _, ok := x.(string); ok {
		return equal(x, y)
	}
	return false
}

// match defines a regular expression operator. The pattern must be a
// string constant, compiled once with the expression (Go's RE2 syntax,
// linear in the length of the text); a value that is not a string never
// matches.
func match(name string, want bool) gval.Language {
	return gval.InfixEvalOperator(name, func(a, b gval.Evaluable) (gval.Evaluable, error) {
		// gval's Evaluable.IsConst does not survive inlining, so a constant
		// is recognised by evaluating it without a payload: anything that
		// reads the payload fails then.
		pat, err := b(context.Background(), nil)
		s, ok := pat.(string)
		if err != nil || !ok {
			return nil, fmt.Errorf("the right side of %s must be a string constant", name)
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, err
		}
		return func(c context.Context, v any) (any, error) {
			x, err := a(c, v)
			if err != nil {
				return nil, err
			}
			str, ok := x.(string)
			if !ok {
				return false, nil
			}
			return re.MatchString(str) == want, nil
		}, nil
	})
}

// compile compiles one JSONPath expression and returns a clean error.
func compile(expr string) (ev gval.Evaluable, err error) {
	e := strings.TrimSpace(expr)
	if e == "" {
		return nil, errors.New("JSONPath is empty")
	}
	if e[0] != '$' {
		return nil, fmt.Errorf("JSONPath %q must start with \"$\"", expr)
	}
	defer func() {
		if r := recover(); r != nil {
			ev, err = nil, fmt.Errorf("invalid JSONPath %q: %v", expr, r)
		}
	}()
	ev, err = language.NewEvaluable(e)
	if err != nil {
		return nil, fmt.Errorf("invalid JSONPath %q: %s", expr, parseMessage(e, err))
	}
	return ev, nil
}

// parseMessage turns gval's "parsing error: <expr>\t:1:5 - 1:6 <why>"
// into "<why> at column 5".
func parseMessage(expr string, err error) string {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "parsing error: "+expr+"\t:")
	if !ok {
		return strings.TrimPrefix(msg, "parsing error: ")
	}
	var line, col, line2, col2 int
	var why string
	if n, _ := fmt.Sscanf(rest, "%d:%d - %d:%d", &line, &col, &line2, &col2); n != 4 {
		return rest
	}
	if _, why, ok = strings.Cut(rest, " - "); ok {
		if _, why, ok = strings.Cut(why, " "); ok && why != "" {
			return fmt.Sprintf("%s at column %d", why, col)
		}
	}
	return rest
}

// evaluate applies ev to v. Any failure to select (a missing key, an index
// out of range, a key of a string) means the path matches nothing, which
// is nil.
func evaluate(ev gval.Evaluable, v any) (r any, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("JSONPath evaluation failed: %v", p)
		}
	}()
	r, err = ev(context.Background(), v)
	if err != nil {
		return nil, nil
	}
	return r, nil
}

// Mapping builds a new payload from an old one: each output field takes
// the value at a JSONPath expression. It is safe for concurrent use.
type Mapping struct {
	fields []mappedField // sorted by name
}

type mappedField struct {
	name string
	eval gval.Evaluable
}

// CompileMapping compiles a mapping of output field names to JSONPath
// expressions such as "$.repository.full_name". Every expression is
// compiled once, here. An expression must start with "$"; filters may use
// ==, !=, <, <=, >, >= (numbers with numbers, strings with strings), =~
// and !~ with a constant RE2 pattern, &&, || and !.
//
// The error names every bad field and why, sorted by field name.
func CompileMapping(m map[string]string) (*Mapping, error) {
	mp := &Mapping{fields: make([]mappedField, 0, len(m))}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if name == "" {
			errs = append(errs, errors.New("mapping field name is empty"))
			continue
		}
		ev, err := compile(m[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("mapping field %q: %w", name, err))
			continue
		}
		mp.fields = append(mp.fields, mappedField{name: name, eval: ev})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return mp, nil
}

// Empty reports whether the mapping has no fields, in which case the
// payload is stored as it came. A nil *Mapping is empty.
func (m *Mapping) Empty() bool {
	return m == nil || len(m.fields) == 0
}

// Apply evaluates every expression against v, a value as Decode returns
// it, and returns a JSON object of output field to value, fields sorted by
// name. A path that matches nothing yields null; a path with a wildcard,
// filter, slice, union or ".." yields an array of its matches (an empty
// one when nothing matches). Matches from an array keep its order, matches
// among an object's members come in no particular order.
func (m *Mapping) Apply(v any) (json.RawMessage, error) {
	if m.Empty() {
		return json.RawMessage("{}"), nil
	}
	out := make([]byte, 0, 64*len(m.fields))
	out = append(out, '{')
	for i, f := range m.fields {
		r, err := evaluate(f.eval, v)
		if err != nil {
			return nil, fmt.Errorf("mapping field %q: %w", f.name, err)
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = jsontext.AppendString(out, f.name)
		out = append(out, ':')
		if out, err = appendValue(out, r); err != nil {
			return nil, fmt.Errorf("mapping field %q: encode value: %w", f.name, err)
		}
	}
	return append(out, '}'), nil
}

// Path is one compiled JSONPath expression, for picking a single value out
// of a payload (a delivery id, for example). It is safe for concurrent use.
type Path struct {
	eval gval.Evaluable
}

// CompilePath compiles a JSONPath expression, which must start with "$".
func CompilePath(expr string) (*Path, error) {
	ev, err := compile(expr)
	if err != nil {
		return nil, err
	}
	return &Path{eval: ev}, nil
}

// String returns the value at the path in v as a string: a string as it
// is, a number in its JSON form ("42", "1.5e3" as sent) and a boolean as
// "true" or "false". It returns false when the path matches nothing or
// matches null, an object or an array.
func (p *Path) String(v any) (string, bool) {
	r, err := evaluate(p.eval, v)
	if err != nil {
		return "", false
	}
	switch r := r.(type) {
	case string:
		return r, true
	case json.Number:
		return string(r), true
	case bool:
		return strconv.FormatBool(r), true
	case float64:
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return "", false
		}
		b, err := json.Marshal(r)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	return "", false
}
