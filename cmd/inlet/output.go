package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// newTable returns a tabwriter for tables: columns two spaces apart.
// Cells must not hold tabs or newlines; cell cleans them.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// row writes one line of a table.
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// cell makes s fit a table cell: control characters become spaces, and an
// empty value is "-".
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	return s
}

// when formats a time for tables: UTC, to the second; "-" for none.
func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// member is one member of a JSON object, in the order of the document.
type member struct {
	name  string
	value json.RawMessage
}

// members returns the members of the JSON object raw in their order, or
// false when raw is not an object.
func members(raw json.RawMessage) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var ms []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		ms = append(ms, member{name, v})
	}
	return ms, true
}

// flatten lists the leaves of the JSON object raw as dotted names (the
// names 'inlet trigger set' takes) with their values as text, in the
// document's order. An array of scalars is one leaf, its items joined by
// commas; an empty object is one leaf, "-".
func flatten(raw json.RawMessage, prefix string) [][2]string {
	ms, ok := members(raw)
	if !ok {
		return [][2]string{{prefix, scalar(raw)}}
	}
	if len(ms) == 0 && prefix != "" {
		return [][2]string{{prefix, "-"}}
	}
	var out [][2]string
	for _, m := range ms {
		name := m.name
		if prefix != "" {
			name = prefix + "." + m.name
		}
		out = append(out, flatten(m.value, name)...)
	}
	return out
}

// scalar formats a JSON value other than an object for a table.
func scalar(raw json.RawMessage) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return string(raw)
	}
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		return v
	case []any:
		items := make([]string, len(v))
		for i, it := range v {
			b, _ := json.Marshal(it)
			items[i] = scalar(b)
		}
		if len(items) == 0 {
			return "-"
		}
		return strings.Join(items, ",")
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
