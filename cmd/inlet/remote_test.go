package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

const deployRef = "myapp.deployment_complete"

// startRemote runs inlet on a database and a stream of the test's own and
// returns it with the environment of a command line that reaches it: the
// URL and token in INLET_URL and INLET_TOKEN, and an empty data directory.
func startRemote(t *testing.T) (*server, map[string]string) {
	t.Helper()
	ns := natstest.New(t)
	s := startServe(t, map[string]string{
		"DATABASE_URL": storetest.NewURL(t), "NATS_URL": ns.URL, "INLET_STREAM": ns.Stream, "INLET_SUBJECT_PREFIX": ns.SubjectPrefix,
		"INLET_ADMIN_TOKEN": "inlet_remote-test-admin-token-00000000000", "INLET_PACKS_DIR": "../../packs", "INLET_DATA_DIR": t.TempDir(),
	})
	return s, map[string]string{"INLET_URL": s.base, "INLET_TOKEN": s.env["INLET_ADMIN_TOKEN"], "INLET_DATA_DIR": t.TempDir()}
}

// inlet runs the command line with env as the whole environment and
// returns its output and exit status. No token ever appears on stderr.
func inlet(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
	if err != nil {
		fmt.Fprintln(&errOut, "inlet:", err) // what main prints
	}
	for _, name := range []string{"INLET_TOKEN", "INLET_ADMIN_TOKEN"} {
		if tok := env[name]; tok != "" && strings.Contains(errOut.String(), tok) {
			t.Errorf("inlet %s wrote %s to stderr", strings.Join(args, " "), name)
		}
	}
	return out.String(), errOut.String(), exitCode(err)
}

// mustInlet is inlet for a command that must succeed.
func mustInlet(t *testing.T, env map[string]string, args ...string) (stdout, stderr string) {
	t.Helper()
	out, errOut, code := inlet(t, env, args...)
	if code != 0 {
		t.Fatalf("inlet %s: exit %d, stderr:\n%s", strings.Join(args, " "), code, errOut)
	}
	return out, errOut
}

// apiData returns the data of the API's answer to GET path, decoded.
func (s *server) apiData(path string) any {
	s.t.Helper()
	st, b := s.call("GET", path, "", map[string]string{"Authorization": "Bearer " + s.env["INLET_ADMIN_TOKEN"]})
	if st != 200 {
		s.t.Fatalf("GET %s = %d %s", path, st, b)
	}
	var v struct{ Data any }
	if err := json.Unmarshal(b, &v); err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return v.Data
}

// sameJSON checks that a command's -json output is want, the API's data.
func sameJSON(t *testing.T, what, out string, want any) {
	t.Helper()
	var got any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%s -json printed %q: %v", what, out, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s -json = %v, want the API's data %v", what, got, want)
	}
}

