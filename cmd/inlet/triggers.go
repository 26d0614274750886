package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/inlet-dev/inlet/pkg/api"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

var triggerGroup = commandGroup{
	name: "trigger",
	usage: "inlet trigger list | show REF | enable REF | disable REF | regenerate REF [-grace DURATION]\n" +
		"       | set REF KEY=VALUE...",
	about: "Shows and changes triggers and their webhooks. REF is a trigger's ref\n" +
		"(myapp.deployment_complete) or its numeric id. 'inlet trigger SUBCOMMAND -h'\n" +
		"describes each subcommand.",
	subs: []subcommand{
		{"list", triggerList},
		{"show", triggerShow},
		{"enable", triggerEnable},
		{"disable", triggerDisable},
		{"regenerate", triggerRegenerate},
		{"set", triggerSet},
	},
}

var keyGroup = commandGroup{
	name:  "key",
	usage: "inlet key list REF | key add REF -label LABEL [-expires DURATION] | key revoke REF ID",
	about: "Manages the webhook keys of a trigger: besides its primary key, a trigger\n" +
		"holds up to 9 extra keys, each with its own URL, so that each sender can be\n" +
		"revoked alone. 'inlet key SUBCOMMAND -h' describes each subcommand.",
	subs: []subcommand{
		{"list", keyList},
		{"add", keyAdd},
		{"revoke", keyRevoke},
	},
}

// webhookData is a trigger's webhook as the API shows it, with its
// settings, request counts and health left as sent, to be printed member
// by member in the server's order and names.
type webhookData struct {
	api.Webhook
	Settings json.RawMessage `json:"settings"`
	Stats    struct {
		Requests json.RawMessage `json:"requests"`
	} `json:"stats"`
	// Health is shown when the API has it.
	Health json.RawMessage `json:"health"`
}

// triggerPath is the API path of the trigger ref names, followed by rest.
func triggerPath(ref, rest string) string {
	return "/api/v1/triggers/" + url.PathEscape(ref) + rest
}

// decode unmarshals an answer's data.
func decode(a *answer, v any) error {
	if err := json.Unmarshal(a.Data, v); err != nil {
		return fmt.Errorf("read the API's answer: %w", err)
	}
	return nil
}

// keyShown is what tables show of a key: its prefix, never all of it.
func keyShown(k *string) string {
	if k == nil || *k == "" {
		return "-"
	}
	return trigger.KeyPrefix(*k) + "…"
}

func enabled(b bool) string {
	if b {
		return "enabled"
	}
	return "disabled"
}

func triggerList(ctx context.Context, args []string, e env) error {
	c, _, err := e.connect(remoteCmd{
		name: "trigger list", synopsis: "inlet trigger list [-json]",
		about: "Lists the triggers with their webhook: enabled or not, the prefix of its key,\n" +
			"its events and when it was last used. -json prints the API's list of triggers\n" +
			"(GET /api/v1/triggers), whose items hold the full keys and URLs.",
	}, args)
	if err != nil {
		return err
	}
	a, err := c.do(ctx, "GET", "/api/v1/triggers", nil)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(a.Data)
	}
	var ts []api.Trigger
	if err := decode(a, &ts); err != nil {
		return err
	}
	tw := newTable(c.stdout)
	row(tw, "REF", "WEBHOOK", "KEY", "EVENTS", "LAST USED")
	for _, t := range ts {
		wa, err := c.do(ctx, "GET", triggerPath(t.Ref, "/webhooks"), nil)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			continue // deleted since the list was read
		}
		if err != nil {
			return err
		}
		var w webhookData
		if err := decode(wa, &w); err != nil {
			return err
		}
		row(tw, t.Ref, enabled(t.WebhookEnabled), keyShown(t.WebhookKey), strconv.FormatInt(w.TotalEvents, 10), when(w.LastUsedAt))
	}
	return tw.Flush()
}

