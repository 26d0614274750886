package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/inlet-dev/inlet/pkg/retention"
	"github.com/inlet-dev/inlet/pkg/store"
)

// RetentionResults is what `inlet-bench retention` measured.
type RetentionResults struct {
	RunID   string           `json:"run_id"`
	Started time.Time        `json:"started"`
	Machine Machine          `json:"machine"`
	Load    string           `json:"load"`
	Conns   int              `json:"conns"`
	WindowS float64          `json:"window_s"`
	Rows    int              `json:"rows"`
	Batch   int              `json:"batch"`
	Duty    float64          `json:"duty"`
	FillS   float64          `json:"fill_s"`
	Phases  []RetentionPhase `json:"phases"`
	// Medians over the phases without and with pruning, and the ratios
	// of the latter to the former.
	Off                 LoadSummary       `json:"off"`
	On                  LoadSummary       `json:"on"`
	RPSRatio            float64           `json:"rps_ratio"`
	P50Ratio            float64           `json:"p50_ratio"`
	P99Ratio            float64           `json:"p99_ratio"`
	PrunedUnderLoadPerS float64           `json:"pruned_under_load_per_s"`
	PrunedUnderLoad     int64             `json:"pruned_under_load"`
	RestUnloaded        int64             `json:"rest_pruned_unloaded"`
	RestUnloadedPerS    float64           `json:"rest_pruned_unloaded_per_s"`
	Partition           *PartitionFigures `json:"partition,omitempty"`
	DurationS           float64           `json:"duration_s"`
}

