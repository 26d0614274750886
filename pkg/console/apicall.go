package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/api"
)

// apiError is an answer of the management API other than success, as
// its problem detail says it.
type apiError struct {
	Status int
	Code   string
	Detail string
	// Fields maps each invalid field of a 422 to the API's message.
	Fields map[string]string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("management API answered %d %s: %s", e.Status, e.Code, e.Detail)
}

// recorder is an in-memory http.ResponseWriter for requests served
// in-process.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

// serve sends an in-process request for the console's request c to
// method and path (under /api/v1), with body as JSON (nil for none) or,
// when it is []byte, as is, with header. It carries the operator's
// session token (api.WithCaller) and network address.
func (h *Console) serve(c echo.Context, method, path string, body any, header http.Header) (*recorder, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		r = bytes.NewReader(j)
	}
	orig := c.Request()
	ctx := orig.Context()
	if s := sessionOf(c); s != nil {
		ctx = api.WithCaller(ctx, s.token)
	}
	req, err := http.NewRequestWithContext(ctx, method, path, r)
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %w", method, path, err)
	}
	if req.Body == nil {
		// Handlers may read the body, as a server's request always has one.
		req.Body = http.NoBody
	}
	req.Host = orig.Host
	// The receiver and the API see the operator's address, as the
	// gateway's trusted proxies make it out.
	req.RemoteAddr = orig.RemoteAddr
	for _, name := range []string{echo.HeaderXForwardedFor, echo.HeaderXRealIP, "User-Agent"} {
		if v := orig.Header.Get(name); v != "" {
			req.Header.Set(name, v)
		}
	}
	if body != nil {
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	for name, vs := range header {
		req.Header[name] = vs
	}
	rec := &recorder{header: http.Header{}}
	h.handler.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec, nil
}

// call sends an in-process request to the management API (see serve) and
// decodes the "data" member of its answer into out (unless nil). An answer
// other than 2xx is an *apiError.
func (h *Console) call(c echo.Context, method, path string, body, out any) error {
	rec, err := h.serve(c, method, path, body, nil)
	if err != nil {
		return err
	}
	if rec.status >= 300 {
		return decodeProblem(rec)
	}
	if out == nil || rec.status == http.StatusNoContent {
		return nil
	}
	env := struct {
		Data any `json:"data"`
	}{Data: out}
	if err := json.Unmarshal(rec.body.Bytes(), &env); err != nil {
		return fmt.Errorf("decode the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// decodeProblem reads a problem detail into an *apiError.
func decodeProblem(rec *recorder) *apiError {
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Errors []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	e := &apiError{Status: rec.status}
	if json.Unmarshal(rec.body.Bytes(), &p) == nil {
		e.Code, e.Detail = p.Code, p.Detail
		for _, f := range p.Errors {
			if e.Fields == nil {
				e.Fields = map[string]string{}
			}
			if prev, ok := e.Fields[f.Field]; ok {
				e.Fields[f.Field] = prev + "; " + f.Message
			} else {
				e.Fields[f.Field] = f.Message
			}
		}
	}
	if e.Detail == "" {
		e.Detail = strings.ToLower(http.StatusText(rec.status))
	}
	return e
}
