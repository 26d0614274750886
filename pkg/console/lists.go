package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// pageSize is how many rows a console list shows at once.
const pageSize = 50

// callList sends an in-process GET to a list of the management API and
// decodes its "data" into out; it returns the cursor of the next page, ""
// on the last. An answer other than 2xx is an *apiError.
func (h *Console) callList(c echo.Context, path string, q url.Values, out any) (string, error) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	rec, err := h.serve(c, http.MethodGet, path, nil, nil)
	if err != nil {
		return "", err
	}
	if rec.status >= 300 {
		return "", decodeProblem(rec)
	}
	env := struct {
		Data       any     `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}{Data: out}
	if err := json.Unmarshal(rec.body.Bytes(), &env); err != nil {
		return "", fmt.Errorf("decode the answer of GET %s: %w", path, err)
	}
	if env.NextCursor == nil {
		return "", nil
	}
	return *env.NextCursor, nil
}

// pager holds the links between the pages of a list, newest first.
type pager struct {
	// Newest is the first page, set when this page is a later one.
	Newest string
	// Older is the next page, "" on the last.
	Older string
}

// newPager makes the links of a list at path with the filters q, whose
// current page started at cursor and whose next page starts at next.
func newPager(path string, q url.Values, cursor, next string) pager {
	var p pager
	link := func(cur string) string {
		v := url.Values{}
		for k, vs := range q {
			if len(vs) > 0 && vs[0] != "" {
				v.Set(k, vs[0])
			}
		}
		if cur != "" {
			v.Set("cursor", cur)
		}
		if len(v) == 0 {
			return path
		}
		return path + "?" + v.Encode()
	}
	if cursor != "" {
		p.Newest = link("")
	}
	if next != "" {
		p.Older = link(next)
	}
	return p
}

// shutdown ends what outlives a request (the audit log's streams) when
// the server stops: Close closes its channel.
type shutdown struct {
	mu     sync.Mutex
	ch     chan struct{}
	closed bool
}

func (s *shutdown) done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *shutdown) close() {
	s.done()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// Close ends the console's long-lived answers, the audit log's live
// streams, so that the HTTP server's graceful shutdown need not wait for
// them. Register it with http.Server.RegisterOnShutdown. It is safe to
// call more than once and concurrently with requests.
func (h *Console) Close() { h.stop.close() }

// failed answers a form post whose API call was refused (a 4xx): the
// browser goes back to the page at to, which shows the API's own message.
// Other errors are returned, for the error page.
func (h *Console) failed(c echo.Context, to string, err error) error {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusUnauthorized {
		msg := ae.Detail
		for f, m := range ae.Fields {
			msg += "; " + f + " " + m
		}
		return h.redirect(c, to, &flash{Kind: "error", Message: upperFirst(msg) + "."})
	}
	return err
}

// upperFirst capitalizes the first letter of a message of the API's.
func upperFirst(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}
