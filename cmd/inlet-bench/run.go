package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Load generators.
const (
	loadWrk = "wrk" // wrk and bench/wrk/signed.lua, closed loop
	loadGo  = "go"  // inlet-bench load, closed loop or at a fixed rate
)

// benchOptions are the flags of run.
type benchOptions struct {
	loadGen    string
	wrkBin     string
	wrkScript  string
	wrkThreads int
	bodies     int     // distinct signed bodies per wrk phase
	rate       float64 // requests per second of the Go generator; 0 for closed loop
	inletBin   string
	packs      string
	trigger    string
	rounds     int
	conns      []int
	warmup     time.Duration
	duration   time.Duration
	resultsDir string
	keep       bool
	before     string // a second inlet binary measured in the same rounds
	// destination: also measure each phase with a destination enabled,
	// sending to the sink with at most dstInFlight attempts at a time.
	destination bool
	dstInFlight int
	dstWait     time.Duration // the longest wait for a phase's deliveries
	inletEnv    []string      // more of inlet's environment (retention: its own pruner off)
	out         io.Writer
	log         io.Writer
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := benchOptions{out: stdout, log: stderr}
	fs.StringVar(&o.loadGen, "load", loadWrk, "load generator: wrk (the yardstick, closed loop) or go (inlet-bench load, closed loop or at -rate)")
	fs.StringVar(&o.wrkBin, "wrk", "wrk", "wrk binary, for -load wrk")
	fs.StringVar(&o.wrkScript, "wrk-script", "bench/wrk/signed.lua", "wrk script sending the signed bodies, for -load wrk")
	fs.IntVar(&o.wrkThreads, "wrk-threads", 1, "wrk threads (at most the connection count), for -load wrk")
	fs.IntVar(&o.bodies, "bodies", 10000, "distinct signed bodies each wrk phase cycles through, for -load wrk")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second over all connections, sent on a fixed schedule (open loop), for -load go; 0 sends each request when the last is answered")
	fs.StringVar(&o.inletBin, "inlet", "bin/inlet", "inlet binary to start")
	fs.StringVar(&o.packs, "packs", "packs", "packs directory for inlet")
	fs.StringVar(&o.trigger, "trigger", "myapp.deployment_complete", "trigger to send webhooks to")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; the table shows medians over them")
	conns := fs.String("conns", "1,64,256", "comma-separated connection counts of each round")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before each measured window")
	fs.DurationVar(&o.duration, "d", 5*time.Second, "measured window of each phase")
	fs.StringVar(&o.resultsDir, "results", "bench/results", "directory for the JSON results and the CPU profile; empty writes none")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (inlet's log, data)")
	fs.StringVar(&o.before, "before", "", "another inlet binary (say, of the previous commit) to measure in the same rounds, for before/after ratios")
	fs.BoolVar(&o.destination, "destination", true, "also measure inlet in each phase with a destination enabled, forwarding every event to a sink on 127.0.0.1 (the -inlet binary only)")
	fs.IntVar(&o.dstInFlight, "destination-in-flight", 10, "max_in_flight of the destination (1 to 100)")
	fs.DurationVar(&o.dstWait, "destination-wait", 2*time.Minute, "how long each phase may wait for its deliveries to succeed before the run fails")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-conns: bad connection count %q", s)
		}
		o.conns = append(o.conns, n)
	}
	if o.rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	if o.dstInFlight < 1 || o.dstInFlight > 100 {
		return errors.New("-destination-in-flight must be between 1 and 100")
	}
	if o.dstWait <= 0 {
		return errors.New("-destination-wait must be positive")
	}
	switch o.loadGen {
	case loadWrk:
		// wrk sleeps for whole seconds.
		if o.duration < time.Second || o.duration%time.Second != 0 || o.warmup%time.Second != 0 {
			return errors.New("-load wrk: -d and -warmup must be whole seconds (-warmup may be 0)")
		}
		if o.rate != 0 {
			return errors.New("-rate needs -load go: wrk keeps every connection busy")
		}
		if o.bodies < 1 || o.wrkThreads < 1 {
			return errors.New("-bodies and -wrk-threads must be at least 1")
		}
		if _, err := exec.LookPath(o.wrkBin); err != nil {
			return fmt.Errorf("-load wrk: %w (scripts/ensure-wrk.sh installs it; -load go needs no wrk)", err)
		}
		if _, err := os.Stat(o.wrkScript); err != nil {
			return fmt.Errorf("-wrk-script: %w", err)
		}
	case loadGo:
		if o.rate < 0 {
			return errors.New("-rate must not be negative")
		}
	default:
		return fmt.Errorf("-load %q: want wrk or go", o.loadGen)
	}
	if o.before != "" && os.Getenv("DATABASE_URL") != "" {
		// Two gateways on one database share one publisher and one trigger.
		return errors.New("-before needs the embedded PostgreSQL: unset DATABASE_URL")
	}
	b := &bench{o: o, runID: time.Now().UTC().Format("20060102T150405Z")}
	defer b.close()
	return b.run(ctx)
}

