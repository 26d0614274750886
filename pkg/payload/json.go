package payload

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits on a single JSON number. RFC 8259 section 9 lets a receiver limit
// the range and precision of numbers; these limits are far beyond anything
// a real sender produces, yet keep a schema check (which turns each number
// into an exact rational) cheap: the cost of that conversion grows quickly
// with the number of digits and even faster with the exponent, and an
// exponent of ten million or more makes it fail outright.
const (
	maxNumberLen      = 1000
	maxNumberExponent = 1000
)

// syntaxError is a violation of the JSON grammar at a byte offset.
type syntaxError struct {
	offset int
	msg    string
}

// depthError reports nesting beyond MaxDepth.
type depthError struct{}

// duplicateKeyError reports an object that names the same member twice.
type duplicateKeyError struct {
	key     string
	pointer string
}

// numberError reports a number beyond maxNumberLen or maxNumberExponent.
type numberError struct {
	offset int
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.offset, e.msg)
}

func (e *depthError) Error() string {
	return fmt.Sprintf("JSON nests deeper than %d levels", MaxDepth)
}

func (e *duplicateKeyError) Error() string {
	if e.pointer == "" {
		return fmt.Sprintf("duplicate key %q in the top-level object", e.key)
	}
	return fmt.Sprintf("duplicate key %q in object at %s", e.key, e.pointer)
}

func (e *numberError) Error() string {
	return fmt.Sprintf("number at byte %d is out of range: at most %d characters and an exponent within ±%d are accepted",
		e.offset, maxNumberLen, maxNumberExponent)
}

// level records where the parser is inside one open array or object, so
// that an error can name the JSON pointer without any bookkeeping on the
// success path beyond two assignments per member.
type level struct {
	key   string
	index int
	array bool
}

// parser decodes one JSON text. It validates the grammar, limits nesting
// and numbers, rejects duplicate keys, builds the decoded value and copies
// the text without insignificant whitespace, all in a single pass.
//
// The input must already be valid UTF-8: the parser then only needs to
// look at ASCII bytes to find structure.
type parser struct {
	s   string // the JSON text; decoded strings and numbers share its memory
	i   int    // offset of the next unread byte in s
	off int    // offset of s within the body, added to reported offsets

	out []byte // compact copy of s[:seg] so far
	seg int    // s[seg:i] is significant text not yet copied to out

	depth  int
	levels [MaxDepth + 1]level

	// Scratch stacks for the members of the arrays and objects being
	// built, so each finished container is allocated once at its exact size.
	vals []any
	keys []string

	// Initial backing for the scratch stacks, enough for typical payloads.
	valsBuf [32]any
	keysBuf [32]string
}

// parseJSON decodes s, a valid UTF-8 JSON text, and returns its compact
// form and its value. off is added to byte offsets in errors.
//
// The returned error is a *syntaxError, *depthError, *duplicateKeyError or
// *numberError.
func parseJSON(s string, off int) ([]byte, any, error) {
	p := parser{s: s, off: off}
	p.vals = p.valsBuf[:0]
	p.keys = p.keysBuf[:0]
	p.skipSpace()
	if p.i == len(s) {
		return nil, nil, p.syntax("unexpected end of input")
	}
	v, err := p.value()
	if err != nil {
		return nil, nil, err
	}
	if p.out == nil {
		// No whitespace so far: the text is already compact.
		p.out = make([]byte, 0, p.i-p.seg)
	}
	p.out = append(p.out, s[p.seg:p.i]...)
	for p.i < len(s) && isSpace(s[p.i]) {
		p.i++
	}
	if p.i != len(s) {
		return nil, nil, p.syntax("unexpected data after the top-level value")
	}
	return p.out, v, nil
}

func (p *parser) syntax(msg string) error {
	return &syntaxError{offset: p.off + p.i, msg: msg}
}

func (p *parser) unexpected(what string) error {
	if p.i >= len(p.s) {
		return p.syntax("unexpected end of input " + what)
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.i:])
	return p.syntax(fmt.Sprintf("unexpected character %s %s", quoteRune(r), what))
}

func quoteRune(r rune) string {
	if r < utf8.RuneSelf && strconv.IsPrint(r) {
		return "'" + string(r) + "'"
	}
	return fmt.Sprintf("U+%04X", r)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// skipSpace moves past whitespace, flushing the significant text before it
// to out. Whitespace only ever sits between tokens, so copying the runs in
// between yields exactly what json.Compact would produce.
func (p *parser) skipSpace() {
	i := p.i
	if i >= len(p.s) || !isSpace(p.s[i]) {
		return
	}
	if p.out == nil {
		p.out = make([]byte, 0, len(p.s))
	}
	p.out = append(p.out, p.s[p.seg:i]...)
	for i < len(p.s) && isSpace(p.s[i]) {
		i++
	}
	p.i = i
	p.seg = i
}

// value parses the value starting at p.i, which is not whitespace.
func (p *parser) value() (any, error) {
	if p.i >= len(p.s) {
		return nil, p.syntax("unexpected end of input, expected a value")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return s, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	default:
		return nil, p.unexpected("looking for the beginning of a value")
	}
}

func (p *parser) literal(word string) error {
	if !strings.HasPrefix(p.s[p.i:], word) {
		return p.syntax("invalid literal, expected " + word)
	}
	p.i += len(word)
	return nil
}

func (p *parser) enter(array bool) error {
	if p.depth == MaxDepth {
		return &depthError{}
	}
	p.depth++
	p.levels[p.depth] = level{array: array}
	p.i++ // the opening bracket
	p.skipSpace()
	return nil
}

func (p *parser) object() (any, error) {
	if err := p.enter(false); err != nil {
		return nil, err
	}
	kbase, vbase := len(p.keys), len(p.vals)
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		p.depth--
		return map[string]any{}, nil
	}
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.unexpected("looking for the beginning of an object key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.levels[p.depth].key = k
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.unexpected("after an object key, expected ':'")
		}
		p.i++
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.keys = append(p.keys, k)
		p.vals = append(p.vals, v)
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			p.skipSpace()
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			break
		}
		return nil, p.unexpected("after an object member, expected ',' or '}'")
	}
	keys, vals := p.keys[kbase:], p.vals[vbase:]
	m := make(map[string]any, len(keys))
	for j, k := range keys {
		m[k] = vals[j]
	}
	if len(m) != len(keys) {
		return nil, p.duplicate(keys)
	}
	clear(vals) // drop references held only by the scratch stack
	p.keys = p.keys[:kbase]
	p.vals = p.vals[:vbase]
	p.depth--
	return m, nil
}