// LoadSummary is the median of a few phases' figures.
type LoadSummary struct {
	RPS float64 `json:"rps"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
}

// RetentionPhase is one window of load, with the pruner working or not.
type RetentionPhase struct {
	Pruning bool       `json:"pruning"`
	Inlet   LoadResult `json:"inlet"`
	// Pruned is how many audit records the pruner deleted during the
	// phase (warm-up included), in PruneS seconds.
	Pruned int64   `json:"pruned,omitempty"`
	PruneS float64 `json:"prune_s,omitempty"`
}

// PartitionFigures compare deleting old audit rows by batches with
// dropping a partition, on scratch copies of the audit table.
type PartitionFigures struct {
	Rows int `json:"rows"`
	// BatchDeleteS is the time to delete Rows by the pruner's statement,
	// Batch rows at a time, back to back (no pause); the pruner's pauses
	// make its passes at least twice as long.
	BatchDeleteS float64 `json:"batch_delete_s"`
	// DetachS and DropS: the partition holding Rows detached, then
	// dropped.
	DetachS float64 `json:"detach_s"`
	DropS   float64 `json:"drop_s"`
	// Inserts of 100 rows, one statement each, into the plain and the
	// partitioned (by day) table: medians of the rounds' means, in ms.
	InsertPlainMS       float64 `json:"insert_plain_ms"`
	InsertPartitionedMS float64 `json:"insert_partitioned_ms"`
	InsertRatio         float64 `json:"insert_ratio"`
}

func runRetentionBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("retention", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := benchOptions{out: stdout, log: stderr, loadGen: loadWrk, bodies: 10000, wrkThreads: 1}
	fs.StringVar(&o.wrkBin, "wrk", "wrk", "wrk binary")
	fs.StringVar(&o.wrkScript, "wrk-script", "bench/wrk/signed.lua", "wrk script sending the signed bodies")
	fs.StringVar(&o.inletBin, "inlet", "bin/inlet", "inlet binary to start")
	fs.StringVar(&o.packs, "packs", "packs", "packs directory for inlet")
	fs.StringVar(&o.trigger, "trigger", "myapp.deployment_complete", "trigger to send webhooks to")
	fs.StringVar(&o.resultsDir, "results", "bench/results", "directory for the JSON results; empty writes none")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (inlet's log, data)")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured window of each phase")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before each measured window")
	conns := fs.Int("conns", 64, "wrk connections")
	rows := fs.Int("rows", 3_000_000, "old audit records to prune")
	pairs := fs.Int("pairs", 3, "pairs of phases, one without and one with pruning, in alternating order")
	batch := fs.Int("batch", retention.DefaultBatch, "rows per prune statement")
	duty := fs.Float64("duty", retention.DefaultDuty, "share of the pruner's time in statements, (0, 1]")
	partition := fs.Bool("partition", true, "also compare batch deletes with a partition drop on scratch tables")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pairs < 1 || *rows < 1 || *conns < 1 || *batch < 1 {
		return errors.New("-pairs, -rows, -conns and -batch must be at least 1")
	}
	if *duty <= 0 || *duty > 1 {
		return errors.New("-duty must be in (0, 1]")
	}
	if o.duration < time.Second || o.duration%time.Second != 0 || o.warmup%time.Second != 0 {
		return errors.New("-d and -warmup must be whole seconds (-warmup may be 0)")
	}
	if _, err := exec.LookPath(o.wrkBin); err != nil {
		return fmt.Errorf("%w (scripts/ensure-wrk.sh installs it)", err)
	}
	if os.Getenv("DATABASE_URL") != "" {
		// The benchmark fills and empties the audit table: not on a
		// database someone else uses.
		return errors.New("retention needs the embedded PostgreSQL: unset DATABASE_URL")
	}
	// inlet's own pruner stays out of the way: the benchmark prunes.
	o.inletEnv = []string{"INLET_EVENT_RETENTION=0", "INLET_AUDIT_RETENTION=0", "INLET_DELIVERY_RETENTION=0"}
	b := &bench{o: o, runID: time.Now().UTC().Format("20060102T150405Z")}
	defer b.close()
	return b.retention(ctx, *conns, *rows, *pairs, *batch, *duty, *partition)
}

// retention measures the receiver under wrk's load with and without the
// pruner deleting old audit records, and what a partition drop would
// cost instead.
func (b *bench) retention(ctx context.Context, conns, rows, pairs, batch int, duty float64, partition bool) error {
	begin := time.Now()
	var err error
	if b.tmp, err = os.MkdirTemp("", "inlet-bench-"); err != nil {
		return err
	}
	if err := os.Chmod(b.tmp, 0o755); err != nil {
		return err
	}
	res := RetentionResults{RunID: b.runID, Started: time.Now().UTC(), Machine: machine(), Load: "wrk " + wrkVersion(ctx, b.o.wrkBin),
		Conns: conns, WindowS: b.o.duration.Seconds(), Rows: rows, Batch: batch, Duty: duty}
	b.logf("starting %s (temporary data under %s)", b.o.inletBin, b.tmp)
	if b.in, err = startInlet(ctx, b.o, b.tmp, b.logf); err != nil {
		return err
	}
	res.Machine.Postgres = b.in.pgVersion
	db, err := sqlx.Open("postgres", b.in.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(4)

	// The old rows go in first, before any request: their ids are the
	// lowest, as for rows that grew old in use.
	b.logf("filling audit_log with %d records received 60 days ago", rows)
	start := time.Now()
	if err := fillAudit(ctx, db, "audit_log", rows, "now() - interval '60 days'"); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `VACUUM (ANALYZE) audit_log`); err != nil {
		return err
	}
	res.FillS = time.Since(start).Seconds()
	b.logf("filled in %.1f s", res.FillS)

	if err := b.in.configure(ctx); err != nil {
		return err
	}
	b.logf("warming inlet up")
	if _, err := b.load(ctx, b.in.secret, b.in.webhookURL, conns, 3*time.Second, 0, b.runID+"-warm", nil); err != nil {
		return err
	}
	if _, err := b.in.drain(ctx); err != nil {
		return err
	}

	pr := retention.New(store.New(db, nil), retention.Options{Audit: 30 * 24 * time.Hour, Batch: batch, Duty: duty}, nil)
	for i := 0; i < pairs; i++ {
		order := []bool{false, true}
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, pruning := range order {
			p, err := b.retentionPhase(ctx, pr, conns, i, pruning)
			if err != nil {
				return err
			}
			res.Phases = append(res.Phases, p)
			b.logf("pair %d, pruning %-5v: %6.0f req/s, p50 %.2f ms, p99 %.1f ms, errors %d; pruned %d in %.1f s",
				i+1, pruning, p.Inlet.RPS, p.Inlet.P50, p.Inlet.P99, p.Inlet.Errors(), p.Pruned, p.PruneS)
		}
	}
	var on, off []LoadResult
	var pruneS float64
	for _, p := range res.Phases {
		if p.Pruning {
			on = append(on, p.Inlet)
			res.PrunedUnderLoad += p.Pruned
			pruneS += p.PruneS
		} else {
			off = append(off, p.Inlet)
		}
	}
	res.Off, res.On = medians(off), medians(on)
	res.RPSRatio, res.P50Ratio, res.P99Ratio = res.On.RPS/res.Off.RPS, res.On.P50/res.Off.P50, res.On.P99/res.Off.P99
	if pruneS > 0 {
		res.PrunedUnderLoadPerS = float64(res.PrunedUnderLoad) / pruneS
	}

	b.logf("pruning the rest without load")
	start = time.Now()
	n, err := pr.Prune(ctx)
	if err != nil {
		return err
	}
	res.RestUnloaded = n.Audit
	res.RestUnloadedPerS = float64(n.Audit) / time.Since(start).Seconds()
	var left int
	if err := db.GetContext(ctx, &left, `SELECT count(*) FROM audit_log WHERE received_at < now() - interval '30 days'`); err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("%d old audit records left after pruning", left)
	}

	if partition {
		if res.Partition, err = b.partitionFigures(ctx, db, rows, batch); err != nil {
			return err
		}
	}
	res.DurationS = time.Since(begin).Seconds()
	reportRetention(b.o.out, res)
	if b.o.resultsDir != "" {
		if err := os.MkdirAll(b.o.resultsDir, 0o755); err != nil {
			return err
		}
		j, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		path := filepath.Join(b.o.resultsDir, b.runID+"-retention.json")
		if err := os.WriteFile(path, append(j, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(b.o.out, "\nwrote %s\n", path)
	}
	return nil
}

// retentionPhase runs one window of load, with the pruner deleting old
// audit records throughout (warm-up included) when pruning is set.
func (b *bench) retentionPhase(ctx context.Context, pr *retention.Pruner, conns, pair int, pruning bool) (RetentionPhase, error) {
	p := RetentionPhase{Pruning: pruning}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	if pruning {
		go func() { // owned by this phase, which stops it and waits
			defer close(done)
			start := time.Now()
			n, _ := pr.Prune(pctx) // ends with the cancel, keeping its count
			p.Pruned, p.PruneS = n.Audit, time.Since(start).Seconds()
		}()
	} else {
		close(done)
	}
	prefix := fmt.Sprintf("%s-p%d-%v", b.runID, pair, pruning)
	var err error
	p.Inlet, err = b.load(ctx, b.in.secret, b.in.webhookURL, conns, b.o.duration, b.o.warmup, prefix, nil)
	stop()
	<-done
	if err != nil {
		return p, err
	}
	if _, err := b.in.drain(ctx); err != nil {
		return p, err
	}
	return p, b.in.settle(ctx)
}

func medians(rs []LoadResult) LoadSummary {
	med := func(f func(LoadResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		if len(v) == 0 {
			return 0
		}
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return LoadSummary{
		RPS: med(func(r LoadResult) float64 { return r.RPS }),
		P50: med(func(r LoadResult) float64 { return r.P50 }),
		P99: med(func(r LoadResult) float64 { return r.P99 }),
	}
}

// fillAudit inserts n audit records like the receiver's into table,
// received one millisecond apart from the SQL expression from on.
func fillAudit(ctx context.Context, db *sqlx.DB, table string, n int, from string) error {
	_, err := db.ExecContext(ctx, `INSERT INTO `+table+` (received_at, trigger_id, trigger_ref, key_prefix, source_ip, user_agent,
			status, outcome, body_size, duration_ms, event_id)
		SELECT `+from+` + g * interval '1 millisecond', 1, 'myapp.deployment_complete', 'wh_ab12c', '203.0.113.7',
			'GitHub-Hookshot/abc123', 200, 'accepted', 412, 1.25, 'evt_01JA' || lpad(g::text, 22, '0')
		FROM generate_series(1, $1) g`, n)
	if err != nil {
		return fmt.Errorf("fill %s: %w", table, err)
	}
	return nil
}

// partitionFigures measures, on scratch copies of audit_log, the time to
// delete rows old records by the pruner's statement against detaching and
// dropping the partition that holds them, and what inserting costs in a
// table partitioned by day. The scratch tables are dropped at the end.
func (b *bench) partitionFigures(ctx context.Context, db *sqlx.DB, rows, batch int) (*PartitionFigures, error) {
	f := &PartitionFigures{Rows: rows}
	exec := func(q string) error {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.60s: %w", q, err)
		}
		return nil
	}
	cleanup := func() {
		db.ExecContext(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS bench_audit_plain, bench_audit_part, bench_audit_part_old`)
	}
	cleanup()
	defer cleanup()
	// The same columns and indexes as audit_log; the partitioned table's
	// primary key must hold the partition key.
	setup := []string{
		`CREATE TABLE bench_audit_plain (LIKE audit_log INCLUDING DEFAULTS INCLUDING INDEXES)`,
		`CREATE TABLE bench_audit_part (LIKE audit_log INCLUDING DEFAULTS) PARTITION BY RANGE (received_at)`,
		`ALTER TABLE bench_audit_part ADD PRIMARY KEY (id, received_at)`,
		`CREATE INDEX ON bench_audit_part (trigger_id, received_at DESC, id DESC)`,
		`CREATE INDEX ON bench_audit_part (trigger_id, outcome, received_at DESC, id DESC)`,
		`CREATE INDEX ON bench_audit_part USING brin (received_at)`,
		`CREATE TABLE bench_audit_part_old PARTITION OF bench_audit_part
			FOR VALUES FROM (date_trunc('day', now()) - interval '61 days') TO (date_trunc('day', now()) - interval '7 days')`,
	}
	for d := -7; d < 3; d++ {
		setup = append(setup, fmt.Sprintf(`CREATE TABLE bench_audit_part_d%d PARTITION OF bench_audit_part
			FOR VALUES FROM (date_trunc('day', now()) + interval '%d days') TO (date_trunc('day', now()) + interval '%d days')`, d+7, d, d+1))
	}
	for _, q := range setup {
		if err := exec(q); err != nil {
			return nil, err
		}
	}
	b.logf("filling the scratch tables with %d old records each", rows)
	for _, t := range []string{"bench_audit_plain", "bench_audit_part"} {
		if err := fillAudit(ctx, db, t, rows, "now() - interval '60 days'"); err != nil {
			return nil, err
		}
		if err := exec(`VACUUM (ANALYZE) ` + t); err != nil {
			return nil, err
		}
	}

	// The write path: the receiver's writer inserts audit records in
	// multi-row statements; 100 rows each, alternating tables.
	b.logf("inserting into the plain and the partitioned table")
	var plain, part []float64
	for round := 0; round < 6; round++ {
		t := "bench_audit_plain"
		if round%2 == 1 {
			t = "bench_audit_part"
		}
		const stmts = 300
		start := time.Now()
		for i := 0; i < stmts; i++ {
			if err := fillAudit(ctx, db, t, 100, "now()"); err != nil {
				return nil, err
			}
		}
		ms := time.Since(start).Seconds() * 1000 / stmts
		if t == "bench_audit_plain" {
			plain = append(plain, ms)
		} else {
			part = append(part, ms)
		}
	}
	sort.Float64s(plain)
	sort.Float64s(part)
	f.InsertPlainMS, f.InsertPartitionedMS = plain[len(plain)/2], part[len(part)/2]
	f.InsertRatio = f.InsertPartitionedMS / f.InsertPlainMS

	b.logf("deleting %d records by batches of %d", rows, batch)
	del := strings.ReplaceAll(`WITH batch AS (SELECT id, received_at FROM bench_audit_plain WHERE id > $2 ORDER BY id LIMIT $3),
		gone AS (DELETE FROM bench_audit_plain a USING batch b WHERE a.id = b.id AND b.received_at < $1 RETURNING 1)
		SELECT (SELECT count(*) FROM gone), (SELECT COALESCE(max(id), 0) FROM batch), (SELECT count(*) FROM batch)`, "\t", "")
	start := time.Now()
	var after int64
	cutoff := time.Now().Add(-30 * 24 * time.Hour)
	for {
		var gone, n int
		if err := db.QueryRowxContext(ctx, del, cutoff, after, batch).Scan(&gone, &after, &n); err != nil {
			return nil, fmt.Errorf("batch delete: %w", err)
		}
		if n < batch {
			break
		}
	}
	f.BatchDeleteS = time.Since(start).Seconds()

	start = time.Now()
	if err := exec(`ALTER TABLE bench_audit_part DETACH PARTITION bench_audit_part_old`); err != nil {
		return nil, err
	}
	f.DetachS = time.Since(start).Seconds()
	start = time.Now()
	if err := exec(`DROP TABLE bench_audit_part_old`); err != nil {
		return nil, err
	}
	f.DropS = time.Since(start).Seconds()
	return f, nil
}