// bench is one run of the benchmark: its servers, its connections to
// inlet's database and stream, and what it measured.
type bench struct {
	o     benchOptions
	runID string
	self  string
	tmp   string

	baseline *child
	baseURL  string
	in       *inlet
	pre      *inlet // the -before binary, if any
	sink     *sinkProc
	dst      bool // b.in has a destination sending to sink: measure with it

	res Results
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.o.log, "inlet-bench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) error {
	begin := time.Now()
	var err error
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "inlet-bench-"); err != nil {
		return err
	}
	// The embedded PostgreSQL runs as an unprivileged user when we are root;
	// it must be able to reach its cluster directory under here.
	if err := os.Chmod(b.tmp, 0o755); err != nil {
		return err
	}
	b.res = Results{
		RunID: b.runID, Started: time.Now().UTC(), Machine: machine(), Trigger: b.o.trigger,
		Rounds: b.o.rounds, Conns: b.o.conns, WarmupS: b.o.warmup.Seconds(), WindowS: b.o.duration.Seconds(),
		BodyBytes: BodySize, Database: "embedded", NATS: "embedded",
		Load: LoadGenerator{Mode: b.o.loadGen},
	}
	switch b.o.loadGen {
	case loadWrk:
		b.res.Load.Version = wrkVersion(ctx, b.o.wrkBin)
		b.res.Load.Threads = b.o.wrkThreads
		b.res.Load.Script = b.o.wrkScript
		b.res.Load.Bodies = b.o.bodies
		b.res.Load.SignatureHeader = "X-Hub-Signature-256"
		b.res.Load.TimeoutS = wrkTimeout.Seconds()
	case loadGo:
		b.res.Load.Version = "inlet-bench load"
		b.res.Load.GOMAXPROCS = 1
		b.res.Load.RatePerS = b.o.rate
		b.res.Load.SignatureHeader = "X-Webhook-Signature"
		b.res.Load.DeliveryIDHeader = "X-Webhook-ID"
	}
	if os.Getenv("DATABASE_URL") != "" {
		b.res.Database = "DATABASE_URL"
	}
	if os.Getenv("NATS_URL") != "" {
		b.res.NATS = "NATS_URL"
	}

	b.logf("starting the baseline server")
	if err := b.startBaseline(ctx); err != nil {
		return err
	}
	b.logf("starting %s (temporary data under %s)", b.o.inletBin, b.tmp)
	b.in, err = startInlet(ctx, b.o, b.tmp, b.logf)
	if err != nil {
		return err
	}
	b.res.Machine.Postgres = b.in.pgVersion
	if b.o.before != "" {
		o := b.o
		o.inletBin = b.o.before
		b.logf("starting %s, the before binary", o.inletBin)
		dir := filepath.Join(b.tmp, "before")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if b.pre, err = startInlet(ctx, o, dir, b.logf); err != nil {
			return err
		}
		b.res.Before = o.inletBin
	}
	for _, in := range []*inlet{b.in, b.pre} {
		if in == nil {
			continue
		}
		if err := in.configure(ctx); err != nil {
			return err
		}
		b.logf("warming %s up", in.o.inletBin)
		if _, err := b.load(ctx, in.secret, in.webhookURL, 64, 3*time.Second, 0, b.runID+"-warm", nil); err != nil {
			return err
		}
		if _, err := in.drain(ctx); err != nil {
			return err
		}
	}
	if b.o.destination {
		if err := b.setUpDestination(ctx); err != nil {
			return err
		}
	}
	if b.res.Durability, err = b.in.durability(ctx); err != nil {
		return err
	}
	if !b.res.Durability.Default() {
		b.logf("warning: inlet's stores are not at their default durability: %+v", b.res.Durability)
	}

	maxConns := b.o.conns[0]
	for _, c := range b.o.conns {
		maxConns = max(maxConns, c)
	}
	for r := 1; r <= b.o.rounds; r++ {
		for _, c := range b.o.conns {
			profile := r == b.o.rounds && c == maxConns && b.o.resultsDir != ""
			p, err := b.phase(ctx, r, c, profile)
			if err != nil {
				return err
			}
			b.res.Phases = append(b.res.Phases, p)
			b.logf("round %d, %3d conns: baseline %6.0f req/s, inlet %6.0f req/s (%.3fx), p50 %.2f ms, p99 %.1f ms, errors %d, backlog at stop %d",
				r, c, p.Baseline.RPS, p.Inlet.RPS, p.Ratio, p.Inlet.P50, p.Inlet.P99, p.Inlet.Errors(), p.BacklogAtStop)
			if q := p.Destination; q != nil {
				d := q.Deliveries
				b.logf("round %d, %3d conns: with a destination %6.0f req/s (%.3fx), p50 %.2f ms, p99 %.1f ms, errors %d; %d deliveries, %.0f/s, lag p50 %.0f ms, p99 %.0f ms, drained in %.2f s",
					r, c, q.Inlet.RPS, q.Ratio, q.Inlet.P50, q.Inlet.P99, q.Inlet.Errors(), d.Deliveries, d.PerS, d.LagP50MS, d.LagP99MS, d.DrainS)
			}
			if q := p.Before; q != nil {
				b.logf("round %d, %3d conns: before %6.0f req/s (%.3fx), p50 %.2f ms, p99 %.1f ms, errors %d",
					r, c, q.Inlet.RPS, q.Ratio, q.Inlet.P50, q.Inlet.P99, q.Inlet.Errors())
			}
		}
	}
	b.res.PeakRSSMB, _ = b.in.rss("VmHWM")
	b.res.Summary = summarize(b.res.Phases, b.o.conns)
	b.res.Targets = checkTargets(b.res)
	b.res.DurationS = time.Since(begin).Seconds()

	var top string
	if b.o.resultsDir != "" && len(b.in.profile) > 0 {
		top = pprofTop(ctx, b.o.inletBin, b.in.profile)
		b.res.ProfileTop = top
	}
	report(b.o.out, b.res)
	if top != "" {
		fmt.Fprintf(b.o.out, "\nTop of the CPU profile of inlet during the last %d-connection phase:\n%s", maxConns, top)
	}
	if b.o.resultsDir != "" {
		if err := b.save(); err != nil {
			return err
		}
	}
	if !b.res.Targets.AllMet() {
		fmt.Fprintln(b.o.out, "\nnot every target was met (see above)")
	}
	if !b.res.Targets.Consistent {
		return errors.New("some 200 has no event row or no stream message, or an event has no 200")
	}
	if d := b.res.Targets.Deliveries; d != nil && !*d {
		return errors.New("with the destination, some event did not get exactly one delivery, or the sink missed one")
	}
	return nil
}