func triggerShow(ctx context.Context, args []string, e env) error {
	c, ops, err := e.connect(remoteCmd{
		name: "trigger show", synopsis: "inlet trigger show REF [-json]",
		about: "Shows a trigger and its webhook: its URL, when it was last used, its events,\n" +
			"the receiver's answers by outcome, its health when inlet reports one, and its\n" +
			"settings under the names 'inlet trigger set' takes. -json prints\n" +
			`{"trigger": <GET /api/v1/triggers/REF>, "webhook": <GET .../webhooks>}, each the API's data.`,
		minArgs: 1, maxArgs: 1,
	}, args)
	if err != nil {
		return err
	}
	ta, err := c.do(ctx, "GET", triggerPath(ops[0], ""), nil)
	if err != nil {
		return err
	}
	wa, err := c.do(ctx, "GET", triggerPath(ops[0], "/webhooks"), nil)
	if err != nil {
		return err
	}
	if c.asJSON {
		b, err := json.Marshal(map[string]json.RawMessage{"trigger": ta.Data, "webhook": wa.Data})
		if err != nil {
			return err
		}
		return c.printJSON(b)
	}
	var t api.Trigger
	var w webhookData
	if err := decode(ta, &t); err != nil {
		return err
	}
	if err := decode(wa, &w); err != nil {
		return err
	}
	schema := "none"
	if len(t.PayloadSchema) > 0 && string(t.PayloadSchema) != "null" {
		schema = "yes (see -json)"
	}
	webhookURL := "-"
	if w.WebhookURL != nil {
		webhookURL = *w.WebhookURL
	}
	tw := newTable(c.stdout)
	row(tw, "ref", t.Ref)
	row(tw, "id", strconv.FormatInt(t.ID, 10))
	row(tw, "pack", t.Pack)
	row(tw, "description", t.Description)
	row(tw, "schema", schema)
	row(tw, "webhook", enabled(w.Enabled))
	row(tw, "url", webhookURL)
	row(tw, "key created", when(w.CreatedAt))
	row(tw, "last used", when(w.LastUsedAt))
	row(tw, "events", strconv.FormatInt(w.TotalEvents, 10))
	row(tw, "requests", requestCounts(w.Stats.Requests))
	if len(w.Health) > 0 && string(w.Health) != "null" {
		for _, kv := range flatten(w.Health, "health") {
			row(tw, kv[0], kv[1])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "\nsettings (as 'inlet trigger set' names them):")
	return printSettings(c, w.Settings)
}

// requestCounts formats the non-zero counts of requests by outcome.
func requestCounts(raw json.RawMessage) string {
	var parts []string
	ms, _ := members(raw)
	for _, m := range ms {
		if n := scalar(m.value); n != "0" {
			parts = append(parts, m.name+" "+n)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// printSettings writes webhook settings as dotted names and values.
func printSettings(c *client, settings json.RawMessage) error {
	tw := newTable(c.stdout)
	for _, kv := range flatten(settings, "") {
		row(tw, "  "+kv[0], kv[1])
	}
	return tw.Flush()
}

func triggerEnable(ctx context.Context, args []string, e env) error {
	return switchWebhook(ctx, args, e, true)
}

func triggerDisable(ctx context.Context, args []string, e env) error {
	return switchWebhook(ctx, args, e, false)
}

func switchWebhook(ctx context.Context, args []string, e env, on bool) error {
	rc := remoteCmd{
		name: "trigger enable", synopsis: "inlet trigger enable REF [-json]",
		about: "Enables a trigger's webhook, creating its primary key if it has none, and\n" +
			"prints its URL on stdout.",
		minArgs: 1, maxArgs: 1,
	}
	verb := "enable"
	if !on {
		rc.name, rc.synopsis, verb = "trigger disable", "inlet trigger disable REF [-json]", "disable"
		rc.about = "Disables a trigger's webhook: every key of it is refused from the next request,\n" +
			"on every instance, and works again when the webhook is enabled."
	}
	c, ops, err := e.connect(rc, args)
	if err != nil {
		return err
	}
	a, err := c.do(ctx, "POST", triggerPath(ops[0], "/webhooks/"+verb), nil)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(a.Data)
	}
	var s api.WebhookState
	if err := decode(a, &s); err != nil {
		return err
	}
	if !on {
		fmt.Fprintf(c.stderr, "webhook of %s disabled: its keys are refused from the next request\n", s.Ref)
		return nil
	}
	fmt.Fprintf(c.stderr, "webhook of %s enabled; its URL:\n", s.Ref)
	if s.WebhookURL != nil {
		fmt.Fprintln(c.stdout, *s.WebhookURL)
	}
	return nil
}

func triggerRegenerate(ctx context.Context, args []string, e env) error {
	var grace string
	c, ops, err := e.connect(remoteCmd{
		name: "trigger regenerate", synopsis: "inlet trigger regenerate REF [-grace DURATION] [-json]",
		about: "Replaces a trigger's primary key and prints the new URL on stdout. Without\n" +
			"-grace the previous key is refused at once; with it, it keeps working that long\n" +
			"(at most 7 days), so that senders can be switched without losing deliveries.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&grace, "grace", "", "keep the previous key working for this `duration` (90m, 24h, 7d)")
		},
		minArgs: 1, maxArgs: 1,
	}, args)
	if err != nil {
		return err
	}
	var body any
	if grace != "" {
		d, err := parseDuration(grace)
		if err != nil {
			return usagef("-grace: %v", err)
		}
		body = map[string]int64{"grace_seconds": int64(d / time.Second)}
	}
	a, err := c.do(ctx, "POST", triggerPath(ops[0], "/webhooks/regenerate"), body)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(a.Data)
	}
	var r api.RegeneratedKey
	if err := decode(a, &r); err != nil {
		return err
	}
	previous := "the previous key is refused from now on"
	if !r.PreviousKeyRevoked && r.PreviousKeyExpiresAt != nil {
		previous = "the previous key works until " + when(r.PreviousKeyExpiresAt)
	}
	fmt.Fprintf(c.stderr, "new primary key %s for %s; %s. The new URL:\n", keyShown(&r.WebhookKey), ops[0], previous)
	fmt.Fprintln(c.stdout, r.WebhookURL)
	return nil
}

// listSettings are the settings whose value is a list: 'trigger set'
// splits their VALUE on commas.
var listSettings = map[string]bool{"ip_allowlist.cidrs": true}

func triggerSet(ctx context.Context, args []string, e env) error {
	c, ops, err := e.connect(remoteCmd{
		name: "trigger set", synopsis: "inlet trigger set REF KEY=VALUE... [-json]",
		about: "Changes webhook settings (PATCH /api/v1/triggers/REF/webhooks) and prints them.\n" +
			"KEY is a setting's dotted name, as 'inlet trigger show' lists them:\n\n" +
			"  inlet trigger set github.push hmac.enabled=true hmac.preset=github\n" +
			"  inlet trigger set myapp.deployment_complete rate_limit.enabled=true rate_limit.requests=60\n" +
			"  inlet trigger set myapp.deployment_complete ip_allowlist.enabled=true ip_allowlist.cidrs=10.0.0.0/8,192.168.0.0/16\n" +
			"  inlet trigger set github.push payload_mapping.repo=$.repository.full_name delivery_id=X-GitHub-Delivery\n\n" +
			"A VALUE that is JSON (true, false, null, a number, a quoted string, an array,\n" +
			"an object) is sent as that; any other VALUE as a string. ip_allowlist.cidrs\n" +
			"takes a comma-separated list. The payload_mapping.NAME keys of one command make\n" +
			"the whole new mapping (payload_mapping=null removes it). Invalid values are all\n" +
			"listed, on stderr, and nothing changes. Turning HMAC on without a secret makes\n" +
			"inlet generate one: it is printed as hmac.secret, on stdout, only this once.\n" +
			"A secret given as hmac.secret=... shows in ps; prefer a generated one.",
		minArgs: 2, maxArgs: -1,
	}, args)
	if err != nil {
		return err
	}
	body, secrets, err := settingsBody(ops[1:])
	if err != nil {
		return err
	}
	c.secrets = append(c.secrets, secrets...)
	a, err := c.do(ctx, "PATCH", triggerPath(ops[0], "/webhooks"), body)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(a.Data)
	}
	var w webhookData
	if err := decode(a, &w); err != nil {
		return err
	}
	generated := false
	for _, kv := range flatten(w.Settings, "") {
		generated = generated || kv[0] == "hmac.secret"
	}
	fmt.Fprintf(c.stderr, "updated the webhook settings of %s\n", ops[0])
	if generated {
		fmt.Fprintln(c.stderr, "inlet generated an HMAC secret: it is hmac.secret below, shown only this once")
	}
	return printSettings(c, w.Settings)
}

