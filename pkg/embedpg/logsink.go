package embedpg

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// tailLines is how many server log lines a start-up error quotes.
const tailLines = 15

// logSink receives postgres's stdout and stderr: it appends them to the log
// file, forwards messages to slog and remembers the last lines for error
// messages. Write is called by the copying goroutine os/exec owns; tail
// may be called concurrently.
type logSink struct {
	file   *os.File
	logger *slog.Logger

	mu      sync.Mutex
	partial []byte
	last    []string
}

func newLogSink(f *os.File, logger *slog.Logger) *logSink {
	return &logSink{file: f, logger: logger}
}

func (w *logSink) Write(p []byte) (int, error) {
	// A log file that cannot be written must not stall postgres, whose
	// stderr this is; the lines still reach slog.
	_, _ = w.file.Write(p)

	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// close flushes a last unterminated line and closes the log file. It is
// called once, after os/exec has finished copying.
func (w *logSink) close() {
	w.mu.Lock()
	if len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = nil
	}
	w.mu.Unlock()
	_ = w.file.Close()
}

// line handles one log line; w.mu is held.
func (w *logSink) line(s string) {
	s = strings.TrimRight(s, "\r")
	if s == "" {
		return
	}
	w.last = append(w.last, s)
	if len(w.last) > tailLines {
		w.last = w.last[len(w.last)-tailLines:]
	}

	// With the default log_line_prefix a message reads
	// "2006-01-02 15:04:05.000 UTC [123] LOG:  text". DETAIL, HINT,
	// STATEMENT and CONTEXT lines only elaborate and are kept in the file.
	for _, sev := range []string{"PANIC", "FATAL", "ERROR", "WARNING", "LOG"} {
		tag := sev + ":  "
		var msg string
		switch {
		case strings.HasPrefix(s, tag): // before the configuration is read
			msg = s[len(tag):]
		case strings.Contains(s, "] "+tag):
			msg = s[strings.Index(s, "] "+tag)+len("] "+tag):]
		default:
			continue
		}
		level := slog.LevelDebug
		if sev == "PANIC" {
			// A PANIC means the server crashed: someone must look.
			level = slog.LevelError
		}
		w.logger.Log(context.Background(), level, "postgres log",
			slog.String("severity", sev), slog.String("line", msg))
		return
	}
}

// tail returns the last lines postgres wrote, for error messages.
func (w *logSink) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.last, "\n")
}