// phase runs one round at c connections: the baseline, then inlet, inlet
// with the destination enabled, and the before binary, each followed by
// waiting for its outbox to drain and checking what was stored.
func (b *bench) phase(ctx context.Context, round, c int, profile bool) (Phase, error) {
	p := Phase{Round: round, Conns: c}
	var err error
	cpu0 := treeCPU(b.baseline.cmd.Process.Pid)
	// The baseline does not check signatures; it gets the same signed
	// requests as inlet all the same.
	prefix := fmt.Sprintf("%s-base-r%dc%d", b.runID, round, c)
	if p.Baseline, err = b.load(ctx, b.in.secret, b.baseURL, c, b.o.duration, b.o.warmup, prefix, nil); err != nil {
		return p, err
	}
	p.Baseline.ServerCPU = treeCPU(b.baseline.cmd.Process.Pid).sub(cpu0).self.Seconds()
	var q *Phase
	if b.pre != nil {
		q = &Phase{Round: round, Conns: c, Baseline: p.Baseline}
		// Alternate which build goes first, so that neither always runs
		// on the heels of the baseline.
		if round%2 == 0 {
			if _, err := b.measure(ctx, b.pre, q, false, ""); err != nil {
				return p, err
			}
		}
	}
	if _, err := b.measure(ctx, b.in, &p, profile, ""); err != nil {
		return p, err
	}
	if b.dst {
		if err := b.measureDestination(ctx, &p); err != nil {
			return p, err
		}
	}
	if q != nil {
		if round%2 != 0 {
			if _, err := b.measure(ctx, b.pre, q, false, ""); err != nil {
				return p, err
			}
		}
		q.Baseline = LoadResult{}
		p.Before = q
	}
	return p, nil
}

