package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildInlet compiles ./cmd/inlet into a directory of the test and returns
// the binary's path. The build cache makes repeated builds cheap.
func buildInlet(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "inlet")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/inlet")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/inlet: %v\n%s", err, out)
	}
	return bin
}

// inletProc is a real inlet process, started and stopped at the test's
// will; every run appends its stdout and stderr to logs.
type inletProc struct {
	t    *testing.T
	bin  string
	env  []string
	addr string // host:port it listens on, the same for every run
	logs *syncBuffer

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	state  *os.ProcessState
	runs   int
}

// newInletProc prepares a process with the given settings on top of a clean
// environment; nothing runs until start. The process is killed, if still
// running, when the test ends.
func newInletProc(t *testing.T, bin string, settings map[string]string) *inletProc {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "INLET_") || name == "DATABASE_URL" || name == "NATS_URL" {
			continue // only what the test sets
		}
		env = append(env, kv)
	}
	settings["INLET_HTTP_ADDR"] = addr
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	p := &inletProc{t: t, bin: bin, env: env, addr: addr, logs: &syncBuffer{}}
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *inletProc) base() string { return "http://" + p.addr }

func (p *inletProc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// start runs the process and waits until /readyz answers 200.
func (p *inletProc) start() {
	p.t.Helper()
	if p.running() {
		p.t.Fatal("inlet is already running")
	}
	p.runs++
	fmt.Fprintf(p.logs, "--- run %d ---\n", p.runs)
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env
	cmd.Stdout = p.logs
	cmd.Stderr = p.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start inlet: %v", err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() { // owned by p: kill, term and the cleanup wait for it
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := client.Get(p.base() + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("inlet exited during start-up (%v):\n%s", p.state, relTail(p.logs.String(), 4000))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("inlet not ready after 60s:\n%s", relTail(p.logs.String(), 4000))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// kill stops the process with SIGKILL and waits until it is gone.
func (p *inletProc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("kill inlet: %v", err)
	}
	<-p.exited
}

// signal sends SIGTERM without waiting.
func (p *inletProc) sigterm() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM inlet: %v", err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// code.
func (p *inletProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.state.ExitCode()
	case <-time.After(timeout):
		p.t.Fatalf("inlet still running %v after SIGTERM:\n%s", timeout, relTail(p.logs.String(), 4000))
		return -1
	}
}

// refusing reports whether nothing accepts connections at the process's
// address any more.
func (p *inletProc) refusing() bool {
	c, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// relTail returns the last n bytes of s.
func relTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// chaosLong reports whether the long forms of the reliability tests run
// (make chaos sets INLET_CHAOS=long).
func chaosLong() bool { return os.Getenv("INLET_CHAOS") == "long" }

// relForm returns short in the default form, long in the long one.
func relForm[T any](short, long T) T {
	if chaosLong() {
		return long
	}
	return short
}

// relSleep waits d or until ctx is done; load loops use it to pace retries.
func relSleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
