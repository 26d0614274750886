package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Results is everything one run measured, as saved under bench/results.
type Results struct {
	RunID      string        `json:"run_id"`
	Started    time.Time     `json:"started"`
	DurationS  float64       `json:"duration_s"`
	Machine    Machine       `json:"machine"`
	Database   string        `json:"database"`
	NATS       string        `json:"nats"`
	Trigger    string        `json:"trigger"`
	Before     string        `json:"before_binary,omitempty"`
	Rounds     int           `json:"rounds"`
	Conns      []int         `json:"conns"`
	WarmupS    float64       `json:"warmup_s"`
	WindowS    float64       `json:"window_s"`
	BodyBytes  int           `json:"body_bytes"`
	Load       LoadGenerator `json:"load_generator"`
	Durability Durability    `json:"durability"`
	// Destination is the destination of the phases measured with one,
	// if any.
	Destination *DestinationSettings `json:"destination,omitempty"`
	Summary     []Summary            `json:"summary"`
	PeakRSSMB   float64              `json:"peak_rss_mb"`
	Targets     Targets              `json:"targets"`
	Phases      []Phase              `json:"phases"`
	ProfileTop  string               `json:"cpu_profile_top,omitempty"`
}

// LoadGenerator says what sent the requests, and how.
type LoadGenerator struct {
	// Mode is "wrk" (wrk with bench/wrk/signed.lua) or "go" (inlet-bench
	// load).
	Mode    string `json:"mode"`
	Version string `json:"version"`
	// wrk: its threads, script, the distinct signed bodies each phase
	// cycles through, and its --timeout.
	Threads  int     `json:"threads,omitempty"`
	Script   string  `json:"script,omitempty"`
	Bodies   int     `json:"bodies_per_phase,omitempty"`
	TimeoutS float64 `json:"timeout_s,omitempty"`
	// go: its GOMAXPROCS, and its fixed rate over all connections (0:
	// closed loop).
	GOMAXPROCS int     `json:"gomaxprocs,omitempty"`
	RatePerS   float64 `json:"rate_per_s,omitempty"`
	// The header carrying each request's signature, and the one carrying
	// its delivery id (none for wrk).
	SignatureHeader  string `json:"signature_header"`
	DeliveryIDHeader string `json:"delivery_id_header,omitempty"`
}

// Machine says where a run happened.
type Machine struct {
	CPU      string `json:"cpu"`
	CPUs     int    `json:"cpus"`
	MemoryMB int    `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	GOOS     string `json:"goos"`
	GOARCH   string `json:"goarch"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
}

// Phase is one round at one connection count: the baseline and inlet,
// measured back to back.
type Phase struct {
	Round         int        `json:"round"`
	Conns         int        `json:"conns"`
	Baseline      LoadResult `json:"baseline"`
	Inlet         LoadResult `json:"inlet"`
	Ratio         float64    `json:"ratio"`
	RSSMB         float64    `json:"inlet_rss_mb"`
	BacklogAtStop int64      `json:"outbox_backlog_at_stop"`
	DrainS        float64    `json:"outbox_drained_in_s"`
	MeanBatch     float64    `json:"mean_write_batch"`
	MeanBatchMS   float64    `json:"mean_write_batch_ms"`
	Check         Check      `json:"check"`
	// PostgresCPU is the CPU seconds of the embedded PostgreSQL during the
	// inlet phase (0 with DATABASE_URL).
	PostgresCPU float64 `json:"postgres_cpu_s"`
	Profiled    bool    `json:"cpu_profiled,omitempty"`
	// Before is the same phase on the -before binary, if one was given.
	Before *Phase `json:"before,omitempty"`
	// Destination is the same phase on inlet with the destination
	// enabled (its Baseline is this phase's), and Deliveries, in it, what
	// became of its deliveries.
	Destination *Phase      `json:"destination,omitempty"`
	Deliveries  *Deliveries `json:"deliveries,omitempty"`
}

