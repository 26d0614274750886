package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// child is a process the benchmark started; stop ends it.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait has returned
	err  error         // Wait's result, set before done is closed
}

// startChild starts path with args. env, if not nil, replaces the
// environment. stdout and stderr, if nil, are a pipe returned to the caller
// (stdout) and discarded (stderr). The child is stopped if this process dies.
func startChild(path string, args, env []string, dir string, stderr io.Writer) (*child, io.Reader, error) {
	cmd := exec.Command(path, args...)
	cmd.Env, cmd.Dir, cmd.Stderr = env, dir, stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { // owned by c: stop waits for it
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, out, nil
}

// exited reports whether the child has ended on its own.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, and SIGKILL if the child has not exited after grace.
func (c *child) stop(grace time.Duration) error {
	if c.exited() {
		return c.err
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return c.err
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
		return errors.New("killed after not stopping within " + grace.String())
	}
}

// readLine returns the first line of r, waiting at most timeout.
func readLine(r io.Reader, timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() { // ends when r yields a line or is closed
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	select {
	case res := <-ch:
		if res.line == "" && res.err != nil {
			return "", res.err
		}
		return res.line, nil
	case <-time.After(timeout):
		return "", errors.New("no answer within " + timeout.String())
	}
}

// filteredEnv is this process's environment without INLET_* settings that
// would change what is measured; the embedded PostgreSQL's location and
// user are kept.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "INLET_") && k != "INLET_PG_BIN" && k != "INLET_PG_USER" {
			continue
		}
		env = append(env, kv)
	}
	return env
}