// postEvent sends a webhook to key and returns the new event's id.
func (s *server) postEvent(key, version string) string {
	s.t.Helper()
	st, b := s.call("POST", "/api/v1/webhooks/"+key, strings.Replace(deployBody, "1.0.0", version, 1), map[string]string{"Content-Type": "application/json"})
	if st != 200 {
		s.t.Fatalf("webhook: %d %s", st, b)
	}
	var r struct {
		Data struct {
			EventID string `json:"event_id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(b, &r)
	return r.Data.EventID
}

// field returns the value of a path of object members in v.
func field(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func TestTriggerCommands(t *testing.T) {
	s, env := startRemote(t)

	out, _ := mustInlet(t, env, "trigger", "list")
	if !regexp.MustCompile(`(?m)^REF\s+WEBHOOK\s+KEY\s+EVENTS\s+LAST USED$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(deployRef)+`\s+disabled\s+-\s+0\s+-$`).MatchString(out) {
		t.Errorf("trigger list before enabling =\n%s", out)
	}

	// enable prints the URL, and only the URL, on stdout.
	out, errOut := mustInlet(t, env, "trigger", "enable", deployRef)
	url := strings.TrimSpace(out)
	want := field(s.apiData("/api/v1/triggers/"+deployRef), "webhook_url")
	if url != want {
		t.Fatalf("trigger enable printed %q, want the webhook_url %v", out, want)
	}
	key := url[strings.LastIndex(url, "/")+1:]
	if strings.Contains(errOut, key) {
		t.Error("trigger enable wrote the key to stderr")
	}
	out, _ = mustInlet(t, env, "trigger", "enable", deployRef, "-json")
	sameJSON(t, "trigger enable", out, map[string]any{"id": field(s.apiData("/api/v1/triggers/"+deployRef), "id"),
		"ref": deployRef, "webhook_enabled": true, "webhook_key": key, "webhook_url": url})

	first := s.postEvent(key, "1.0.0")
	if first == "" {
		t.Fatal("no event id")
	}

	out, _ = mustInlet(t, env, "trigger", "list")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(deployRef) + `\s+enabled\s+` + regexp.QuoteMeta(key[:8]) + `…\s+1\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(out) {
		t.Errorf("trigger list after one event =\n%s\nwant %s enabled, key %s…, 1 event, a last use", out, deployRef, key[:8])
	}
	if strings.Contains(out, key) {
		t.Error("trigger list shows a whole key")
	}
	out, _ = mustInlet(t, env, "trigger", "list", "-json")
	sameJSON(t, "trigger list", out, s.apiData("/api/v1/triggers"))

	out, _ = mustInlet(t, env, "trigger", "show", deployRef)
	for _, re := range []string{`(?m)^ref\s+` + regexp.QuoteMeta(deployRef) + `$`, `(?m)^webhook\s+enabled$`, `(?m)^url\s+` + regexp.QuoteMeta(url) + `$`,
		`(?m)^events\s+1$`, `(?m)^requests\s+accepted 1$`, `(?m)^\s+hmac\.enabled\s+false$`, `(?m)^\s+payload_size_limit_kb\s+\d+$`, `(?m)^\s+ip_allowlist\.cidrs\s+-$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("trigger show does not match %s:\n%s", re, out)
		}
	}
	out, _ = mustInlet(t, env, "trigger", "show", deployRef, "-json")
	sameJSON(t, "trigger show", out, map[string]any{
		"trigger": s.apiData("/api/v1/triggers/" + deployRef), "webhook": s.apiData("/api/v1/triggers/" + deployRef + "/webhooks")})

	t.Run("set", func(t *testing.T) {
		out, errOut := mustInlet(t, env, "trigger", "set", deployRef, "rate_limit.enabled=true", "rate_limit.requests=60",
			"ip_allowlist.cidrs=127.0.0.0/8,10.0.0.0/8,192.168.0.0/16", "ip_allowlist.enabled=true",
			"payload_mapping.repo=$.repository.full_name", "payload_mapping.svc=$.service", "payload_size_limit_kb=512", "delivery_id=X-GitHub-Delivery")
		got := s.apiData("/api/v1/triggers/" + deployRef + "/webhooks")
		for _, tt := range []struct {
			path []string
			want any
		}{
			{[]string{"rate_limit", "enabled"}, true},
			{[]string{"rate_limit", "requests"}, 60.0},
			{[]string{"ip_allowlist", "enabled"}, true},
			{[]string{"ip_allowlist", "cidrs"}, []any{"127.0.0.0/8", "10.0.0.0/8", "192.168.0.0/16"}},
			{[]string{"payload_mapping"}, map[string]any{"repo": "$.repository.full_name", "svc": "$.service"}},
			{[]string{"payload_size_limit_kb"}, 512.0},
			{[]string{"delivery_id"}, "X-GitHub-Delivery"},
		} {
			if v := field(got, append([]string{"settings"}, tt.path...)...); !reflect.DeepEqual(v, tt.want) {
				t.Errorf("settings.%s = %v, want %v", strings.Join(tt.path, "."), v, tt.want)
			}
		}
		if !strings.Contains(errOut, "updated the webhook settings of "+deployRef) || !regexp.MustCompile(`(?m)^\s+rate_limit\.requests\s+60$`).MatchString(out) {
			t.Errorf("trigger set printed\n%s\nand said %q", out, errOut)
		}

		// An HMAC secret generated by inlet is printed, on stdout only,
		// and signs webhooks from then on.
		out, errOut = mustInlet(t, env, "trigger", "set", deployRef, "hmac.enabled=true")
		m := regexp.MustCompile(`(?m)^\s+hmac\.secret\s+(\S+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("trigger set hmac.enabled=true printed no secret:\n%s", out)
		}
		if strings.Contains(errOut, m[1]) {
			t.Error("trigger set wrote the generated secret to stderr")
		}
		if st, b := s.signedWebhook(key, m[1], strings.Replace(deployBody, "1.0.0", "1.1.0", 1)); st != 200 {
			t.Errorf("webhook signed with the printed secret: %d %s", st, b)
		}
		if out, _ := mustInlet(t, env, "trigger", "show", deployRef); strings.Contains(out, m[1]) || !strings.Contains(out, "hmac.secret_set") {
			t.Errorf("trigger show after the secret was set:\n%s", out)
		}
		mustInlet(t, env, "trigger", "set", deployRef, "hmac.enabled=false", "payload_mapping=null", "ip_allowlist.enabled=false")
		if v := field(s.apiData("/api/v1/triggers/"+deployRef+"/webhooks"), "settings", "payload_mapping"); !reflect.DeepEqual(v, map[string]any{}) {
			t.Errorf("payload_mapping after payload_mapping=null = %v, want none", v)
		}

		out, _ = mustInlet(t, env, "trigger", "set", deployRef, "rate_limit.window_seconds=120", "-json")
		sameJSON(t, "trigger set", out, s.apiData("/api/v1/triggers/"+deployRef+"/webhooks"))
	})

	t.Run("set refused", func(t *testing.T) {
		before := s.apiData("/api/v1/triggers/" + deployRef + "/webhooks")
		const secret = "a-secret-given-on-the-command-line-0001"
		out, errOut, code := inlet(t, env, "trigger", "set", deployRef, "rate_limit.requests=-5", "ip_allowlist.cidrs=10.0.0.0/33",
			"hmac.algorithm=md5", "hmac.secret="+secret)
		if code != exitFailure || out != "" {
			t.Errorf("trigger set with invalid values: exit %d, stdout %q; want 1 and nothing", code, out)
		}
		for _, f := range []string{"rate_limit.requests", "ip_allowlist.cidrs", "hmac.algorithm", "422 validation_failed"} {
			if !strings.Contains(errOut, f) {
				t.Errorf("stderr does not name %s:\n%s", f, errOut)
			}
		}
		if n := strings.Count(errOut, "\n  "); n < 3 {
			t.Errorf("stderr lists %d field errors, want one a line for each:\n%s", n, errOut)
		}
		if strings.Contains(errOut, secret) {
			t.Error("stderr shows the secret given on the command line")
		}
		if after := s.apiData("/api/v1/triggers/" + deployRef + "/webhooks"); !reflect.DeepEqual(after, before) {
			t.Errorf("a refused set changed the settings:\n%v\nwas\n%v", after, before)
		}
	})

	t.Run("regenerate", func(t *testing.T) {
		out, errOut := mustInlet(t, env, "trigger", "regenerate", deployRef, "-grace", "1h")
		newURL := strings.TrimSpace(out)
		if newURL == url || newURL != field(s.apiData("/api/v1/triggers/"+deployRef), "webhook_url") {
			t.Fatalf("trigger regenerate printed %q; old URL %s", out, url)
		}
		if !strings.Contains(errOut, "the previous key works until") {
			t.Errorf("trigger regenerate -grace 1h said %q", errOut)
		}
		s.postEvent(key, "1.2.0") // the previous key, in its grace period
		newKey := newURL[strings.LastIndex(newURL, "/")+1:]
		s.postEvent(newKey, "1.3.0")

		out, _ = mustInlet(t, env, "trigger", "regenerate", deployRef, "-json")
		var r map[string]any
		if err := json.Unmarshal([]byte(out), &r); err != nil || r["previous_key_revoked"] != true || r["webhook_url"] != field(s.apiData("/api/v1/triggers/"+deployRef), "webhook_url") {
			t.Errorf("trigger regenerate -json = %s (%v)", out, err)
		}
		if st, _ := s.call("POST", "/api/v1/webhooks/"+newKey, deployBody, map[string]string{"Content-Type": "application/json"}); st != 404 {
			t.Errorf("the key replaced without grace answered %d, want 404", st)
		}
	})

	t.Run("disable", func(t *testing.T) {
		_, errOut := mustInlet(t, env, "trigger", "disable", deployRef)
		if !strings.Contains(errOut, "disabled") || field(s.apiData("/api/v1/triggers/"+deployRef), "webhook_enabled") != false {
			t.Errorf("trigger disable: said %q; webhook_enabled %v", errOut, field(s.apiData("/api/v1/triggers/"+deployRef), "webhook_enabled"))
		}
		mustInlet(t, env, "trigger", "enable", deployRef)
	})
}

func TestKeyCommands(t *testing.T) {
	s, env := startRemote(t)
	mustInlet(t, env, "trigger", "enable", deployRef)

	out, errOut := mustInlet(t, env, "key", "add", deployRef, "-label", "staging", "-expires", "30d")
	url := strings.TrimSpace(out)
	key := url[strings.LastIndex(url, "/")+1:]
	if !strings.HasPrefix(key, "wh_") || !strings.Contains(errOut, "(staging)") || strings.Contains(errOut, key) {
		t.Fatalf("key add printed %q and said %q", out, errOut)
	}
	s.postEvent(key, "2.0.0")

	keys := s.apiData("/api/v1/triggers/" + deployRef + "/webhooks/keys").([]any)
	if len(keys) != 2 {
		t.Fatalf("keys after key add: %v", keys)
	}
	staging := keys[1].(map[string]any)
	if staging["label"] != "staging" || staging["url"] != url || staging["expires_at"] == nil || staging["last_used_at"] == nil {
		t.Errorf("the added key = %v, want label staging, its URL %s, an expiry and a use", staging, url)
	}
	id := fmt.Sprint(staging["id"])

	out, _ = mustInlet(t, env, "key", "list", deployRef)
	if !regexp.MustCompile(`(?m)^`+id+`\s+staging\s+`+regexp.QuoteMeta(key[:8])+`…\s+-\s+\S+Z\s+\S+Z\s+\S+Z$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^\d+\s+\S+\s+wh_\S+…\s+yes\s`).MatchString(out) {
		t.Errorf("key list =\n%s", out)
	}
	if strings.Contains(out, key) {
		t.Error("key list shows a whole key")
	}
	out, _ = mustInlet(t, env, "key", "list", deployRef, "-json")
	sameJSON(t, "key list", out, s.apiData("/api/v1/triggers/"+deployRef+"/webhooks/keys"))

	// The same label again, and the primary key: refused by the API.
	if _, errOut, code := inlet(t, env, "key", "add", deployRef, "-label", "staging"); code != exitFailure || !strings.Contains(errOut, "label: a live key") {
		t.Errorf("key add with a label in use: exit %d, %s", code, errOut)
	}
	primary := fmt.Sprint(keys[0].(map[string]any)["id"])
	if _, errOut, code := inlet(t, env, "key", "revoke", deployRef, primary); code != exitFailure || !strings.Contains(errOut, "409") {
		t.Errorf("key revoke of the primary key: exit %d, %s", code, errOut)
	}

	_, errOut = mustInlet(t, env, "key", "revoke", deployRef, id)
	if !strings.Contains(errOut, "revoked key "+id) {
		t.Errorf("key revoke said %q", errOut)
	}
	if st, _ := s.call("POST", "/api/v1/webhooks/"+key, deployBody, map[string]string{"Content-Type": "application/json"}); st != 404 {
		t.Errorf("the revoked key answered %d, want 404", st)
	}
	if n := len(s.apiData("/api/v1/triggers/" + deployRef + "/webhooks/keys").([]any)); n != 1 {
		t.Errorf("%d keys after the revoke, want the primary only", n)
	}
}

func TestEventsAndActivity(t *testing.T) {
	s, env := startRemote(t)
	out, _ := mustInlet(t, env, "trigger", "enable", deployRef)
	url := strings.TrimSpace(out)
	key := url[strings.LastIndex(url, "/")+1:]
	var ids []string
	for i := range 3 {
		ids = append(ids, s.postEvent(key, fmt.Sprintf("3.0.%d", i)))
	}

	out, _ = mustInlet(t, env, "events", "-trigger", deployRef, "-limit", "2")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^ID\s+TRIGGER\s+RECEIVED\s+SOURCE\s+DELIVERY ID$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^`+ids[2]+`\s+`+regexp.QuoteMeta(deployRef)+`\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+webhook\s+-$`).MatchString(lines[1]) ||
		!strings.HasPrefix(lines[2], ids[1]+" ") {
		t.Errorf("events -limit 2 =\n%s\nwant a header, then %s and %s", out, ids[2], ids[1])
	}
	out, _ = mustInlet(t, env, "events", "-trigger", deployRef, "-limit", "2", "-json")
	sameJSON(t, "events", out, s.apiData("/api/v1/events?trigger="+deployRef+"&limit=2"))

	out, _ = mustInlet(t, env, "activity", "-limit", "5")
	if !regexp.MustCompile(`(?m)^AT\s+TOKEN\s+ACTION\s+TARGET\s+CHANGES$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^\S+Z\s+INLET_ADMIN_TOKEN\s+webhook\.enable\s+`+regexp.QuoteMeta(deployRef)+`\s`).MatchString(out) {
		t.Errorf("activity =\n%s", out)
	}
	out, _ = mustInlet(t, env, "activity", "-json")
	sameJSON(t, "activity", out, s.apiData("/api/v1/activity?limit=20"))

	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, errOut lockedBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"events", "-follow", "-limit", "2", "-trigger", deployRef}, func(k string) string { return env[k] }, &out, &errOut)
		}()
		// The latest two first, oldest first.
		waitFor(t, 15*time.Second, "the latest events", func() bool { return strings.Contains(out.String(), ids[2]) })
		if o := out.String(); strings.Contains(o, ids[0]) || !strings.Contains(o, ids[1]) || strings.Index(o, ids[1]) > strings.Index(o, ids[2]) || !strings.HasPrefix(o, "ID ") {
			t.Errorf("events -follow began with\n%s\nwant a header, %s, then %s", o, ids[1], ids[2])
		}
		later := s.postEvent(key, "3.1.0")
		waitFor(t, 15*time.Second, "the event posted after -follow started", func() bool { return strings.Contains(out.String(), later) })
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("events -follow after an interrupt: %v, want nil (exit 0)", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("events -follow still running 10s after an interrupt")
		}
		if n := strings.Count(out.String(), later); n != 1 {
			t.Errorf("events -follow printed %s %d times", later, n)
		}
	})
}