// duplicate names the first key of keys that repeats an earlier one.
func (p *parser) duplicate(keys []string) error {
	seen := make(map[string]struct{}, len(keys))
	dup := ""
	for _, k := range keys {
		if _, ok := seen[k]; ok {
			dup = k
			break
		}
		seen[k] = struct{}{}
	}
	var b strings.Builder
	for _, l := range p.levels[1:p.depth] {
		b.WriteByte('/')
		if l.array {
			b.WriteString(strconv.Itoa(l.index))
		} else {
			b.WriteString(escapePointer(clip(l.key, maxQuoted)))
		}
	}
	return &duplicateKeyError{key: clip(dup, maxQuoted), pointer: clip(b.String(), 4*maxQuoted)}
}

// escapePointer escapes one JSON pointer token (RFC 6901).
func escapePointer(tok string) string {
	if !strings.ContainsAny(tok, "~/") {
		return tok
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)
}

func (p *parser) array() (any, error) {
	if err := p.enter(true); err != nil {
		return nil, err
	}
	base := len(p.vals)
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		p.depth--
		return []any{}, nil
	}
	for n := 0; ; n++ {
		p.levels[p.depth].index = n
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.vals = append(p.vals, v)
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			p.skipSpace()
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			break
		}
		return nil, p.unexpected("after an array element, expected ',' or ']'")
	}
	vals := p.vals[base:]
	a := make([]any, len(vals))
	copy(a, vals)
	clear(vals)
	p.vals = p.vals[:base]
	p.depth--
	return a, nil
}

// number parses a number and returns its exact text as a json.Number.
func (p *parser) number() (any, error) {
	s, start := p.s, p.i
	i := start
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		p.i = i
		return nil, p.unexpected("in a number, expected a digit")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			p.i = i
			return nil, p.unexpected("after a decimal point, expected a digit")
		}
		i = skipDigits(s, i)
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			p.i = i
			return nil, p.unexpected("in an exponent, expected a digit")
		}
		expStart := i
		i = skipDigits(s, i)
		if exponentTooLarge(s[expStart:i]) {
			p.i = start
			return nil, &numberError{offset: p.off + start}
		}
	}
	if i-start > maxNumberLen {
		p.i = start
		return nil, &numberError{offset: p.off + start}
	}
	p.i = i
	return json.Number(s[start:i]), nil
}

func skipDigits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// exponentTooLarge reports whether the decimal digits exp exceed
// maxNumberExponent, ignoring leading zeros.
func exponentTooLarge(exp string) bool {
	exp = strings.TrimLeft(exp, "0")
	if len(exp) > 4 {
		return true
	}
	n, _ := strconv.Atoi(exp)
	return n > maxNumberExponent
}

// str parses a string starting at the opening quote at p.i. A string
// without escapes is returned as a substring of the input without copying.
func (p *parser) str() (string, error) {
	s := p.s
	start := p.i + 1
	for i := start; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			p.i = i + 1
			return s[start:i], nil
		case c == '\\':
			return p.escapedStr(start, i)
		case c < 0x20:
			p.i = i
			return "", p.syntax(fmt.Sprintf("control character U+%04X in a string", c))
		}
	}
	p.i = len(s)
	return "", p.syntax("unexpected end of input in a string")
}

// escapedStr decodes a string whose first escape is at i, the text before
// it starting at start. Escapes decode as encoding/json decodes them: a
// \u escape naming half of a surrogate pair that is not completed by the
// next escape becomes U+FFFD.
func (p *parser) escapedStr(start, i int) (string, error) {
	s := p.s
	b := make([]byte, 0, len(s[start:i])+16)
	b = append(b, s[start:i]...)
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.i = i + 1
			return string(b), nil
		case c < 0x20:
			p.i = i
			return "", p.syntax(fmt.Sprintf("control character U+%04X in a string", c))
		case c != '\\':
			// Copy the run up to the next quote, escape or control byte.
			j := i + 1
			for j < len(s) && s[j] != '"' && s[j] != '\\' && s[j] >= 0x20 {
				j++
			}
			b = append(b, s[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(s) {
			p.i = len(s)
			return "", p.syntax("unexpected end of input in a string")
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				p.i = i
				return "", p.syntax("invalid \\u escape in a string, expected four hex digits")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				// Only a \u escape right after can complete the pair.
				if r2, ok := hex4(s, i+2); ok && s[i] == '\\' && s[i+1] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
			continue
		default:
			p.i = i
			r, _ := utf8.DecodeRuneInString(s[i+1:])
			return "", p.syntax(fmt.Sprintf("invalid escape character %s after a backslash in a string", quoteRune(r)))
		}
		i += 2
	}
	p.i = len(s)
	return "", p.syntax("unexpected end of input in a string")
}

// hex4 decodes the four hex digits at s[i:i+4].
func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