// measure runs the inlet part of phase p on in and returns when the load
// ended. tag, if not empty, sets the phase's requests apart from others of
// the same round and connection count.
func (b *bench) measure(ctx context.Context, in *inlet, p *Phase, profile bool, tag string) (time.Time, error) {
	var stop time.Time
	before, err := in.snapshot(ctx)
	if err != nil {
		return stop, err
	}
	var prof func() error
	if profile {
		prof = func() error { return in.fetchProfile(ctx, b.o.warmup, b.o.duration) }
	}
	prefix := fmt.Sprintf("%s-r%dc%d", b.runID, p.Round, p.Conns)
	if tag != "" {
		prefix = fmt.Sprintf("%s-%s-r%dc%d", b.runID, tag, p.Round, p.Conns)
	}
	cpu0 := treeCPU(in.pid())
	if p.Inlet, err = b.load(ctx, in.secret, in.webhookURL, p.Conns, b.o.duration, b.o.warmup, prefix, prof); err != nil {
		return stop, err
	}
	stop = time.Now()
	cpu := treeCPU(in.pid()).sub(cpu0)
	p.Inlet.ServerCPU, p.PostgresCPU = cpu.self.Seconds(), cpu.children.Seconds()
	p.Profiled = profile
	if p.Baseline.RPS > 0 {
		p.Ratio = p.Inlet.RPS / p.Baseline.RPS
	}
	p.RSSMB, _ = in.rss("VmRSS")
	if p.BacklogAtStop, err = in.backlog(ctx); err != nil {
		return stop, err
	}
	drained, err := in.drain(ctx)
	if err != nil {
		return stop, err
	}
	p.DrainS = drained.Seconds()
	if p.Inlet.Unanswered > 0 {
		// Requests wrk left in flight may still be accepted: wait for
		// inlet to finish them before counting.
		if err := in.settle(ctx); err != nil {
			return stop, err
		}
	}
	after, err := in.snapshot(ctx)
	if err != nil {
		return stop, err
	}
	if p.Check, err = in.check(ctx, b.o.loadGen, prefix, before, after, p.Inlet); err != nil {
		return stop, err
	}
	p.MeanBatch, p.MeanBatchMS = after.batchStats(before)
	return stop, nil
}

// load runs the load generator against url with conns connections for a
// measured window d after warmup, its requests signed with secret, their
// delivery ids (Go) or body ids (wrk) starting with prefix. during, if
// set, runs while it does.
func (b *bench) load(ctx context.Context, secret, url string, conns int, d, warmup time.Duration, prefix string, during func() error) (LoadResult, error) {
	type result struct {
		res LoadResult
		err error
	}
	done := make(chan result, 1)
	go func() { // owned by load, which waits for it
		var r result
		if b.o.loadGen == loadWrk {
			r.res, r.err = b.wrkLoad(ctx, secret, url, conns, d, warmup, prefix)
		} else {
			r.res, r.err = b.goLoad(ctx, secret, url, conns, d, warmup, prefix)
		}
		done <- r
	}()
	var derr error
	if during != nil {
		derr = during()
	}
	r := <-done
	if r.err != nil {
		return r.res, r.err
	}
	return r.res, derr
}

