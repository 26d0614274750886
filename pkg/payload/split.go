package payload

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxElements is the most elements one request may be split into.
const MaxElements = 1000

// Split turns a batch body into its elements: a JSONPath naming an array,
// "$[*]" for a body that is the array, or "$.events[*]" (a chain of member
// names, in dot or bracket notation, then [*]) for one held in an object.
// Each element keeps the sender's own text, so that an element's payload
// is as exact as a whole body's. Filters, slices and recursive descent are
// refused when the expression is compiled: an element must be a place in
// the body, not a computed value.
type Split struct {
	expr    string
	members []string
}

// CompileSplit compiles a split expression.
func CompileSplit(expr string) (*Split, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(expr), "$")
	if !ok {
		return nil, fmt.Errorf("%q must start with $", expr)
	}
	rest, ok = strings.CutSuffix(rest, "[*]")
	if !ok {
		return nil, fmt.Errorf("%q must end with [*], naming an array whose elements become events", expr)
	}
	s := &Split{expr: expr}
	for rest != "" {
		var name string
		switch {
		case strings.HasPrefix(rest, "."):
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			name, rest = rest[:end], rest[end:]
			if name == "" || name == "*" || name == "." {
				return nil, fmt.Errorf("%q: only member names may lead to the array (no wildcards or recursive descent)", expr)
			}
		case strings.HasPrefix(rest, "['"):
			end := strings.Index(rest[2:], "']")
			if end < 0 {
				return nil, fmt.Errorf("%q: unterminated ['...']", expr)
			}
			name, rest = rest[2:2+end], rest[2+end+2:]
		default:
			return nil, fmt.Errorf("%q: only member names may lead to the array (no indexes, filters or slices)", expr)
		}
		s.members = append(s.members, name)
	}
	return s, nil
}

// String returns the expression as compiled.
func (s *Split) String() string { return s.expr }

// Element is one element of a split body.
type Element struct {
	// Raw is the element's JSON text, compact as Decode made the body.
	Raw json.RawMessage
	// Value is the element decoded, as Decode decodes a body.
	Value any
	// Pointer is the element's JSON pointer in the body ("/3",
	// "/events/3"), for naming it in errors.
	Pointer string
}

// ErrNoElements is returned by Elements when the split matches nothing: the
// path is missing, not an array, or an empty array.
var ErrNoElements = errors.New("the split matched no element")

// ErrTooManyElements is returned by Elements for an array of more than
// MaxElements.
var ErrTooManyElements = fmt.Errorf("more than %d elements", MaxElements)

// Elements returns the elements of a body that Decode returned as raw and
// value.
func (s *Split) Elements(raw json.RawMessage, value any) ([]Element, error) {
	pointer := ""
	for _, m := range s.members {
		obj, ok := value.(map[string]any)
		if !ok {
			return nil, ErrNoElements
		}
		if value, ok = obj[m]; !ok {
			return nil, ErrNoElements
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, fmt.Errorf("split %s: %w", s.expr, err)
		}
		raw = fields[m]
		pointer += "/" + escapePointer(m)
	}
	arr, ok := value.([]any)
	if !ok || len(arr) == 0 {
		return nil, ErrNoElements
	}
	if len(arr) > MaxElements {
		return nil, ErrTooManyElements
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(raw, &raws); err != nil || len(raws) != len(arr) {
		return nil, fmt.Errorf("split %s: the array's text and value disagree", s.expr)
	}
	out := make([]Element, len(arr))
	for i := range arr {
		out[i] = Element{Raw: raws[i], Value: arr[i], Pointer: pointer + "/" + strconv.Itoa(i)}
	}
	return out, nil
}
