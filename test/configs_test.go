package test

// The checks here read configs/prometheus and configs/grafana only: they
// start no gateway and need no database.

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	alertRulesFile = "../configs/prometheus/inlet-alerts.yaml"
	alertTestsFile = "../configs/prometheus/inlet-alerts.test.yaml"
	dashboardFile  = "../configs/grafana/inlet-dashboard.json"
)

// inletSeries are the counters and gauges inlet's /metrics serves, as the
// alert rules and the dashboard may name them.
var inletSeries = []string{
	"inlet_webhook_requests_total",
	"inlet_write_queue_length",
	"inlet_write_queue_capacity",
	"inlet_write_batch_errors_total",
	"inlet_audit_aggregated_total",
	"inlet_audit_dropped_total",
	"inlet_events_published_total",
	"inlet_publish_errors_total",
	"inlet_outbox_backlog",
	"inlet_outbox_oldest_age_seconds",
	"inlet_events_payload_omitted_total",
	"inlet_publish_set_aside_total",
	"inlet_publish_set_aside",
	"inlet_dependency_up",
	"inlet_delivery_attempts_total",
	"inlet_deliveries_pending",
	"inlet_delivery_oldest_pending_age_seconds",
	"inlet_deliveries_failed_total",
	"inlet_destination_circuit_open",
	"inlet_trigger_health",
	"inlet_retention_deleted_total",
}

// inletHistograms are inlet's histograms: queries name their _bucket, _sum
// or _count series, never the bare name.
var inletHistograms = []string{
	"inlet_webhook_request_duration_seconds",
	"inlet_write_batch_size",
	"inlet_write_batch_duration_seconds",
	"inlet_publish_lag_seconds",
	"inlet_delivery_attempt_duration_seconds",
}

// exportedFamily returns the inlet metric family a series name belongs to,
// and whether it is a series that exists: an inlet series, Prometheus' up,
// or one of the Go and process collectors' go_* and process_* series.
func exportedFamily(series string) (string, bool) {
	if slices.Contains(inletSeries, series) {
		return series, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && slices.Contains(inletHistograms, base) {
			return base, true
		}
	}
	if series == "up" || strings.HasPrefix(series, "go_") || strings.HasPrefix(series, "process_") {
		return "", true
	}
	return "", false
}