// settingsBody turns KEY=VALUE pairs into the body of PATCH
// /api/v1/triggers/:ref/webhooks. It returns the values of secrets too,
// which no error output may show.
func settingsBody(pairs []string) (map[string]any, []string, error) {
	body := map[string]any{}
	for _, p := range pairs {
		key, raw, ok := strings.Cut(p, "=")
		if !ok || key == "" {
			return nil, nil, usagef("%q is not KEY=VALUE", p)
		}
		path := strings.Split(key, ".")
		if path[0] == "payload_mapping" && len(path) > 1 {
			// The names of a mapping's fields are the operator's own.
			path = []string{path[0], strings.Join(path[1:], ".")}
		}
		for _, name := range path {
			if name == "" {
				return nil, nil, usagef("%q has an empty part in its name", key)
			}
		}
		v, err := settingValue(key, raw)
		if err != nil {
			return nil, nil, err
		}
		m := body
		for _, name := range path[:len(path)-1] {
			switch sub := m[name].(type) {
			case nil:
				next := map[string]any{}
				m[name], m = next, next
			case map[string]any:
				m = sub
			default:
				return nil, nil, usagef("%s is given both as a value and as an object", name)
			}
		}
		last := path[len(path)-1]
		if _, dup := m[last]; dup {
			return nil, nil, usagef("%s is given twice", key)
		}
		m[last] = v
	}
	return body, secretsIn(body, nil), nil
}

