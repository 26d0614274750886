package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// buildNATSServer compiles the nats-server of go.mod (the module's root is
// its main package) into a directory of the test and returns the binary's
// path, so that the test needs no server installed. The build cache makes
// repeated builds cheap.
func buildNATSServer(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "nats-server")
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	return bin
}

// natsNode is one nats-server process of a test cluster. It keeps its
// ports and store directory across restarts; every run appends its output
// to logs.
type natsNode struct {
	t       *testing.T
	bin     string
	name    string // server name, as stream and meta leaders are reported
	client  int    // client port
	monitor int    // HTTP monitoring port
	args    []string
	logs    *syncBuffer

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
}

// natsCluster is a JetStream cluster of nats-server processes on 127.0.0.1.
type natsCluster struct {
	t     *testing.T
	nodes []*natsNode
}

// startNATSCluster starts size servers named n1, n2, ... as one JetStream
// cluster, each routed to all the others and storing under a directory of
// its own, and waits until they have elected a meta leader that sees every
// server. Every server still running is killed when the test ends.
func startNATSCluster(t *testing.T, bin string, size int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t}
	routes := make([]string, size)
	for i := range size {
		n := &natsNode{t: t, bin: bin, name: "n" + strconv.Itoa(i+1), client: freePort(t), monitor: freePort(t), logs: &syncBuffer{}}
		routes[i] = "nats://127.0.0.1:" + strconv.Itoa(freePort(t))
		c.nodes = append(c.nodes, n)
	}
	dir := t.TempDir()
	for i, n := range c.nodes {
		others := slices.Delete(slices.Clone(routes), i, i+1)
		n.args = []string{
			"-a", "127.0.0.1", "-p", strconv.Itoa(n.client), "-m", strconv.Itoa(n.monitor),
			"-n", n.name, "-js", "-sd", filepath.Join(dir, n.name),
			"--cluster_name", "inlet-test", "--cluster", routes[i], "--routes", strings.Join(others, ","),
		}
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.running() {
				_ = n.cmd.Process.Kill()
				<-n.exited
			}
			if t.Failed() {
				t.Logf("nats-server %s:\n%s", n.name, relTail(n.logs.String(), 3000))
			}
		}
	})
	for _, n := range c.nodes {
		n.start()
	}
	c.waitMeta()
	return c
}

// urls returns every server's client URL, comma-separated, as NATS_URL
// lists a cluster.
func (c *natsCluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, "nats://127.0.0.1:"+strconv.Itoa(n.client))
	}
	return strings.Join(us, ",")
}

// node returns the server named name.
func (c *natsCluster) node(name string) *natsNode {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no server named %q in the cluster", name)
	return nil
}

func (n *natsNode) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// start runs the server; waitMeta tells when it has joined the cluster.
func (n *natsNode) start() {
	n.t.Helper()
	fmt.Fprintf(n.logs, "--- start ---\n")
	cmd := exec.Command(n.bin, n.args...)
	cmd.Stdout = n.logs
	cmd.Stderr = n.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start nats-server %s: %v", n.name, err)
	}
	n.cmd = cmd
	n.exited = make(chan struct{})
	go func() { // owned by n: kill and the cluster's cleanup wait for it
		_ = cmd.Wait()
		close(n.exited)
	}()
}

// kill stops the server with SIGKILL and waits until it is gone.
func (n *natsNode) kill() {
	n.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		n.t.Fatalf("kill nats-server %s: %v", n.name, err)
	}
	<-n.exited
}

// jsz is the part of a server's /jsz monitoring answer the test reads.
type jsz struct {
	Messages uint64 `json:"messages"` // held by this server, over all its streams
	Meta     *struct {
		Leader   string `json:"leader"`
		Replicas []struct {
			Name    string `json:"name"`
			Current bool   `json:"current"`
			Offline bool   `json:"offline"`
		} `json:"replicas"`
	} `json:"meta_cluster"`
}

// jsz asks the server for its JetStream state.
func (n *natsNode) jsz() (jsz, error) {
	var j jsz
	client := &http.Client{Timeout: 2 * time.Second}
	res, err := client.Get("http://127.0.0.1:" + strconv.Itoa(n.monitor) + "/jsz")
	if err != nil {
		return j, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return j, fmt.Errorf("/jsz of %s: %s", n.name, res.Status)
	}
	return j, json.NewDecoder(res.Body).Decode(&j)
}