// Summary is the median over the rounds at one connection count; counts
// are totals and the backlog and drain time the worst round's.
type Summary struct {
	Conns       int     `json:"conns"`
	BaselineRPS float64 `json:"baseline_rps"`
	InletRPS    float64 `json:"inlet_rps"`
	Ratio       float64 `json:"ratio"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	BaseP50     float64 `json:"baseline_p50_ms"`
	BaseP99     float64 `json:"baseline_p99_ms"`
	Errors      int     `json:"errors"`
	RSSMB       float64 `json:"inlet_rss_mb"`
	MeanBatch   float64 `json:"mean_write_batch"`
	OK          int     `json:"ok_200"`
	Unanswered  int     `json:"unanswered,omitempty"`
	Events      int     `json:"events"`
	Messages    int     `json:"stream_messages"`
	Consistent  bool    `json:"one_event_and_message_per_200"`
	// Before holds the medians of the -before binary, if one was given.
	Before *Summary `json:"before,omitempty"`
	// Destination holds the medians with the destination enabled, if it
	// was measured; in it, Relative is its Ratio over the Ratio without
	// one, and Deliveries the medians of the deliveries.
	Destination *Summary         `json:"destination,omitempty"`
	Relative    float64          `json:"ratio_relative_to_without,omitempty"`
	Deliveries  *DeliverySummary `json:"deliveries,omitempty"`
	BacklogMax  int64            `json:"outbox_backlog_at_stop_max"`
	DrainMaxS   float64          `json:"outbox_drained_in_s_max"`
	// CPU microseconds per request, over whole phases: the baseline
	// server, inlet's process, its PostgreSQL, and the load generator in
	// the inlet and the baseline phases.
	CPU struct {
		Baseline     float64 `json:"baseline_us"`
		Inlet        float64 `json:"inlet_us"`
		Postgres     float64 `json:"postgres_us"`
		Load         float64 `json:"load_generator_us"`
		BaselineLoad float64 `json:"baseline_load_generator_us"`
	} `json:"cpu_per_request"`
}

// DeliverySummary is the deliveries of the phases at one connection count
// with the destination: counts are totals over the rounds, rates, lags and
// CPU times their medians, the drain time the worst round's.
type DeliverySummary struct {
	Events       int     `json:"events"`
	Deliveries   int     `json:"deliveries"`
	Succeeded    int     `json:"succeeded"`
	Attempts     int     `json:"attempts"`
	SinkRequests int     `json:"sink_requests"`
	PerS         float64 `json:"succeeded_per_s"`
	LagP50MS     float64 `json:"lag_p50_ms"`
	LagP99MS     float64 `json:"lag_p99_ms"`
	DrainMaxS    float64 `json:"drained_in_s_max"`
	// CPU microseconds per event from the start of the load until every
	// delivery succeeded: inlet's process and its PostgreSQL; and the
	// sink's per delivery.
	CPUPerEventUS        float64 `json:"inlet_and_postgres_cpu_per_event_us"`
	SinkCPUPerDeliveryUS float64 `json:"sink_cpu_per_delivery_us"`
	// Consistent: in every round, one delivery per event, each succeeded
	// and each got by the sink.
	Consistent bool `json:"one_delivery_per_event"`
}

func summarize(phases []Phase, conns []int) []Summary {
	var before, dest []Phase
	for _, p := range phases {
		if p.Before != nil {
			before = append(before, *p.Before)
		}
		if p.Destination != nil {
			dest = append(dest, *p.Destination)
		}
	}
	var out []Summary
	for _, c := range conns {
		s := Summary{Conns: c, Consistent: true}
		var base, rps, ratio, p50, p99, bp50, bp99, rss, batch []float64
		var cpuBase, cpuInlet, cpuPG, cpuLoad, cpuBaseLoad []float64
		perReq := func(sec float64, n int) float64 { return 1e6 * sec / float64(max(n, 1)) }
		for _, p := range phases {
			if p.Conns != c {
				continue
			}
			base, rps, ratio = append(base, p.Baseline.RPS), append(rps, p.Inlet.RPS), append(ratio, p.Ratio)
			p50, p99 = append(p50, p.Inlet.P50), append(p99, p.Inlet.P99)
			bp50, bp99 = append(bp50, p.Baseline.P50), append(bp99, p.Baseline.P99)
			rss, batch = append(rss, p.RSSMB), append(batch, p.MeanBatch)
			cpuBase = append(cpuBase, perReq(p.Baseline.ServerCPU, p.Baseline.Total))
			cpuBaseLoad = append(cpuBaseLoad, perReq(p.Baseline.LoadCPU, p.Baseline.Total))
			cpuInlet = append(cpuInlet, perReq(p.Inlet.ServerCPU, p.Inlet.Total))
			cpuPG = append(cpuPG, perReq(p.PostgresCPU, p.Inlet.Total))
			cpuLoad = append(cpuLoad, perReq(p.Inlet.LoadCPU, p.Inlet.Total))
			s.Errors += p.Inlet.Errors()
			s.OK += p.Check.OK
			s.Unanswered += p.Check.Unanswered
			s.Events += p.Check.Events
			s.Messages += p.Check.Messages
			s.Consistent = s.Consistent && p.Check.OneEventPer200
			s.BacklogMax = max(s.BacklogMax, p.BacklogAtStop)
			s.DrainMaxS = max(s.DrainMaxS, p.DrainS)
		}
		s.BaselineRPS, s.InletRPS, s.Ratio = median(base), median(rps), median(ratio)
		s.P50, s.P99, s.BaseP50, s.BaseP99 = median(p50), median(p99), median(bp50), median(bp99)
		s.RSSMB, s.MeanBatch = median(rss), median(batch)
		s.CPU.Baseline, s.CPU.BaselineLoad = median(cpuBase), median(cpuBaseLoad)
		s.CPU.Inlet, s.CPU.Postgres, s.CPU.Load = median(cpuInlet), median(cpuPG), median(cpuLoad)
		if len(before) > 0 {
			s.Before = &summarize(before, []int{c})[0]
		}
		if len(dest) > 0 {
			d := summarize(dest, []int{c})[0]
			d.Deliveries = summarizeDeliveries(dest, c)
			if s.Ratio > 0 {
				d.Relative = d.Ratio / s.Ratio
			}
			s.Destination = &d
		}
		out = append(out, s)
	}
	return out
}

// summarizeDeliveries sums and takes the medians of the deliveries of the
// phases at c connections; nil if none has any.
func summarizeDeliveries(phases []Phase, c int) *DeliverySummary {
	var s *DeliverySummary
	var perS, p50, p99, cpu, sinkCPU []float64
	for _, p := range phases {
		d := p.Deliveries
		if p.Conns != c || d == nil {
			continue
		}
		if s == nil {
			s = &DeliverySummary{Consistent: true}
		}
		s.Events += d.Events
		s.Deliveries += d.Deliveries
		s.Succeeded += d.Succeeded
		s.Attempts += d.Attempts
		s.SinkRequests += d.SinkRequests
		s.DrainMaxS = max(s.DrainMaxS, d.DrainS)
		s.Consistent = s.Consistent && d.Consistent()
		perS, p50, p99 = append(perS, d.PerS), append(p50, d.LagP50MS), append(p99, d.LagP99MS)
		cpu = append(cpu, 1e6*(d.InletCPU+d.PostgresCPU)/float64(max(d.Events, 1)))
		sinkCPU = append(sinkCPU, 1e6*d.SinkCPU/float64(max(d.Deliveries, 1)))
	}
	if s != nil {
		s.PerS, s.LagP50MS, s.LagP99MS = median(perS), median(p50), median(p99)
		s.CPUPerEventUS, s.SinkCPUPerDeliveryUS = median(cpu), median(sinkCPU)
	}
	return s
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Targets are the goals of the issue, judged on the medians of one run.
type Targets struct {
	Items      []Target `json:"items"`
	Consistent bool     `json:"one_event_and_message_per_200"`
	// Deliveries, when a destination was measured: every event of its
	// phases got one delivery, which succeeded and reached the sink.
	Deliveries *bool `json:"one_delivery_per_event,omitempty"`
}

// Target is one goal and how the run did.
type Target struct {
	Name string `json:"name"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// AllMet reports whether every target was met.
func (t Targets) AllMet() bool {
	for _, i := range t.Items {
		if !i.Met {
			return false
		}
	}
	return t.Consistent
}

// MinRelativeRatio is the least accept ratio with a destination, as a
// fraction of the ratio without one, that meets the target.
const MinRelativeRatio = 0.85

func checkTargets(r Results) Targets {
	t := Targets{Consistent: true}
	add := func(name string, met bool, format string, args ...any) {
		t.Items = append(t.Items, Target{Name: name, Got: fmt.Sprintf(format, args...), Met: met})
	}
	errs := 0
	var relative []string
	relMet, delivered, withDest := true, true, false
	for _, s := range r.Summary {
		if d := s.Destination; d != nil {
			withDest = true
			relative = append(relative, fmt.Sprintf("%d: %.2f", s.Conns, d.Relative))
			relMet = relMet && d.Relative >= MinRelativeRatio
			delivered = delivered && d.Deliveries != nil && d.Deliveries.Consistent
			errs += d.Errors
			t.Consistent = t.Consistent && d.Consistent
		}
		switch s.Conns {
		case 256:
			add("256 connections: >= 0.25x baseline, p99 <= 100 ms", s.Ratio >= 0.25 && s.P99 <= 100,
				"%.3fx, p99 %.1f ms", s.Ratio, s.P99)
		case 64:
			add("64 connections: >= 0.20x baseline, p99 <= 50 ms", s.Ratio >= 0.20 && s.P99 <= 50,
				"%.3fx, p99 %.1f ms", s.Ratio, s.P99)
		case 1:
			add("1 connection: p50 <= 1.5 ms", s.P50 <= 1.5, "p50 %.2f ms", s.P50)
		}
		errs += s.Errors
		t.Consistent = t.Consistent && s.Consistent
	}
	if withDest {
		add(fmt.Sprintf("with a destination, the accept ratio stays within %.0f%% of the ratio without one (relative >= %.2f)",
			100*(1-MinRelativeRatio), MinRelativeRatio), relMet, "%s", strings.Join(relative, ", "))
	}
	add("zero errors", errs == 0, "%d", errs)
	add("inlet RSS < 256 MB (peak, VmHWM)", r.PeakRSSMB < 256, "%.0f MB", r.PeakRSSMB)
	name := "every 200 has one event row and one stream message"
	if r.Load.Mode == loadWrk {
		name = "stored = published, events = 200s (+ unanswered at most)"
	}
	add(name, t.Consistent, "%v", t.Consistent)
	if withDest {
		add("with a destination, one delivery per event, each succeeded and got by the sink", delivered, "%v", delivered)
		t.Deliveries = &delivered
	}
	return t
}

// report prints the table of medians and the targets.
func report(w io.Writer, r Results) {
	fmt.Fprintf(w, "\ninlet-bench %s: %d rounds, medians; each phase %.0fs measured after %.0fs warm-up; %d-byte signed JSON to %s\n",
		r.RunID, r.Rounds, r.WindowS, r.WarmupS, r.BodyBytes, r.Trigger)
	var load string
	switch l := r.Load; l.Mode {
	case loadWrk:
		load = fmt.Sprintf("%s, %d thread(s), %s cycling %d signed bodies (%s, no delivery id)",
			l.Version, l.Threads, l.Script, l.Bodies, l.SignatureHeader)
	default:
		load = fmt.Sprintf("inlet-bench load, GOMAXPROCS=%d (%s, a delivery id each)", l.GOMAXPROCS, l.SignatureHeader)
		if l.RatePerS > 0 {
			load += fmt.Sprintf(", open loop at %.0f req/s", l.RatePerS)
		}
	}
	d := r.Durability
	fmt.Fprintf(w, "machine: %d CPUs (%s), Go %s, PostgreSQL %s (%s; fsync %s, synchronous_commit %s, full_page_writes %s), NATS %s (%s storage)\n",
		r.Machine.CPUs, r.Machine.CPU, strings.TrimPrefix(r.Machine.Go, "go"), r.Machine.Postgres, r.Database,
		d.Fsync, d.SynchronousCommit, d.FullPageWrites, r.NATS, d.NATSStorage)
	fmt.Fprintf(w, "load generator on the same CPUs: %s\n\n", load)
	wrk := r.Load.Mode == loadWrk
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "conns\tbaseline req/s\tinlet req/s\tratio\tp50 ms\tp99 ms\tbaseline p50/p99 ms\terrors\tRSS MB\tbatch\t200s\t")
	if wrk {
		fmt.Fprint(tw, "unanswered\t")
	}
	fmt.Fprintln(tw, "events\tmessages\tbacklog at stop\tdrained in s\t")
	for _, s := range r.Summary {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.3f\t%.2f\t%.1f\t%.2f/%.1f\t%d\t%.0f\t%.1f\t%d\t",
			s.Conns, s.BaselineRPS, s.InletRPS, s.Ratio, s.P50, s.P99, s.BaseP50, s.BaseP99,
			s.Errors, s.RSSMB, s.MeanBatch, s.OK)
		if wrk {
			fmt.Fprintf(tw, "%d\t", s.Unanswered)
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.2f\t\n", s.Events, s.Messages, s.BacklogMax, s.DrainMaxS)
	}
	tw.Flush()
	if wrk {
		fmt.Fprintln(w, "(unanswered: requests wrk wrote but whose answers it did not read, in flight when it stopped; inlet may have stored them)")
	}
	if len(r.Summary) > 0 && r.Summary[0].Destination != nil {
		reportDestination(w, r)
	}
	if len(r.Summary) > 0 && r.Summary[0].Before != nil {
		fmt.Fprintf(w, "\nbefore (%s) and after, same rounds, ratios to the same baseline:\n", r.Before)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "conns\tbefore req/s\tratio\tp50 ms\tp99 ms\tCPU us/req inlet+pg\tafter req/s\tratio\tp50 ms\tp99 ms\tCPU us/req inlet+pg\tafter/before\t")
		for _, s := range r.Summary {
			q := s.Before
			fmt.Fprintf(tw, "%d\t%.0f\t%.3f\t%.2f\t%.1f\t%.0f\t%.0f\t%.3f\t%.2f\t%.1f\t%.0f\t%.2f\t\n", s.Conns,
				q.InletRPS, q.Ratio, q.P50, q.P99, q.CPU.Inlet+q.CPU.Postgres,
				s.InletRPS, s.Ratio, s.P50, s.P99, s.CPU.Inlet+s.CPU.Postgres, s.Ratio/q.Ratio)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\nCPU time per request, microseconds (all processes share the same CPUs):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "conns\tbaseline server\tits load generator\tinlet process\tits PostgreSQL\tits load generator\t")
	for _, s := range r.Summary {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", s.Conns, s.CPU.Baseline, s.CPU.BaselineLoad, s.CPU.Inlet, s.CPU.Postgres, s.CPU.Load)
	}
	tw.Flush()
	fmt.Fprintf(w, "\npeak RSS of inlet (VmHWM, embedded NATS included): %.0f MB; the whole run took %.0f s\n", r.PeakRSSMB, r.DurationS)
	fmt.Fprintln(w, "\ntargets:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range r.Targets.Items {
		verdict := "met"
		if !t.Met {
			verdict = "NOT MET"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Name, t.Got, verdict)
	}
	tw.Flush()
}

