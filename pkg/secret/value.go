package secret

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// redacted is what a non-empty Value shows instead of itself.
const redacted = "REDACTED"

// Value is a secret string: an HMAC secret, a token, a header value. Printed
// with any fmt verb, logged with slog, or marshalled as text, JSON or YAML,
// a non-empty Value shows as REDACTED and an empty one as the empty string,
// so a struct that holds one can be printed, logged and encoded safely. Only
// an explicit string(v) reveals it; convert at the one place that needs it.
//
// Decoding is not redacted: json.Unmarshal and YAML decoders store the
// given string in a Value as in any string, which is how a secret arrives
// in a request body or a configuration file.
//
// Three uses bypass the methods below and show the value in clear, because
// the printer or encoder never calls them: a Value in an unexported struct
// field printed with fmt, which cannot call methods of unexported fields
// (keep Values in exported fields, or give the struct a String method); the
// %p verb, which is a misuse go vet reports; and a Value as a map key in
// encoding/json, which writes string keys as they are.
type Value string

// String returns REDACTED, or "" when v is empty.
func (v Value) String() string {
	if v == "" {
		return ""
	}
	return redacted
}

// GoString returns the same redacted form as String, for printers that ask
// for a Go-syntax representation.
func (v Value) GoString() string { return v.String() }

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, %q,
// %x, %X, %d and the rest) prints the redacted form. %q quotes it; a width
// pads it, on the left unless the '-' flag is set.
func (v Value) Format(f fmt.State, verb rune) {
	s := v.String()
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	if w, ok := f.Width(); ok && w > len(s) {
		pad := strings.Repeat(" ", w-len(s))
		if f.Flag('-') {
			s += pad
		} else {
			s = pad + s
		}
	}
	// A write error belongs to the fmt caller, who learns of it from the
	// underlying writer; a Formatter has no way to report it.
	_, _ = f.Write([]byte(s))
}

// LogValue implements slog.LogValuer with the redacted form.
func (v Value) LogValue() slog.Value { return slog.StringValue(v.String()) }

// MarshalText implements encoding.TextMarshaler with the redacted form, which
// YAML and XML encoders use.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// MarshalJSON implements json.Marshaler: a JSON string holding the redacted
// form.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(v.String())), nil }