func reportRetention(w io.Writer, r RetentionResults) {
	fmt.Fprintf(w, "\nRetention: %d old audit records, pruned %d a statement with a duty of %.2f; wrk at %d connections, %d s windows, %d pairs of phases (medians)\n\n",
		r.Rows, r.Batch, r.Duty, r.Conns, int(r.WindowS), len(r.Phases)/2)
	fmt.Fprintf(w, "%-18s %10s %10s %10s\n", "", "req/s", "p50 ms", "p99 ms")
	fmt.Fprintf(w, "%-18s %10.0f %10.2f %10.1f\n", "without pruning", r.Off.RPS, r.Off.P50, r.Off.P99)
	fmt.Fprintf(w, "%-18s %10.0f %10.2f %10.1f\n", "while pruning", r.On.RPS, r.On.P50, r.On.P99)
	fmt.Fprintf(w, "%-18s %10.3f %10.3f %10.3f\n", "ratio", r.RPSRatio, r.P50Ratio, r.P99Ratio)
	fmt.Fprintf(w, "\npruned under load: %d records, %.0f/s; the rest without load: %d, %.0f/s (fill took %.0f s)\n",
		r.PrunedUnderLoad, r.PrunedUnderLoadPerS, r.RestUnloaded, r.RestUnloadedPerS, r.FillS)
	if p := r.Partition; p != nil {
		fmt.Fprintf(w, "\n%d old records: batch deletes (%d rows each, no pause) %.1f s; partition detach %.3f s, drop %.3f s\n",
			p.Rows, r.Batch, p.BatchDeleteS, p.DetachS, p.DropS)
		fmt.Fprintf(w, "insert of 100 records: plain %.2f ms, partitioned by day %.2f ms (%.3fx)\n",
			p.InsertPlainMS, p.InsertPartitionedMS, p.InsertRatio)
	}
}