// goLoad runs inlet-bench load as a separate process limited to one core
// (GOMAXPROCS=1), so that it and the server under test share the machine
// the same way in every phase.
func (b *bench) goLoad(ctx context.Context, secret, url string, conns int, d, warmup time.Duration, prefix string) (LoadResult, error) {
	var res LoadResult
	cmd := exec.CommandContext(ctx, b.self, "load", "-url", url, "-c", strconv.Itoa(conns),
		"-d", d.String(), "-warmup", warmup.String(), "-id-prefix", prefix,
		"-rate", strconv.FormatFloat(b.o.rate, 'f', -1, 64))
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", secretEnv+"="+secret)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return res, fmt.Errorf("load generator: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return res, fmt.Errorf("load generator output: %w", err)
	}
	res.LoadCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return res, nil
}

// wrkLoad signs b.o.bodies bodies for the phase, then runs wrk for the
// warm-up, if any, and again for the measured window, so that wrk's rate
// and percentiles cover the window alone.
func (b *bench) wrkLoad(ctx context.Context, secret, url string, conns int, d, warmup time.Duration, prefix string) (LoadResult, error) {
	bodies := filepath.Join(b.tmp, prefix+".bodies")
	if err := writeBodies(bodies, []byte(secret), prefix, b.o.bodies); err != nil {
		return LoadResult{}, fmt.Errorf("sign bodies: %w", err)
	}
	defer os.Remove(bodies)
	o := wrkOptions{
		bin: b.o.wrkBin, script: b.o.wrkScript, bodies: bodies,
		url: url, conns: conns, threads: b.o.wrkThreads,
	}
	var warm *wrkSummary
	if warmup > 0 {
		o.d = warmup
		s, err := runWrk(ctx, o)
		if err != nil {
			return LoadResult{}, err
		}
		warm = &s
	}
	o.d = d
	s, err := runWrk(ctx, o)
	if err != nil {
		return LoadResult{}, err
	}
	return s.loadResult(warm, conns), nil
}

func (b *bench) startBaseline(ctx context.Context) error {
	ch, out, err := startChild(b.self, []string{"baseline"}, nil, "", nil)
	if err != nil {
		return err
	}
	b.baseline = ch
	line, err := readLine(out, 10*time.Second)
	if err != nil {
		return fmt.Errorf("baseline server: %w", err)
	}
	b.baseURL = "http://" + line + "/api/v1/webhooks/wh_baseline"
	return nil
}

func (b *bench) save() error {
	if err := os.MkdirAll(b.o.resultsDir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(b.o.resultsDir, b.runID)
	j, err := json.MarshalIndent(b.res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(j, '\n'), 0o644); err != nil {
		return err
	}
	files := base + ".json"
	if len(b.in.profile) > 0 {
		if err := os.WriteFile(base+".cpu.pprof", b.in.profile, 0o644); err != nil {
			return err
		}
		files += ", " + base + ".cpu.pprof"
	}
	fmt.Fprintf(b.o.out, "\nwrote %s\n", files)
	return nil
}

func (b *bench) close() {
	if b.in != nil && b.in.destinationID != "" {
		// With DATABASE_URL the trigger outlives the run: leave it
		// without the destination.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := b.in.api(ctx, http.MethodDelete, "/api/v1/destinations/"+b.in.destinationID, nil, nil); err != nil {
			b.logf("deleting the destination: %v", err)
		}
		cancel()
	}
	for _, in := range []*inlet{b.in, b.pre} {
		if in != nil {
			if err := in.stop(); err != nil {
				b.logf("stopping %s: %v", in.o.inletBin, err)
			}
		}
	}
	if b.baseline != nil {
		b.baseline.stop(5 * time.Second)
	}
	if b.sink != nil {
		b.sink.ch.stop(5 * time.Second)
	}
	if b.tmp != "" {
		if b.o.keep {
			b.logf("kept %s", b.tmp)
		} else {
			os.RemoveAll(b.tmp)
		}
	}
}

// pprofTop summarises a CPU profile with go tool pprof, if go is at hand.
func pprofTop(ctx context.Context, bin string, profile []byte) string {
	f, err := os.CreateTemp("", "inlet-bench-*.pprof")
	if err != nil {
		return ""
	}
	defer os.Remove(f.Name())
	f.Write(profile)
	f.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", bin, f.Name()).Output()
	if err != nil {
		return ""
	}
	// Drop the header lines naming the temporary file and build id.
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "Duration:") || strings.HasPrefix(l, "Showing") || strings.Contains(l, "flat%") {
			return strings.Join(lines[i:], "\n")
		}
	}
	return string(out)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// machine describes where the benchmark ran.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
