package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/outcome"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// receiverPath is where package receiver registers the receiver.
const receiverPath = "/api/v1/webhooks/:webhook_key"

var operationMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(openAPI))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return doc
}

// echoRoutes returns "METHOD /path/{param}" for every route of an Echo with
// the API and a stub receiver.
func echoRoutes(t *testing.T) []string {
	t.Helper()
	e := echo.New()
	New(Options{}).Register(e)
	e.POST(receiverPath, func(c echo.Context) error { return nil })
	param := regexp.MustCompile(`:([A-Za-z_]+)`)
	var out []string
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		out = append(out, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestOpenAPIDescribesExactlyTheRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []string
	for path, item := range doc["paths"].(map[string]any) {
		for m := range item.(map[string]any) {
			if slices.Contains(operationMethods, m) {
				documented = append(documented, strings.ToUpper(m)+" "+path)
			}
		}
	}
	slices.Sort(documented)
	routes := echoRoutes(t)
	if !slices.Equal(documented, routes) {
		for _, r := range routes {
			if !slices.Contains(documented, r) {
				t.Errorf("route %s is not in openapi.json", r)
			}
		}
		for _, d := range documented {
			if !slices.Contains(routes, d) {
				t.Errorf("openapi.json documents %s, which no route serves", d)
			}
		}
	}
}

func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %v, want 3.1.x", doc["openapi"])
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Errorf("info = %v, want title and version", info)
	}
	components, _ := doc["components"].(map[string]any)
	schemes, _ := components["securitySchemes"].(map[string]any)
	bearer, _ := schemes["bearerAuth"].(map[string]any)
	if bearer["type"] != "http" || bearer["scheme"] != "bearer" {
		t.Errorf("securitySchemes.bearerAuth = %v, want an http bearer scheme", bearer)
	}
	if !sameJSON(doc["security"], `[{"bearerAuth":[]}]`) {
		t.Errorf("top-level security = %v, want bearerAuth", doc["security"])
	}

	// Every $ref resolves.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && resolve(doc, ref) == nil {
				t.Errorf("%s: $ref %s does not resolve", at, ref)
			}
			for k, c := range v {
				walk(c, at+"/"+k)
			}
		case []any:
			for _, c := range v {
				walk(c, at+"/[]")
			}
		}
	}
	walk(doc, "#")

	public := map[string]bool{receiverPath: true}
	for r := range publicRoutes {
		public[strings.SplitN(r, " ", 2)[1]] = true
	}
	ids := map[string]string{}
	pathParam := regexp.MustCompile(`\{([A-Za-z_]+)\}`)
	for path, it := range doc["paths"].(map[string]any) {
		item := it.(map[string]any)
		echoPath := pathParam.ReplaceAllString(path, ":$1")
		for _, m := range operationMethods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			where := strings.ToUpper(m) + " " + path
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s has no operationId", where)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %s used by %s and %s", id, prev, where)
			}
			ids[id] = where

			// Public operations say so; the others inherit bearerAuth and
			// document their 401.
			sec, hasSec := op["security"]
			responses, _ := op["responses"].(map[string]any)
			if public[echoPath] {
				if !hasSec || !sameJSON(sec, `[]`) {
					t.Errorf("%s is public but its security is %v", where, sec)
				}
			} else {
				if hasSec {
					t.Errorf("%s overrides security: %v", where, sec)
				}
				if responses["401"] == nil {
					t.Errorf("%s does not document 401", where)
				}
			}
			if len(responses) == 0 {
				t.Errorf("%s has no responses", where)
			}

			// Every {param} is declared as a required path parameter.
			declared := map[string]bool{}
			for _, list := range []any{item["parameters"], op["parameters"]} {
				ps, _ := list.([]any)
				for _, p := range ps {
					pm, _ := p.(map[string]any)
					if ref, ok := pm["$ref"].(string); ok {
						pm, _ = resolve(doc, ref).(map[string]any)
					}
					if pm["in"] == "path" && pm["required"] == true {
						declared[pm["name"].(string)] = true
					}
				}
			}
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s does not declare path parameter %s", where, m[1])
				}
			}
		}
	}

	// The receiver documents every status it can answer.
	recv := doc["paths"].(map[string]any)["/api/v1/webhooks/{webhook_key}"].(map[string]any)["post"].(map[string]any)
	for _, code := range []string{"200", "400", "401", "403", "404", "413", "415", "422", "429", "500", "503"} {
		if recv["responses"].(map[string]any)[code] == nil {
			t.Errorf("receiver does not document %s", code)
		}
	}
	schemas := components["schemas"].(map[string]any)
	for _, name := range []string{"Problem", "Trigger", "Webhook", "WebhookSettings", "WebhookSettingsPatch", "Event", "AuditRecord", "Regenerated"} {
		if schemas[name] == nil {
			t.Errorf("components.schemas lacks %s", name)
		}
	}
	outcomes := schemas["AuditRecord"].(map[string]any)["properties"].(map[string]any)["outcome"].(map[string]any)["enum"]
	want, _ := json.Marshal(outcome.All)
	if !sameJSON(outcomes, string(want)) {
		t.Errorf("AuditRecord.outcome enum = %v, want %s", outcomes, want)
	}
}

// sameJSON reports whether v marshals to the same JSON as want.
func sameJSON(v any, want string) bool {
	got, err := json.Marshal(v)
	if err != nil {
		return false
	}
	var a, b any
	_ = json.Unmarshal(got, &a)
	_ = json.Unmarshal([]byte(want), &b)
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	return bytes.Equal(ga, gb)
}

// resolve follows a local JSON pointer such as #/components/schemas/Event.
func resolve(doc map[string]any, ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[tok]
	}
	return cur
}

// TestProblemBodies pins the problem bodies clients see.
func TestProblemBodies(t *testing.T) {
	v := newEnv(t)
	v.createTrigger("github.push")
	tests := []struct {
		name, method, path, body, auth string
	}{
		{"unauthorized", http.MethodGet, "/api/v1/triggers", "", "none"},
		{"not_found", http.MethodGet, "/api/v1/triggers/no.such", "", ""},
		{"validation_failed", http.MethodPatch, "/api/v1/triggers/github.push/webhooks",
			`{"hmac":{"algorithm":"md5","salt":1},"rate_limit":{"requests":0}}`, ""},
		{"validation_failed_many", http.MethodPatch, "/api/v1/triggers/github.push/webhooks",
			`{"hmac":{"algorithm":"md5"},"rate_limit":{"requests":0},"ip_allowlist":{"enabled":true,"cidrs":["10.0.0.0/33"]}}`, ""},
		{"invalid_request", http.MethodPatch, "/api/v1/triggers/github.push/webhooks", `{"hmac":`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := "Bearer " + v.token
			if tt.auth == "none" {
				auth = ""
			}
			rec := v.doAuth(tt.method, tt.path, tt.body, auth)
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, rec.Body.Bytes(), "", "  "); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			golden(t, filepath.Join("testdata", "problem_"+tt.name+".json"), pretty.Bytes())
		})
	}
}

// golden compares got with a file in testdata/, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/api -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n got %s\nwant %s", path, got, want)
	}
}
