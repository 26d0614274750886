package store_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	"golang.org/x/sys/unix"

	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// TestOpenBoundsTheConnect: a server that accepts connections and never
// answers fails a ping within the connect timeout inlet adds to a URL that
// has none, instead of holding it forever.
func TestOpenBoundsTheConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	db, err := store.Open("postgres://inlet@" + ln.Addr().String() + "/inlet?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = db.PingContext(ctx)
	if took := time.Since(start); err == nil || took > store.DefaultConnectTimeout+3*time.Second {
		t.Errorf("ping of a server that never answers: %v after %v, want an error within about %v", err, took, store.DefaultConnectTimeout)
	}
}

// TestDialerSetsTimeouts: TCP connections to PostgreSQL probe a silent
// peer and give up on unacknowledged data, so that a database host that
// stops answering fails statements in seconds.
func TestDialerSetsTimeouts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := store.Dialer{}.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	var gerr error
	raw.Control(func(fd uintptr) {
		for name, opt := range map[string][2]int{
			"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
			"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
			"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
			"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
			"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
		} {
			v, err := unix.GetsockoptInt(int(fd), opt[0], opt[1])
			if err != nil {
				gerr = fmt.Errorf("%s: %w", name, err)
				return
			}
			got[name] = v
		}
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 20000}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

// TestLateBatchIsNotCommitted: a batch that reaches the database after its
// submitter gave up (the database stopped answering, then resumed) fails
// instead of storing an event whose request was answered 503.
func TestLateBatchIsNotCommitted(t *testing.T) {
	dsn := storetest.NewURL(t)
	px := newStallProxy(t, dsn)
	db, err := store.Open(px.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	w := store.NewWriter(store.New(db, nil), store.WriterOptions{Workers: 1, Timeout: time.Second}, slog.New(slog.DiscardHandler))
	defer w.Close()
	// Warm: the statement is prepared and the connection open.
	if _, err := w.Submit(context.Background(), record(1, "warm")); err != nil {
		t.Fatal(err)
	}

	px.stall(true) // the database stops answering: bytes are held, not lost
	rec := record(1, "late")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err = w.Submit(ctx, rec)
	cancel()
	if err == nil {
		t.Fatal("Submit succeeded while the database did not answer")
	}
	time.Sleep(1500 * time.Millisecond) // well past the batch's deadline
	px.stall(false)                     // it answers again, and runs what it was sent

	check, err := store.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := check.Get(&n, `SELECT count(*) FROM events WHERE id = $1`, rec.Event.ID); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatal("the event of a request answered 503 was stored when the database resumed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stallProxy relays connections to a PostgreSQL server and can stall:
// hold the bytes sent to the server, as a frozen host would, and deliver
// them when it resumes.
type stallProxy struct {
	dsn     string
	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
}

func newStallProxy(t *testing.T, dsn string) *stallProxy {
	t.Helper()
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	network, target := "tcp", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	if strings.HasPrefix(cfg.Host, "/") {
		network, target = "unix", filepath.Join(cfg.Host, fmt.Sprintf(".s.PGSQL.%d", cfg.Port))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(func() {
		ln.Close()
		p.stall(false)
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			stalled := p.stalled
			p.mu.Unlock()
			if stalled {
				// A frozen host takes no new session either: the client's
				// cancel request for the stalled statement is lost.
				c.Close()
				continue
			}
			up, err := net.Dial(network, target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(up, c, true)
			go p.pipe(c, up, false)
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p.dsn = fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", host, port, cfg.User, cfg.Database)
	return p
}

func (p *stallProxy) pipe(dst, src net.Conn, toServer bool) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if toServer {
				p.mu.Lock()
				for p.stalled {
					p.cond.Wait()
				}
				p.mu.Unlock()
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) stall(on bool) {
	p.mu.Lock()
	p.stalled = on
	p.mu.Unlock()
	p.cond.Broadcast()
}