// reportDestination prints the table of the phases with the destination.
func reportDestination(w io.Writer, r Results) {
	fmt.Fprint(w, "\nwith one destination")
	if d := r.Destination; d != nil {
		fmt.Fprintf(w, " (the sink on %s, %s, max_in_flight %d, timeout %d s)", d.URL, d.Scheme, d.MaxInFlight, d.TimeoutSeconds)
	}
	fmt.Fprintln(w, ", same rounds, ratios to the same baseline; relative = ratio with it / ratio without:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "conns\tinlet req/s\tratio\trelative\tp50 ms\tp99 ms\terrors\tevents\tdeliveries\tdelivered/s\tlag p50/p99 ms\tdrained in s\tCPU us/event inlet+pg\tsink CPU us/delivery\t")
	for _, s := range r.Summary {
		q := s.Destination
		if q == nil {
			continue
		}
		d := q.Deliveries
		if d == nil {
			d = &DeliverySummary{}
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.3f\t%.2f\t%.2f\t%.1f\t%d\t%d\t%d\t%.0f\t%.0f/%.0f\t%.2f\t%.0f\t%.0f\t\n", s.Conns,
			q.InletRPS, q.Ratio, q.Relative, q.P50, q.P99, q.Errors, d.Events, d.Deliveries, d.PerS,
			d.LagP50MS, d.LagP99MS, d.DrainMaxS, d.CPUPerEventUS, d.SinkCPUPerDeliveryUS)
	}
	tw.Flush()
	fmt.Fprintln(w, "(delivered/s: deliveries succeeded over the time from the first one's event to the last one's success; lag: from an event's commit to its delivery's success; drained in: from the end of the load to the last success; CPU from the start of the load to the last success)")
}
