package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// publicRoutes answer without a token.
var publicRoutes = map[string]bool{
	"GET /healthz":             true,
	"GET /readyz":              true,
	"GET /metrics":             true,
	"GET /api/v1/openapi.json": true,
}

// concretePath fills a route's parameters with plausible values.
func concretePath(path string) string {
	r := strings.NewReplacer(":ref", "github.push", ":id", "evt_01J0000000000000000000000", ":webhook_key", "wh_x")
	return r.Replace(path)
}

func TestUnauthenticatedRequestsGet401(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	revoked, revokedToken, err := v.store.CreateToken(context.Background(), "revoked", store.OriginCLI)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.store.RevokeToken(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}

	auths := []struct {
		name, header string
	}{
		{"missing", ""},
		{"basic scheme", "Basic " + v.token},
		{"scheme only", "Bearer"},
		{"empty token", "Bearer "},
		{"two spaces", "Bearer  " + v.token},
		{"token with space", "Bearer " + v.token + " x"},
		{"token without scheme", v.token},
		{"unknown token", "Bearer inlet_unknown"},
		// Well formed, random, never issued: the shape of a real token
		// buys nothing.
		{"never issued", "Bearer " + store.TokenPrefix + trigger.RandomString(store.TokenLen-len(store.TokenPrefix))},
		{"token with a suffix", "Bearer " + v.token + "x"},
		{"revoked token", "Bearer " + string(revokedToken)},
	}

	var checked int
	for _, r := range v.e.Routes() {
		if r.Method == echo.RouteNotFound || publicRoutes[r.Method+" "+r.Path] {
			continue
		}
		checked++
		path := concretePath(r.Path)
		for _, a := range auths {
			t.Run(r.Method+" "+r.Path+"/"+a.name, func(t *testing.T) {
				body := ""
				if r.Method == http.MethodPost || r.Method == http.MethodPatch {
					body = `{}`
				}
				rec := v.doAuth(r.Method, path, body, a.header)
				assertUnauthorized(t, rec)
			})
		}
	}
	if checked < 28 {
		t.Fatalf("checked %d routes, want every authenticated route (at least 28)", checked)
	}

	// Paths and methods that do not exist answer 401 too, and 404 only
	// once authenticated.
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/triggers/no.such"},
		{http.MethodGet, "/api/v1/triggers/no.such/webhooks"},
		{http.MethodPost, "/api/v1/triggers/no.such/webhooks/enable"},
		{http.MethodGet, "/api/v1/triggers/github.push/nothing/here"},
		{http.MethodPut, "/api/v1/triggers/github.push"},
		{http.MethodGet, "/api/v1/triggers/"},
		{http.MethodGet, "/api/v1/events/evt_missing"},
		{http.MethodDelete, "/api/v1/events/evt_missing"},
		{http.MethodGet, "/api/v1/events/evt_missing/more"},
	} {
		t.Run("missing "+tc.method+" "+tc.path, func(t *testing.T) {
			assertUnauthorized(t, v.doAuth(tc.method, tc.path, "", ""))
			rec := v.do(tc.method, tc.path, "")
			if rec.Code != http.StatusNotFound {
				t.Errorf("authenticated %s %s = %d %s, want 404", tc.method, tc.path, rec.Code, rec.Body)
			}
		})
	}
}

func assertUnauthorized(t *testing.T, rec interface {
	Result() *http.Response
}) {
	t.Helper()
	res := rec.Result()
	defer res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", res.StatusCode)
	}
	if got := res.Header.Get("WWW-Authenticate"); got != `Bearer realm="inlet"` {
		t.Errorf("WWW-Authenticate = %q, want Bearer realm=\"inlet\"", got)
	}
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "about:blank", "title": "Unauthorized", "status": float64(401),
		"detail": "missing or invalid bearer token", "code": problem.Unauthorized,
	}
	if len(body) != len(want) {
		t.Errorf("body = %v, want exactly %v", body, want)
	}
	for k, w := range want {
		if body[k] != w {
			t.Errorf("body[%q] = %v, want %v", k, body[k], w)
		}
	}
}

func TestValidTokenSchemeIsCaseInsensitive(t *testing.T) {
	v := newEnv(t)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		rec := v.doAuth(http.MethodGet, "/api/v1/triggers", "", scheme+" "+v.token)
		if rec.Code != http.StatusOK {
			t.Errorf("%s token: status %d, want 200", scheme, rec.Code)
		}
	}
}

func TestTokenCheckFailureIs503(t *testing.T) {
	v := newEnv(t)
	db := storetest.New(t)
	broken := New(Options{Store: store.New(db, storetest.Keyring()), PublicURL: publicURL})
	db.Close()
	e := echo.New()
	e.HTTPErrorHandler = v.e.HTTPErrorHandler
	broken.Register(e)
	v.e = e
	rec := v.do(http.MethodGet, "/api/v1/triggers", "")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d %s, want 503", rec.Code, rec.Body)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if strings.Contains(rec.Body.String(), v.token) {
		t.Error("the 503 body carries the token")
	}
}

func TestPublicRoutesNeedNoToken(t *testing.T) {
	v := newEnv(t)
	for _, r := range v.e.Routes() {
		key := r.Method + " " + r.Path
		if !publicRoutes[key] {
			continue
		}
		if rec := v.doAuth(r.Method, r.Path, "", ""); rec.Code != http.StatusOK {
			t.Errorf("%s without a token = %d, want 200", key, rec.Code)
		}
	}
}

// A request served in-process with WithCaller is the caller's: it passes
// auth without a header, and its changes are recorded as the caller's. A
// header, when there is one, decides alone.
func TestWithCaller(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	ctx := context.Background()
	tok, _, err := v.store.CreateToken(ctx, "console user", store.OriginCLI)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(method, path, authorization string) int {
		req := httptest.NewRequest(method, path, nil).WithContext(WithCaller(ctx, tok))
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		v.e.ServeHTTP(rec, req)
		return rec.Code
	}
	if got := serve("POST", "/api/v1/triggers/github.push/webhooks/enable", ""); got != http.StatusOK {
		t.Fatalf("enable with a caller = %d, want 200", got)
	}
	var who string
	if err := v.store.DB().Get(&who, `SELECT token_name FROM activity WHERE action = 'webhook.enable' ORDER BY id DESC LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if who != "console user" {
		t.Errorf("enable recorded as %q, want the caller's token", who)
	}
	if got := serve("GET", "/api/v1/triggers", "Bearer inlet_wrong"); got != http.StatusUnauthorized {
		t.Errorf("caller with a wrong bearer token = %d, want 401", got)
	}
}