// secretsIn appends the string values of the members named "secret" in v.
func secretsIn(v any, out []string) []string {
	if m, ok := v.(map[string]any); ok {
		for name, sub := range m {
			if s, ok := sub.(string); ok && name == "secret" && s != "" {
				out = append(out, s)
			}
			out = secretsIn(sub, out)
		}
	}
	return out
}

// settingValue reads the VALUE of KEY=VALUE: a list for listSettings, JSON
// when it is JSON, a string otherwise.
func settingValue(key, raw string) (any, error) {
	trimmed := strings.TrimSpace(raw)
	if listSettings[key] && !strings.HasPrefix(trimmed, "[") {
		items := []string{}
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		return items, nil
	}
	if trimmed != "" && json.Valid([]byte(trimmed)) {
		dec := json.NewDecoder(strings.NewReader(trimmed))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err == nil {
			return v, nil
		}
	}
	if listSettings[key] {
		return nil, usagef("%s: %q is neither a JSON array nor a comma-separated list", key, raw)
	}
	return raw, nil
}

// parseDuration reads a Go duration ("90m", "1h30m") or a number of days
// ("7d"), whole seconds and not negative.
func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 90m, 24h or 7d", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 90m, 24h or 7d", s)
		}
	}
	if d < 0 || d%time.Second != 0 {
		return 0, fmt.Errorf("%q must be whole seconds and not negative", s)
	}
	return d, nil
}

