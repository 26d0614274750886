package store

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrBadCursor is a cursor this package did not produce.
var ErrBadCursor = errors.New("invalid cursor")

// The times a cursor may hold: years 1 to 9999.
var (
	minCursorMicros = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxCursorMicros = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
)

// Cursor is a position in a list ordered by (received_at, id) descending.
type Cursor struct {
	At time.Time
	ID string
}

// String encodes the cursor as an opaque token.
func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At.UnixMicro(), 10) + ":" + c.ID))
}

// ParseCursor decodes a token made by Cursor.String. An empty token is the
// zero Cursor, meaning the first page.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	at, id, ok := strings.Cut(string(b), ":")
	micros, err := strconv.ParseInt(at, 10, 64)
	// PostgreSQL stores years 4713 BC to 294276 AD; a cursor is a time
	// inlet wrote, so anything outside years 1 to 9999 was made by hand.
	if !ok || err != nil || id == "" || len(id) > 64 || micros < minCursorMicros || micros > maxCursorMicros {
		return Cursor{}, ErrBadCursor
	}
	for _, c := range []byte(id) {
		if c < 0x21 || c > 0x7e {
			return Cursor{}, ErrBadCursor
		}
	}
	return Cursor{At: time.UnixMicro(micros).UTC(), ID: id}, nil
}

// IsZero reports whether c is the first page.
func (c Cursor) IsZero() bool { return c.ID == "" }

// Page is the parameters of a list request.
type Page struct {
	Limit  int
	Cursor Cursor
}

// after returns the keyset condition, as parameters $1 and $2, for rows
// past the cursor; id is the cursor's id converted to the id column's type.
func (p Page) after(id any) (string, []any) {
	if p.Cursor.IsZero() {
		return "TRUE", nil
	}
	return "(received_at, id) < ($1, $2)", []any{p.Cursor.At, id}
}
