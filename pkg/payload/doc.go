// Package payload turns webhook request bodies into event payloads: Decode
// parses a body, a Schema checks it against a trigger's JSON Schema, and a
// Mapping reshapes it with JSONPath expressions. The package does no I/O
// and never sees an HTTP type; everything it compiles is safe for
// concurrent use.
//
// # Content types
//
// Decode reads the Content-Type header value (parameters and case do not
// matter; a charset other than UTF-8 is refused with 415):
//
//   - application/json, text/json, any application/*+json, or no content
//     type at all: the body is JSON.
//   - application/x-www-form-urlencoded with a "payload" field, as GitHub
//     sends with its form content type and Slack with interactive
//     messages: the field's value is the JSON payload. Other fields are
//     ignored; a second "payload" field is refused.
//   - application/x-www-form-urlencoded without a "payload" field, as Slack
//     slash commands and Twilio send: the payload is an object of the form
//     fields, each a string, or an array of strings when the field repeats.
//   - application/x-www-form-urlencoded whose body, after leading
//     whitespace, starts with '{' or '[' and is JSON: the body is JSON.
//     This is what curl -d '{"a":1}' sends unless told otherwise, which CI
//     scripts do all the time. A body that starts that way but is not JSON
//     is read as a form after all; one that is JSON but breaks a rule below
//     (too deep, a duplicate key) is refused as JSON.
//   - anything else is refused with 415.
//
// # JSON rules
//
// A JSON body must be valid UTF-8 (the error gives the offset of the first
// bad byte), hold exactly one value, and that value must be an object or an
// array: a bare string or number is not an event, so it is refused with
// 400. A leading UTF-8 byte order mark is ignored, as RFC 8259 allows.
//
// Arrays and objects may nest at most MaxDepth levels. The check happens
// while parsing, which stops at the first bracket past the limit, so a deep
// body costs neither stack nor time.
//
// An object may not name the same key twice, even spelt differently ("a"
// and "\u0061"): such a body means one thing to a parser that keeps the
// first value and another to one that keeps the last, and a signature over
// it would vouch for both. The error names the key and the JSON pointer of
// the object.
//
// Numbers are kept exactly as sent: the compact output is the sender's own
// text without insignificant whitespace (not a re-encoding), so a
// 400-digit integer, 1.0 and 1e2 survive unchanged, and decoded numbers are
// json.Number. RFC 8259 lets a receiver limit numbers, and Decode refuses
// one longer than 1000 characters or with an exponent beyond ±1000: a
// schema check turns each number into an exact fraction, whose cost grows
// steeply with those sizes.
//
// \u0000 inside a string is valid JSON and accepted; a raw control
// character inside a string is not.
//
// # JSONPath and numbers
//
// Mappings use github.com/PaesslerAG/jsonpath with comparison operators
// that treat json.Number as a number, so $.items[?(@.price > 10)] works on
// decoded payloads. Numbers compare as 64-bit floats; a number never
// equals a string. A path that matches nothing (a missing key, an index
// out of range) yields null rather than an error.
package payload