func keyList(ctx context.Context, args []string, e env) error {
	c, ops, err := e.connect(remoteCmd{
		name: "key list", synopsis: "inlet key list REF [-json]",
		about: "Lists a trigger's live keys, the primary first, with the prefix of each key.\n" +
			"-json prints the API's list, with the full keys and URLs.",
		minArgs: 1, maxArgs: 1,
	}, args)
	if err != nil {
		return err
	}
	a, err := c.do(ctx, "GET", triggerPath(ops[0], "/webhooks/keys"), nil)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(a.Data)
	}
	var ks []api.Key
	if err := decode(a, &ks); err != nil {
		return err
	}
	tw := newTable(c.stdout)
	row(tw, "ID", "LABEL", "KEY", "PRIMARY", "CREATED", "LAST USED", "EXPIRES")
	for _, k := range ks {
		primary := "-"
		if k.Primary {
			primary = "yes"
		}
		row(tw, strconv.FormatInt(k.ID, 10), k.Label, keyShown(&k.Key), primary, when(&k.CreatedAt), when(k.LastUsedAt), when(k.ExpiresAt))
	}
	return tw.Flush()
}

func keyAdd(ctx context.Context, args []string, e env) error {
	var label, expires string
	c, ops, err := e.connect(remoteCmd{
		name: "key add", synopsis: "inlet key add REF -label LABEL [-expires DURATION] [-json]",
		about: "Adds a key to a trigger, with its own URL, printed on stdout. Each sender (or\n" +
			"environment) can have its key, revoked alone with 'inlet key revoke'.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&label, "label", "", "the key's `label`, unique among the trigger's live keys (required)")
			fs.StringVar(&expires, "expires", "", "the key stops working after this `duration` (24h, 30d); default never")
		},
		minArgs: 1, maxArgs: 1,
	}, args)
	if err != nil {
		return err
	}
	if strings.TrimSpace(label) == "" {
		return usagef("key add needs -label; usage: inlet key add REF -label LABEL [-expires DURATION]")
	}
	body := map[string]any{"label": label}
	if expires != "" {
		d, err := parseDuration(expires)
		if err != nil || d == 0 {
			return usagef("-expires: %q is not a positive duration such as 24h or 30d", expires)
		}
		body["expires_in_seconds"] = int64(d / time.Second)
	}
	a, err := c.do(ctx, "POST", triggerPath(ops[0], "/webhooks/keys"), body)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(a.Data)
	}
	var k api.Key
	if err := decode(a, &k); err != nil {
		return err
	}
	until := ""
	if k.ExpiresAt != nil {
		until = ", working until " + when(k.ExpiresAt)
	}
	fmt.Fprintf(c.stderr, "added key %d (%s) to %s%s; its URL:\n", k.ID, k.Label, ops[0], until)
	fmt.Fprintln(c.stdout, k.URL)
	return nil
}

func keyRevoke(ctx context.Context, args []string, e env) error {
	c, ops, err := e.connect(remoteCmd{
		name: "key revoke", synopsis: "inlet key revoke REF ID",
		about: "Revokes a key of a trigger, by the ID 'inlet key list' shows: it is refused from\n" +
			"the next request, on every instance. The primary key cannot be revoked alone:\n" +
			"replace it with 'inlet trigger regenerate'. -json prints nothing: the API\n" +
			"answers 204 without data.",
		minArgs: 2, maxArgs: 2,
	}, args)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseInt(ops[1], 10, 64); err != nil {
		return usagef("key id %q is not a number", ops[1])
	}
	if _, err := c.do(ctx, "DELETE", triggerPath(ops[0], "/webhooks/keys/"+ops[1]), nil); err != nil {
		return err
	}
	if !c.asJSON {
		fmt.Fprintf(c.stderr, "revoked key %s of %s\n", ops[1], ops[0])
	}
	return nil
}