var (
	promStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promVars     = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	promTokens   = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*|[0-9][0-9A-Za-z._]*`)
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on",
		"ignoring", "group_left", "group_right", "inf", "nan", "Inf", "NaN"}
)

// metricNames returns the metric names a PromQL expression (possibly with
// Grafana variables) selects, in order of appearance. It removes what
// cannot be a metric name (strings, label matchers, ranges, grouping label
// lists, variables, numbers, keywords) and skips identifiers followed by
// "(", which are functions and aggregations.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promVars.ReplaceAllString(e, " ")
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRanges.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	var names []string
	for _, loc := range promTokens.FindAllStringIndex(e, -1) {
		tok := e[loc[0]:loc[1]]
		if tok[0] >= '0' && tok[0] <= '9' || slices.Contains(promKeywords, tok) {
			continue
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue
		}
		names = append(names, tok)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"bare", "up == 0", []string{"up"}},
		{"matchers and range", `rate(inlet_publish_errors_total{job="inlet", instance=~"a|b"}[5m]) > 0`, []string{"inlet_publish_errors_total"}},
		{"aggregation before", `max by (job, trigger) (inlet_trigger_health{status="failing"}) == 1`, []string{"inlet_trigger_health"}},
		{"aggregation after", `sum(rate(inlet_events_published_total[1m])) without (instance)`, []string{"inlet_events_published_total"}},
		{"histogram quantile", `histogram_quantile(0.99, sum by (le) (rate(inlet_publish_lag_seconds_bucket[$__rate_interval])))`, []string{"inlet_publish_lag_seconds_bucket"}},
		{"binary with matching", `inlet_write_queue_length / on (instance) group_left inlet_write_queue_capacity > 0.75`, []string{"inlet_write_queue_length", "inlet_write_queue_capacity"}},
		{"and with numbers", `a_total > 1e3 and b_total >= 10 offset 5m`, []string{"a_total", "b_total"}},
		{"grafana variables", `go_goroutines{job=~"$job", instance=~"${instance}"}`, []string{"go_goroutines"}},
		{"braces in a string", `absent(up{job="x{1}"})`, []string{"up"}},
		{"no metric", `vector(1)`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricNames(tt.expr); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

// checkExpr reports every name in expr that inlet does not export, and an
// expression that names no metric at all. It returns the inlet families used.
func checkExpr(t *testing.T, where, expr string) []string {
	t.Helper()
	names := metricNames(expr)
	if len(names) == 0 {
		t.Errorf("%s: expression %q names no metric", where, expr)
	}
	var families []string
	for _, n := range names {
		fam, ok := exportedFamily(n)
		if !ok {
			t.Errorf("%s: %q is not a series inlet exports (expression %q)", where, n, expr)
			continue
		}
		if fam != "" {
			families = append(families, fam)
		}
	}
	return families
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name      string `yaml:"name"`
		AlertTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

func TestAlertRules(t *testing.T) {
	var rules ruleFile
	readYAML(t, alertRulesFile, &rules)
	var tests ruleTestFile
	readYAML(t, alertTestsFile, &tests)

	// Alerts that some test expects to fire.
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertTest {
			if len(at.ExpAlerts) > 0 {
				fired[at.Alertname] = true
			}
		}
	}
	if !slices.Contains(tests.RuleFiles, "inlet-alerts.yaml") {
		t.Errorf("%s rule_files = %q, want it to load inlet-alerts.yaml", alertTestsFile, tests.RuleFiles)
	}

	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: rule %q (expr %q) is not an alert", g.Name, r.Record, r.Expr)
				continue
			}
			where := "alert " + r.Alert
			if seen[r.Alert] {
				t.Errorf("%s: defined twice", where)
			}
			seen[r.Alert] = true
			checkExpr(t, where, r.Expr)
			if !promDuration.MatchString(r.For) {
				t.Errorf("%s: for = %q, want a duration such as 5m", where, r.For)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity = %q, want critical or warning", where, s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", where, a)
				}
			}
			if !fired[r.Alert] {
				t.Errorf("%s: no test in %s expects it to fire", where, alertTestsFile)
			}
		}
	}

	// What operators rely on: removing one of these must be deliberate.
	for _, name := range []string{
		"InletDown", "InletDatabaseUnreachable", "InletNATSUnreachable",
		"InletOutboxBacklogOld", "InletPublishErrors", "InletPublishSetAside",
		"InletWriteQueueNearFull", "InletAuditDropped", "InletTriggerFailing",
		"InletTriggerIdle", "InletDeliveriesFailing", "InletDeliveriesExhausted",
		"InletDeliveriesLagging", "InletDestinationCircuitOpen",
	} {
		if !seen[name] {
			t.Errorf("%s has no alert %s", alertRulesFile, name)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *dashDatasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource *dashDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // a collapsed row's panels
}

type dashInput struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PluginID string `json:"pluginId"`
}

type dashboard struct {
	Inputs        []dashInput `json:"__inputs"`
	SchemaVersion int         `json:"schemaVersion"`
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	Panels        []dashPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource *dashDatasource `json:"datasource"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

const dsInput = "${DS_PROMETHEUS}"

var (
	labelValues  = regexp.MustCompile(`^label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\)$`)
	dashVarNames = regexp.MustCompile(`\$\{?(\w+)`)
)

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("parse %s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid = %q, title = %q, want both set", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion = %d, want at least 36 (Grafana 9 and later)", d.SchemaVersion)
	}
	hasInput := slices.ContainsFunc(d.Inputs, func(in dashInput) bool {
		return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
	})
	if !hasInput {
		t.Errorf("__inputs = %+v, want a prometheus datasource input DS_PROMETHEUS", d.Inputs)
	}

	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		if v.Datasource == nil || v.Datasource.UID != dsInput {
			t.Errorf("variable %s: datasource = %+v, want uid %s", v.Name, v.Datasource, dsInput)
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: query %q, want label_values(<selector>, <label>)", v.Name, v.Definition)
			continue
		}
		checkExpr(t, "variable "+v.Name, m[1])
	}

	var rows []string
	used := map[string]bool{}
	ids := map[int]bool{}
	var all []dashPanel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	for _, p := range all {
		where := "panel " + p.Title
		if ids[p.ID] {
			t.Errorf("%s: id %d used twice", where, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsInput {
			t.Errorf("%s: datasource = %+v, want uid %s", where, p.Datasource, dsInput)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != dsInput {
				t.Errorf("%s, query %s: datasource = %+v, want uid %s", where, tg.RefID, tg.Datasource, dsInput)
			}
			for _, fam := range checkExpr(t, where, tg.Expr) {
				used[fam] = true
			}
			for _, m := range dashVarNames.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("%s: query %s uses $%s, which the dashboard does not define", where, tg.RefID, m[1])
				}
			}
		}
	}

	wantRows := []string{"Receiver", "Write path", "Publishing", "Deliveries", "Triggers", "Dependencies", "Process"}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("rows = %q, want %q", rows, wantRows)
	}
	for _, m := range append(slices.Clone(inletSeries), inletHistograms...) {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	checkLayout(t, d.Panels)
}

// checkLayout reports panels outside the 24-column grid or overlapping
// another: Grafana would move them, and the rows would not read as laid out.
func checkLayout(t *testing.T, panels []dashPanel) {
	t.Helper()
	for i, p := range panels {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %s: gridPos %+v is outside the 24-column grid", p.Title, g)
		}
		for _, q := range panels[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panel %s (%+v) overlaps panel %s (%+v)", p.Title, g, q.Title, h)
			}
		}
	}
}