// waitMeta waits until every running server names the same meta leader and
// that leader sees every other running server as current: streams can then
// be placed on any of them.
func (c *natsCluster) waitMeta() {
	c.t.Helper()
	eventually(c.t, 60*time.Second, "the JetStream meta group to form", func() bool {
		leader := ""
		var up []string
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			j, err := n.jsz()
			if err != nil || j.Meta == nil || j.Meta.Leader == "" || (leader != "" && j.Meta.Leader != leader) {
				return false
			}
			leader = j.Meta.Leader
			up = append(up, n.name)
		}
		if !slices.Contains(up, leader) {
			return false
		}
		j, err := c.node(leader).jsz()
		if err != nil || j.Meta == nil {
			return false
		}
		current := 0
		for _, r := range j.Meta.Replicas {
			if r.Current && !r.Offline && slices.Contains(up, r.Name) {
				current++
			}
		}
		return current == len(up)-1
	})
}

// streamInfo asks the stream's leader about it; nil means no answer within
// wait, as while the stream has no leader.
func streamInfo(js jetstream.JetStream, name string, wait time.Duration) *jetstream.StreamInfo {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil
	}
	return s.CachedInfo()
}

// waitStreamHealthy waits until the stream has a leader and every other
// replica is current, and returns the leader's name.
func waitStreamHealthy(t *testing.T, js jetstream.JetStream, name string, replicas int) string {
	t.Helper()
	var leader string
	eventually(t, 60*time.Second, "every replica of the stream to be current", func() bool {
		info := streamInfo(js, name, time.Second)
		if info == nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != replicas-1 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		leader = info.Cluster.Leader
		return true
	})
	return leader
}

// backlogSampler records the largest publishing backlog and the age of
// its oldest event, which is how late publishing runs, while it samples.
type backlogSampler struct {
	stop    context.CancelFunc
	done    chan struct{}
	peak    int64
	maxLag  time.Duration
	lastLag time.Duration
	mu      sync.Mutex
}

// sampleBacklog samples st's unpublished events every 100ms until finish, or the end of
// the test.
func sampleBacklog(t *testing.T, st *store.Store) *backlogSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &backlogSampler{stop: cancel, done: make(chan struct{})}
	t.Cleanup(func() { s.finish() })
	go func() { // owned by s: finish cancels it and waits for it
		defer close(s.done)
		for ctx.Err() == nil {
			qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
			var n int64
			var oldest *time.Time
			pos, err := st.PublishPosition(qctx)
			if err == nil {
				n, oldest, err = st.Backlog(qctx, pos)
			}
			qcancel()
			if err == nil {
				var lag time.Duration
				if oldest != nil {
					lag = max(time.Since(*oldest), 0)
				}
				s.mu.Lock()
				s.peak, s.maxLag, s.lastLag = max(s.peak, n), max(s.maxLag, lag), lag
				s.mu.Unlock()
			}
			relSleep(ctx, 100*time.Millisecond) // sampling interval
		}
	}()
	return s
}

// lag returns the oldest unpublished event's age at the last sample.
func (s *backlogSampler) lag() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastLag
}

// finish stops sampling and returns the peak backlog and the longest lag.
// It may be called more than once.
func (s *backlogSampler) finish() (int64, time.Duration) {
	s.stop()
	<-s.done
	return s.peak, s.maxLag
}

// failover is what one kill of the stream leader cost.
type failover struct {
	leaderless time.Duration // from the kill until a new leader answered
	caughtUp   time.Duration // from the kill until publishing was current again
	maxLag     time.Duration // oldest unpublished event's age, at most
	backlog    int64         // unpublished events, at most
	p99        time.Duration // of the webhook answers meanwhile
	inletOnIt  bool          // inlet was connected to the killed server
}

func (f failover) String() string {
	conn := "elsewhere"
	if f.inletOnIt {
		conn = "to it"
	}
	return fmt.Sprintf("inlet connected %s; no stream leader for %v, publishing current again after %v (lag at most %v, backlog at most %d), webhook answers p99 %v",
		conn, f.leaderless.Round(100*time.Millisecond), f.caughtUp.Round(100*time.Millisecond), f.maxLag.Round(100*time.Millisecond),
		f.backlog, f.p99.Round(time.Millisecond))
}