// TestReplayCommand replays one event and a time range of events through
// the API's replay routes.
func TestReplayCommand(t *testing.T) {
	s, env := startRemote(t)
	out, _ := mustInlet(t, env, "trigger", "enable", deployRef)
	url := strings.TrimSpace(out)
	key := url[strings.LastIndex(url, "/")+1:]
	id := s.postEvent(key, "4.0.0")

	out, _ = mustInlet(t, env, "replay", id)
	replayed := strings.TrimSpace(out)
	ev := s.apiData("/api/v1/events/" + replayed)
	if field(ev, "source") != "replay" || field(ev, "metadata", "replay_of") != id {
		t.Errorf("replay %s printed %s, which is %v", id, replayed, ev)
	}
	out, _ = mustInlet(t, env, "replay", id, "-json")
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("replay -json printed %q: %v", out, err)
	}
	sameJSON(t, "replay", out, s.apiData("/api/v1/events/"+fmt.Sprint(got["id"])))

	out, errOut := mustInlet(t, env, "replay", "-trigger", deployRef, "-since", "1h", "-limit", "2")
	ids := strings.Fields(out)
	if len(ids) != 2 || !strings.Contains(errOut, "replayed 2 events of "+deployRef) {
		t.Fatalf("replay -trigger -since 1h -limit 2 printed %q and said %q, want two new ids", out, errOut)
	}
	for _, n := range ids {
		if ev := s.apiData("/api/v1/events/" + n); field(ev, "source") != "replay" || field(ev, "trigger_ref") != deployRef {
			t.Errorf("replay -trigger printed %s, which is %v", n, ev)
		}
	}
	// Nothing was received an hour before: -until bounds the range.
	if out, errOut := mustInlet(t, env, "replay", "-trigger", deployRef, "-since", "2h", "-until", "1h"); out != "" || !strings.Contains(errOut, "replayed 0 events") {
		t.Errorf("replay -since 2h -until 1h printed %q and said %q, want nothing replayed", out, errOut)
	}
	if _, errOut, code := inlet(t, env, "replay", "-trigger", deployRef, "-since", "1h", "-until", "2h"); code != exitFailure || !strings.Contains(errOut, "until: must be after since") {
		t.Errorf("replay with until before since: exit %d, %s", code, errOut)
	}
	out, _ = mustInlet(t, env, "replay", "-trigger", deployRef, "-since", "1h", "-json")
	var r struct {
		Replayed int      `json:"replayed"`
		EventIDs []string `json:"event_ids"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Replayed < 3 || len(r.EventIDs) != r.Replayed {
		t.Errorf("replay -json = %s (%v)", out, err)
	}
	if _, errOut, code := inlet(t, env, "replay", "evt_00000000000000000000000000"); code != exitFailure || !strings.Contains(errOut, "404") {
		t.Errorf("replay of an unknown event: exit %d, %s", code, errOut)
	}
}

// TestRemoteExitCodes: the exit status says what went wrong, and stderr
// why, without the token.
func TestRemoteExitCodes(t *testing.T) {
	_, env := startRemote(t)
	closed := freeAddr(t) // nothing listens there
	unreachable := map[string]string{"INLET_URL": "http://" + closed, "INLET_TOKEN": env["INLET_TOKEN"], "INLET_DATA_DIR": t.TempDir()}
	noToken := map[string]string{"INLET_URL": env["INLET_URL"], "INLET_DATA_DIR": t.TempDir()}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"unknown trigger", env, []string{"trigger", "show", "no.such"}, exitFailure, "404 not_found: trigger not found"},
		{"enable unknown trigger", env, []string{"trigger", "enable", "no.such"}, exitFailure, "404"},
		{"set refused", env, []string{"trigger", "set", deployRef, "rate_limit.requests=0"}, exitFailure, "rate_limit.requests"},
		{"unknown setting", env, []string{"trigger", "set", deployRef, "colour=blue"}, exitFailure, "colour: unknown field"},
		{"wrong token", map[string]string{"INLET_URL": env["INLET_URL"], "INLET_TOKEN": "inlet_wrong"}, []string{"trigger", "list"}, exitFailure, "401"},
		{"unreachable", unreachable, []string{"trigger", "list"}, exitUnreachable, "cannot reach inlet at http://" + closed},
		{"unreachable set", unreachable, []string{"trigger", "set", deployRef, "hmac.secret=s3cret-value-0001"}, exitUnreachable, "connection refused"},
		{"no token", noToken, []string{"trigger", "list"}, exitUsage, "INLET_TOKEN"},
		{"no command", env, []string{"trigger"}, exitUsage, "trigger needs a subcommand"},
		{"unknown subcommand", env, []string{"trigger", "frob"}, exitUsage, `unknown trigger subcommand "frob"`},
		{"unknown command", env, []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"missing ref", env, []string{"trigger", "show"}, exitUsage, "trigger show needs more arguments"},
		{"extra argument", env, []string{"trigger", "show", deployRef, "x"}, exitUsage, `unexpected argument "x"`},
		{"unknown flag", env, []string{"trigger", "list", "-colour"}, exitUsage, "flag provided but not defined: -colour"},
		{"not KEY=VALUE", env, []string{"trigger", "set", deployRef, "hmac.enabled"}, exitUsage, `"hmac.enabled" is not KEY=VALUE`},
		{"twice", env, []string{"trigger", "set", deployRef, "delivery_id=a", "delivery_id=b"}, exitUsage, "delivery_id is given twice"},
		{"bad grace", env, []string{"trigger", "regenerate", deployRef, "-grace", "soon"}, exitUsage, "-grace"},
		{"key without label", env, []string{"key", "add", deployRef}, exitUsage, "key add needs -label"},
		{"key id not a number", env, []string{"key", "revoke", deployRef, "one"}, exitUsage, `key id "one" is not a number`},
		{"bad limit", env, []string{"events", "-limit", "0"}, exitUsage, "-limit must be between 1 and 1000"},
		{"replay both", env, []string{"replay", "evt_x", "-trigger", deployRef}, exitUsage, "not both"},
		{"replay without since", env, []string{"replay", "-trigger", deployRef}, exitUsage, "replay needs"},
		{"bad url", map[string]string{"INLET_URL": "localhost:8080", "INLET_TOKEN": "x"}, []string{"trigger", "list"}, exitUsage, "INLET_URL is not an http or https URL"},
		{"token list usage", env, []string{"token", "frob", "x"}, exitUsage, `unknown token subcommand "frob"`},
		{"help", env, []string{"trigger", "list", "-h"}, exitOK, "usage: inlet trigger list"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := inlet(t, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("inlet %s: exit %d, stderr:\n%s\nwant exit %d and %q", strings.Join(tt.args, " "), code, errOut, tt.code, tt.want)
			}
			if tt.code != exitOK && out != "" {
				t.Errorf("inlet %s printed %q on stdout", strings.Join(tt.args, " "), out)
			}
			if strings.Contains(errOut, "s3cret-value-0001") {
				t.Error("stderr shows a secret given on the command line")
			}
		})
	}
	if _, _, code := inlet(t, env, "trigger", "list"); code != exitOK {
		t.Errorf("trigger list: exit %d, want 0", code)
	}
}

// TestExitStatusOfTheProcess runs the inlet binary's main (this test
// binary, started again) to check the statuses a CI step sees.
func TestExitStatusOfTheProcess(t *testing.T) {
	_, env := startRemote(t)
	for _, tt := range []struct {
		args []string
		url  string
		code int
	}{
		{[]string{"trigger", "list"}, env["INLET_URL"], 0},
		{[]string{"trigger", "show", "no.such"}, env["INLET_URL"], 1},
		{[]string{"trigger", "show"}, env["INLET_URL"], 2},
		{[]string{"trigger", "list"}, "http://" + freeAddr(t), 3},
		{[]string{"trigger", "list", "-h"}, env["INLET_URL"], 0},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Env = []string{"INLET_TEST_MAIN=1", "INLET_URL=" + tt.url, "INLET_TOKEN=" + env["INLET_TOKEN"], "INLET_DATA_DIR=" + env["INLET_DATA_DIR"]}
			var errOut bytes.Buffer
			cmd.Stderr = &errOut
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("inlet %s exited %d, want %d; stderr:\n%s", strings.Join(tt.args, " "), code, tt.code, errOut.String())
			}
		})
	}
}

// TestTokenFromDataDir: beside an inlet on its embedded database, with no
// INLET_URL and no token in the environment, the command line finds inlet
// from its configuration and uses the token inlet generated into its data
// directory.
func TestTokenFromDataDir(t *testing.T) {
	ns := natstest.New(t)
	dataDir := t.TempDir()
	s := startServe(t, map[string]string{
		"NATS_URL": ns.URL, "INLET_STREAM": ns.Stream, "INLET_SUBJECT_PREFIX": ns.SubjectPrefix,
		"INLET_PACKS_DIR": "../../packs", "INLET_DATA_DIR": dataDir,
	})
	if _, err := os.Stat(filepath.Join(dataDir, "admin-token")); err != nil {
		t.Fatalf("inlet on its embedded database kept no token file: %v", err)
	}
	env := map[string]string{"INLET_DATA_DIR": dataDir, "INLET_HTTP_ADDR": s.env["INLET_HTTP_ADDR"]}
	out, _ := mustInlet(t, env, "trigger", "show", deployRef)
	if !strings.Contains(out, deployRef) {
		t.Errorf("trigger show with the data directory's token printed\n%s", out)
	}
	tok := readKeys(t, filepath.Join(dataDir, "admin-token"))
	env["INLET_TOKEN"] = "inlet_not-this-one"
	if _, errOut, code := inlet(t, env, "trigger", "list"); code != exitFailure || !strings.Contains(errOut, "401") || strings.Contains(errOut, tok) {
		t.Errorf("INLET_TOKEN did not take precedence over the file: exit %d, %s", code, errOut)
	}
}

func TestAPIBase(t *testing.T) {
	cfg := func(addr, public string) config.Config {
		c := config.Default()
		c.HTTPAddr, c.PublicURL = addr, public
		return c
	}
	for _, tt := range []struct {
		name      string
		cfg       config.Config
		flag, env string
		want      string
	}{
		{"default", cfg(":8080", ""), "", "", "http://127.0.0.1:8080"},
		{"IPv4 any", cfg("0.0.0.0:9000", ""), "", "", "http://127.0.0.1:9000"},
		{"IPv6 any", cfg("[::]:9000", ""), "", "", "http://[::1]:9000"},
		{"one address", cfg("10.1.2.3:80", ""), "", "", "http://10.1.2.3:80"},
		{"public_url", cfg(":8080", "https://hooks.example.com/"), "", "", "https://hooks.example.com"},
		{"INLET_URL", cfg(":8080", "https://hooks.example.com"), "", "http://127.0.0.1:7000/", "http://127.0.0.1:7000"},
		{"-url", cfg(":8080", ""), "http://[::1]:7001", "http://127.0.0.1:7000", "http://[::1]:7001"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := apiBase(tt.cfg, tt.flag, tt.env)
			if err != nil || u.String() != tt.want {
				t.Errorf("apiBase = %v, %v; want %s", u, err, tt.want)
			}
		})
	}
	if _, err := apiBase(cfg(":8080", ""), "", "http://user:pw@127.0.0.1:8080"); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("INLET_URL with credentials: %v, want an error that does not show them", err)
	}
}

func TestSettingsBody(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pairs []string
		want  string
	}{
		{"bool and number", []string{"hmac.enabled=true", "rate_limit.requests=60"}, `{"hmac":{"enabled":true},"rate_limit":{"requests":60}}`},
		{"list", []string{"ip_allowlist.cidrs=10.0.0.0/8, 192.168.0.0/16"}, `{"ip_allowlist":{"cidrs":["10.0.0.0/8","192.168.0.0/16"]}}`},
		{"list as JSON", []string{`ip_allowlist.cidrs=["10.0.0.0/8"]`}, `{"ip_allowlist":{"cidrs":["10.0.0.0/8"]}}`},
		{"empty list", []string{"ip_allowlist.cidrs="}, `{"ip_allowlist":{"cidrs":[]}}`},
		{"mapping", []string{"payload_mapping.repo=$.repository.full_name", "payload_mapping.a.b=$.x"}, `{"payload_mapping":{"a.b":"$.x","repo":"$.repository.full_name"}}`},
		{"null", []string{"payload_mapping=null"}, `{"payload_mapping":null}`},
		{"string", []string{"delivery_id=X-GitHub-Delivery"}, `{"delivery_id":"X-GitHub-Delivery"}`},
		{"quoted number", []string{`hmac.header="123"`}, `{"hmac":{"header":"123"}}`},
		{"object", []string{`rate_limit={"enabled":true,"requests":5}`}, `{"rate_limit":{"enabled":true,"requests":5}}`},
		{"empty string", []string{"hmac.preset="}, `{"hmac":{"preset":""}}`},
		{"value with =", []string{"delivery_id=$.a=b"}, `{"delivery_id":"$.a=b"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, _, err := settingsBody(tt.pairs)
			got, _ := json.Marshal(body)
			if err != nil || string(got) != tt.want {
				t.Errorf("settingsBody(%q) = %s, %v; want %s", tt.pairs, got, err, tt.want)
			}
		})
	}
	_, secrets, _ := settingsBody([]string{"hmac.secret=abc", `rate_limit={"enabled":true}`})
	if len(secrets) != 1 || secrets[0] != "abc" {
		t.Errorf("secrets of hmac.secret=abc = %q", secrets)
	}
	for _, bad := range [][]string{{"x"}, {"=1"}, {"hmac..enabled=true"}, {"hmac=1", "hmac.enabled=true"}, {"a=1", "a=2"}} {
		if _, _, err := settingsBody(bad); exitCode(err) != exitUsage {
			t.Errorf("settingsBody(%q): %v, want a usage error", bad, err)
		}
	}
}

