package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSink sends the sink deliveries, signed and not, and reads its count
// the way the benchmark does.
func TestSink(t *testing.T) {
	srv := httptest.NewServer(&sink{})
	defer srv.Close()
	s := sinkProc{base: srv.URL}
	ctx := context.Background()
	post := func(signed bool) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/deliveries", strings.NewReader(`{"id":"evt_1"}`))
		if signed {
			req.Header.Set("webhook-signature", "v1,abc=")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST: got %s, want 204", resp.Status)
		}
	}
	if got, err := s.count(ctx); err != nil || got != (sinkCount{}) {
		t.Fatalf("count before any delivery = %+v, %v; want zeros", got, err)
	}
	post(true)
	post(true)
	post(false)
	got, err := s.count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (sinkCount{posts: 3, signed: 2}); got != want {
		t.Errorf("count = %+v, want %+v", got, want)
	}
	resp, err := http.Get(srv.URL + "/deliveries")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /deliveries: got %s, want 405", resp.Status)
	}
	if got, _ := s.count(ctx); got.posts != 3 {
		t.Errorf("a GET was counted: %d posts, want 3", got.posts)
	}
}

func TestParseSinkCount(t *testing.T) {
	tests := []struct {
		in      string
		want    sinkCount
		wantErr bool
	}{
		{in: "12 10\n", want: sinkCount{posts: 12, signed: 10}},
		{in: "0 0", want: sinkCount{}},
		{in: "12", wantErr: true},
		{in: "12 x", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSinkCount(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSinkCount(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseSinkCount(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDeliveriesJudge(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ok := Deliveries{Events: 100, Deliveries: 100, DistinctEvents: 100, Succeeded: 100, Attempts: 100,
		SinkRequests: 100, SinkSigned: 100, FirstCreated: t0, LastUpdated: t0.Add(4 * time.Second)}
	tests := []struct {
		name       string
		change     func(d *Deliveries)
		onePer     bool
		sinkGotAll bool
		perS       float64
	}{
		{name: "one each", change: func(*Deliveries) {}, onePer: true, sinkGotAll: true, perS: 25},
		{name: "an event without a delivery", change: func(d *Deliveries) { d.Events = 101 }, sinkGotAll: true, perS: 25},
		{name: "two deliveries of one event", change: func(d *Deliveries) { d.DistinctEvents = 99 }, sinkGotAll: true, perS: 25},
		{name: "one not succeeded", change: func(d *Deliveries) { d.Succeeded = 99 }, sinkGotAll: true, perS: 24.75},
		// A success not recorded in time is sent again: more requests
		// than deliveries is at least once.
		{name: "a delivery sent twice", change: func(d *Deliveries) { d.SinkRequests, d.SinkSigned, d.Attempts = 101, 101, 101 },
			onePer: true, sinkGotAll: true, perS: 25},
		{name: "the sink missed one", change: func(d *Deliveries) { d.SinkRequests, d.SinkSigned = 99, 99 }, onePer: true, perS: 25},
		{name: "an unsigned request", change: func(d *Deliveries) { d.SinkSigned = 99 }, onePer: true, perS: 25},
		{name: "no deliveries", change: func(d *Deliveries) { *d = Deliveries{} }, onePer: true, sinkGotAll: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ok
			tt.change(&d)
			d.judge()
			if d.OnePerEvent != tt.onePer || d.SinkGotAll != tt.sinkGotAll {
				t.Errorf("OnePerEvent, SinkGotAll = %v, %v; want %v, %v", d.OnePerEvent, d.SinkGotAll, tt.onePer, tt.sinkGotAll)
			}
			if got, want := d.Consistent(), tt.onePer && tt.sinkGotAll; got != want {
				t.Errorf("Consistent() = %v, want %v", got, want)
			}
			if math.Abs(d.PerS-tt.perS) > 1e-9 {
				t.Errorf("PerS = %v, want %v", d.PerS, tt.perS)
			}
		})
	}
}

// destPhase is a phase at conns connections whose plain inlet measurement
// had ratio, and whose measurement with the destination had dstRatio.
func destPhase(round, conns int, ratio, dstRatio float64, d Deliveries) Phase {
	d.judge()
	return Phase{
		Round: round, Conns: conns, Baseline: LoadResult{RPS: 10000}, Inlet: LoadResult{RPS: 10000 * ratio, Total: 100, OK: 100},
		Ratio: ratio, Check: Check{OK: 100, Events: 100, OneEventPer200: true},
		Destination: &Phase{
			Round: round, Conns: conns, Inlet: LoadResult{RPS: 10000 * dstRatio, Total: 90, OK: 90}, Ratio: dstRatio,
			Check: Check{OK: 90, Events: 90, OneEventPer200: true}, Deliveries: &d,
		},
	}
}

// delivered is the deliveries of a phase of n events, all delivered once
// within span, with the given lags and CPU times.
func delivered(n int, span time.Duration, p50, p99 float64, drain float64) Deliveries {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return Deliveries{Events: n, Deliveries: n, DistinctEvents: n, Succeeded: n, Attempts: n, SinkRequests: n, SinkSigned: n,
		FirstCreated: t0, LastUpdated: t0.Add(span), LagP50MS: p50, LagP99MS: p99, DrainS: drain,
		InletCPU: float64(n) * 100e-6, PostgresCPU: float64(n) * 50e-6, SinkCPU: float64(n) * 20e-6}
}

func TestSummarizeDestination(t *testing.T) {
	phases := []Phase{
		destPhase(1, 64, 0.20, 0.18, delivered(90, 3*time.Second, 10, 40, 0.5)),
		destPhase(2, 64, 0.22, 0.17, delivered(90, 2*time.Second, 12, 60, 1.5)),
		destPhase(3, 64, 0.21, 0.19, delivered(90, time.Second, 11, 50, 0.2)),
	}
	s := summarize(phases, []int{64})
	if len(s) != 1 {
		t.Fatalf("got %d summaries, want 1", len(s))
	}
	d := s[0].Destination
	if d == nil || d.Deliveries == nil {
		t.Fatalf("summary has no destination or no deliveries: %+v", s[0])
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("ratio without", s[0].Ratio, 0.21)
	near("ratio with", d.Ratio, 0.18)
	// The ratio of the medians, not the median of the rounds' ratios
	// (which would be 0.18/0.20 = 0.9).
	near("relative", d.Relative, 0.18/0.21)
	near("delivered/s", d.Deliveries.PerS, 45) // 30, 45, 90
	near("lag p50", d.Deliveries.LagP50MS, 11)
	near("lag p99", d.Deliveries.LagP99MS, 50)
	near("drained in (the worst round)", d.Deliveries.DrainMaxS, 1.5)
	near("CPU us/event", d.Deliveries.CPUPerEventUS, 150)
	near("sink CPU us/delivery", d.Deliveries.SinkCPUPerDeliveryUS, 20)
	if d.Deliveries.Events != 270 || d.Deliveries.Deliveries != 270 || d.Deliveries.SinkRequests != 270 {
		t.Errorf("events, deliveries, sink requests = %d, %d, %d; want the totals 270",
			d.Deliveries.Events, d.Deliveries.Deliveries, d.Deliveries.SinkRequests)
	}
	if !d.Deliveries.Consistent || !d.Consistent {
		t.Errorf("deliveries consistent %v, events consistent %v; want both", d.Deliveries.Consistent, d.Consistent)
	}
	if d.Events != 270 || s[0].Events != 300 {
		t.Errorf("events with, without = %d, %d; want 270, 300", d.Events, s[0].Events)
	}

	// One round whose sink missed a delivery makes the whole count
	// inconsistent.
	missed := delivered(90, time.Second, 1, 2, 0)
	missed.SinkRequests, missed.SinkSigned = 89, 89
	phases[1] = destPhase(2, 64, 0.22, 0.17, missed)
	if s := summarize(phases, []int{64}); s[0].Destination.Deliveries.Consistent {
		t.Error("a round whose sink missed a delivery: summary consistent, want not")
	}

	// Without a destination there is no destination summary.
	plain := []Phase{{Round: 1, Conns: 64, Ratio: 0.2}}
	if s := summarize(plain, []int{64}); s[0].Destination != nil {
		t.Errorf("no destination measured: got a destination summary %+v", s[0].Destination)
	}
}

func TestDestinationTargets(t *testing.T) {
	ok := delivered(90, time.Second, 10, 40, 0.5)
	missed := ok
	missed.Deliveries, missed.DistinctEvents, missed.Succeeded = 89, 89, 89
	tests := []struct {
		name       string
		phases     []Phase
		relMet     bool
		relGot     string
		deliveries bool
	}{
		{name: "within 15% at every connection count",
			phases: []Phase{destPhase(1, 1, 0.05, 0.045, ok), destPhase(1, 64, 0.20, 0.18, ok)},
			relMet: true, relGot: "1: 0.90, 64: 0.90", deliveries: true},
		{name: "exactly 0.85",
			phases: []Phase{destPhase(1, 64, 0.20, 0.17, ok)},
			relMet: true, relGot: "64: 0.85", deliveries: true},
		{name: "beyond 15% at one connection count",
			phases: []Phase{destPhase(1, 1, 0.05, 0.05, ok), destPhase(1, 256, 0.25, 0.20, ok)},
			relGot: "1: 1.00, 256: 0.80", deliveries: true},
		{name: "an event without its delivery",
			phases: []Phase{destPhase(1, 64, 0.20, 0.20, missed)},
			relMet: true, relGot: "64: 1.00"},
	}
	const relName = "with a destination, the accept ratio stays within 15% of the ratio without one (relative >= 0.85)"
	const dlvName = "with a destination, one delivery per event, each succeeded and got by the sink"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conns []int
			for _, p := range tt.phases {
				conns = append(conns, p.Conns)
			}
			r := Results{Summary: summarize(tt.phases, conns), PeakRSSMB: 100}
			got := checkTargets(r)
			items := map[string]Target{}
			for _, i := range got.Items {
				items[i.Name] = i
			}
			rel, ok := items[relName]
			if !ok {
				t.Fatalf("no target %q in %+v", relName, got.Items)
			}
			if rel.Met != tt.relMet || rel.Got != tt.relGot {
				t.Errorf("relative target: got %q met %v, want %q met %v", rel.Got, rel.Met, tt.relGot, tt.relMet)
			}
			dlv, ok := items[dlvName]
			if !ok {
				t.Fatalf("no target %q in %+v", dlvName, got.Items)
			}
			if dlv.Met != tt.deliveries || got.Deliveries == nil || *got.Deliveries != tt.deliveries {
				t.Errorf("deliveries target met %v, Targets.Deliveries %v; want %v", dlv.Met, got.Deliveries, tt.deliveries)
			}
			if want := tt.relMet && tt.deliveries; got.AllMet() != want {
				t.Errorf("AllMet() = %v, want %v", got.AllMet(), want)
			}
		})
	}

	t.Run("no destination measured", func(t *testing.T) {
		r := Results{Summary: summarize([]Phase{{Round: 1, Conns: 64, Ratio: 0.2, Check: Check{OneEventPer200: true}}}, []int{64})}
		got := checkTargets(r)
		if got.Deliveries != nil {
			t.Errorf("Targets.Deliveries = %v, want nil", *got.Deliveries)
		}
		for _, i := range got.Items {
			if strings.Contains(i.Name, "destination") {
				t.Errorf("target %q without a destination", i.Name)
			}
		}
	})
}

func TestReportDestination(t *testing.T) {
	phases := []Phase{
		destPhase(1, 1, 0.05, 0.045, delivered(90, time.Second, 10.4, 40.6, 0.25)),
		destPhase(1, 64, 0.20, 0.16, delivered(90, 2*time.Second, 120, 900, 3.5)),
	}
	r := Results{RunID: "run", Load: LoadGenerator{Mode: loadWrk}, Conns: []int{1, 64}, Summary: summarize(phases, []int{1, 64}),
		Destination: &DestinationSettings{URL: "http://127.0.0.1:4000/deliveries", Scheme: "standard-webhooks", TimeoutSeconds: 10, MaxInFlight: 10}}
	r.Targets = checkTargets(r)
	var out bytes.Buffer
	report(&out, r)
	text := out.String()
	for _, want := range []string{
		"with one destination (the sink on http://127.0.0.1:4000/deliveries, standard-webhooks, max_in_flight 10, timeout 10 s)",
		"relative = ratio with it / ratio without",
		"delivered/s",
		"lag p50/p99 ms",
		"with a destination, the accept ratio stays within 15% of the ratio without one",
		"1: 0.90, 64: 0.80",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	// The table's rows: conns, req/s, ratio, relative, ..., deliveries,
	// delivered/s, lag p50/p99, drained in.
	rows := map[string][]string{}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "with one destination") {
			continue
		}
		for _, row := range lines[i+2 : i+4] {
			f := strings.Fields(row)
			rows[f[0]] = f
		}
	}
	want := map[string][]string{
		"1":  {"1", "450", "0.045", "0.90", "0.00", "0.0", "0", "90", "90", "90", "10/41", "0.25", "150", "20"},
		"64": {"64", "1600", "0.160", "0.80", "0.00", "0.0", "0", "90", "90", "45", "120/900", "3.50", "150", "20"},
	}
	for c, w := range want {
		if got := strings.Join(rows[c], " "); got != strings.Join(w, " ") {
			t.Errorf("row of %s conns:\n got %s\nwant %s", c, got, strings.Join(w, " "))
		}
	}
	if !strings.Contains(text, "NOT MET") {
		t.Errorf("relative 0.80 at 64 connections: want a target NOT MET in:\n%s", text)
	}

	// Without a destination, no such table.
	out.Reset()
	r.Summary = summarize([]Phase{{Round: 1, Conns: 64, Ratio: 0.2}}, []int{64})
	report(&out, r)
	if strings.Contains(out.String(), "with one destination") {
		t.Errorf("no destination measured, yet the report has its table:\n%s", out.String())
	}
}

// TestResultsJSON holds the destination's figures to the results file.
func TestResultsJSON(t *testing.T) {
	phases := []Phase{destPhase(1, 64, 0.20, 0.18, delivered(90, time.Second, 10, 40, 0.5))}
	r := Results{Summary: summarize(phases, []int{64}), Phases: phases,
		Destination: &DestinationSettings{URL: "http://127.0.0.1:1/deliveries", Scheme: "standard-webhooks", MaxInFlight: 10}}
	r.Targets = checkTargets(r)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Destination struct {
			Scheme string `json:"scheme"`
		} `json:"destination"`
		Summary []struct {
			Destination struct {
				Ratio      float64 `json:"ratio"`
				Relative   float64 `json:"ratio_relative_to_without"`
				Deliveries struct {
					Deliveries int     `json:"deliveries"`
					PerS       float64 `json:"succeeded_per_s"`
					LagP99MS   float64 `json:"lag_p99_ms"`
				} `json:"deliveries"`
			} `json:"destination"`
		} `json:"summary"`
		Phases []struct {
			Destination struct {
				Deliveries struct {
					OnePerEvent bool    `json:"one_delivery_per_event"`
					DrainS      float64 `json:"drained_in_s"`
				} `json:"deliveries"`
			} `json:"destination"`
		} `json:"phases"`
		Targets struct {
			Deliveries *bool `json:"one_delivery_per_event"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	s := got.Summary[0].Destination
	if got.Destination.Scheme != "standard-webhooks" || s.Ratio != 0.18 || math.Abs(s.Relative-0.9) > 1e-9 ||
		s.Deliveries.Deliveries != 90 || s.Deliveries.PerS != 90 || s.Deliveries.LagP99MS != 40 {
		t.Errorf("summary in JSON = %+v, destination %+v", s, got.Destination)
	}
	if d := got.Phases[0].Destination.Deliveries; !d.OnePerEvent || d.DrainS != 0.5 {
		t.Errorf("phase's deliveries in JSON = %+v", d)
	}
	if got.Targets.Deliveries == nil || !*got.Targets.Deliveries {
		t.Errorf("targets' one_delivery_per_event = %v, want true", got.Targets.Deliveries)
	}
}