// TestNATSClusterFailover runs inlet on a JetStream cluster of three
// nats-server processes, its stream replicated three times, and kills
// (SIGKILL) the server leading the stream under signed webhook load, then
// starts it again. Webhooks keep being answered 200 throughout; a new
// leader takes over; every event is published exactly once, in order per
// trigger; and every server ends up holding every message.
func TestNATSClusterFailover(t *testing.T) {
	const size, stream = 3, "RELCLUSTER"
	c := startNATSCluster(t, buildNATSServer(t), size)
	e := startEnv(t, storetest.NewURL(t), c.urls(), stream, "relcluster.events", func(cfg *config.Config) { cfg.StreamReplicas = size })

	// The gateway creates the stream in the background.
	var info *jetstream.StreamInfo
	eventually(t, 30*time.Second, "inlet to create its stream", func() bool {
		info = streamInfo(e.js, stream, time.Second)
		return info != nil
	})
	if info.Config.Replicas != size {
		t.Fatalf("stream %s has %d replicas, want %d (INLET_STREAM_REPLICAS)", stream, info.Config.Replicas, size)
	}
	waitStreamHealthy(t, e.js, stream, size)

	dk, ds := relSignedTrigger(t, e.base, e.token, "myapp.deployment_complete", "")
	gk, gs := relSignedTrigger(t, e.base, e.token, "github.push", "github")
	l := newRelLoad(e.base, relDeploymentSender(dk, ds), relGitHubSender(gk, gs))
	st := store.New(e.db, storetest.Keyring())
	kills := relForm(1, 5)
	workers := relForm(8, 16)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	begin := time.Now()
	wait := l.run(ctx, workers)

	var fs []failover
	for range kills {
		leader := waitStreamHealthy(t, e.js, stream, size)
		waitAccepted(t, l, int64(100+rand.IntN(relForm(300, 3000))))
		victim := c.node(leader)
		from := l.mark()
		s := sampleBacklog(t, st)
		f := failover{inletOnIt: e.g.NATSURL() == "nats://127.0.0.1:"+strconv.Itoa(victim.client)}
		victim.kill()
		killed := time.Now()
		// Asked often, with a short wait, to time the election closely.
		eventually(t, 60*time.Second, "a new stream leader", func() bool {
			info := streamInfo(e.js, stream, 300*time.Millisecond)
			return info != nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != leader
		})
		f.leaderless = time.Since(killed)
		// Events accepted meanwhile waited to be published; publishing is
		// current again when the oldest one left is fresh.
		eventually(t, 60*time.Second, "publishing to catch up on the new leader", func() bool {
			return time.Since(killed) > f.leaderless+200*time.Millisecond && s.lag() < time.Second
		})
		f.caughtUp = time.Since(killed)
		f.backlog, f.maxLag = s.finish()
		f.p99 = relPercentile(l.latencies(from, l.mark()), .99)
		fs = append(fs, f)
		waitAccepted(t, l, int64(relForm(100, 1000)))
		victim.start()
		c.waitMeta()
	}
	waitStreamHealthy(t, e.js, stream, size)
	waitAccepted(t, l, 50)
	stop()
	wait()

	l.resolve(t, 60*time.Second)
	eventually(t, 60*time.Second, "every event published", func() bool {
		return e.count(`SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`) == 0
	})
	events := e.count(`SELECT count(*) FROM events`)
	ids, order := relStreamIDs(t, e.js, stream, events, 30*time.Second)
	f := l.accountFor(t, e.db, ids, modeGraceful)
	l.checkOrder(t, order)
	if f.cut != 0 || f.otherStatus != 0 {
		t.Errorf("%d requests got no answer and %d an answer other than 200; want every one answered 200", f.cut, f.otherStatus)
	}
	// Every server holds the whole stream, the restarted ones included.
	var held []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		held = held[:0]
		all := true
		for _, n := range c.nodes {
			j, err := n.jsz()
			if err != nil {
				held = append(held, fmt.Sprintf("%s: %v", n.name, err))
				all = false
				continue
			}
			held = append(held, fmt.Sprintf("%s %d", n.name, j.Messages))
			all = all && j.Messages == uint64(events)
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("messages held per server: %s; want %d on each", strings.Join(held, ", "), events)
			break
		}
	}

	var lines []string
	for i, f := range fs {
		lines = append(lines, fmt.Sprintf("kill %d: %v", i+1, f))
	}
	t.Logf("figures (NATS cluster of %d, stream replicated %d times, %d workers, %v): %v; stream leader killed %d times and restarted; %s; messages held per server: %s",
		size, size, workers, time.Since(begin).Round(time.Second), f, kills, strings.Join(lines, "; "), strings.Join(held, ", "))
}