// TestFlatten: show lists settings, and health when the API has it, under
// the dotted names set takes, in the API's order.
func TestFlatten(t *testing.T) {
	for _, tt := range []struct {
		name, raw, prefix string
		want              [][2]string
	}{
		{"settings", `{"hmac":{"enabled":true,"preset":""},"ip_allowlist":{"cidrs":["10.0.0.0/8","::1/128"]},"payload_mapping":{},"payload_size_limit_kb":512}`, "",
			[][2]string{{"hmac.enabled", "true"}, {"hmac.preset", ""}, {"ip_allowlist.cidrs", "10.0.0.0/8,::1/128"}, {"payload_mapping", "-"}, {"payload_size_limit_kb", "512"}}},
		{"health", `{"status":"failing","last_accepted_at":null,"accepted_1h":3,"rejected_1h":12}`, "health",
			[][2]string{{"health.status", "failing"}, {"health.last_accepted_at", "-"}, {"health.accepted_1h", "3"}, {"health.rejected_1h", "12"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := flatten(json.RawMessage(tt.raw), tt.prefix); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("flatten(%s) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
	if got := requestCounts(json.RawMessage(`{"accepted":4,"signature_invalid":0,"rate_limited":2}`)); got != "accepted 4, rate_limited 2" {
		t.Errorf("requestCounts = %q", got)
	}
}
