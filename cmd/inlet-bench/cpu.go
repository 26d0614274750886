package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuTimes is the CPU time, user plus system, of a process and of all its
// descendants (for inlet: the embedded PostgreSQL's postmaster and backends).
type cpuTimes struct {
	self, children time.Duration
}

// treeCPU reads /proc for the CPU time of pid and its descendants. Where
// /proc is missing it returns zeros.
func treeCPU(pid int) cpuTimes {
	type proc struct {
		ppid int
		cpu  time.Duration
	}
	procs := map[int]proc{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime are fields 14 and 15; comm
		// may hold spaces and parentheses, so count from the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fields := bytes.Fields(b[i+1:])
		if len(fields) < 13 {
			continue
		}
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		ppid, _ := strconv.Atoi(string(fields[1]))
		ut, _ := strconv.ParseInt(string(fields[11]), 10, 64)
		st, _ := strconv.ParseInt(string(fields[12]), 10, 64)
		procs[p] = proc{ppid: ppid, cpu: time.Duration(ut+st) * time.Second / clockTicks}
	}
	var t cpuTimes
	t.self = procs[pid].cpu
	for p, pr := range procs {
		for anc := pr.ppid; anc > 1 && p != pid; anc = procs[anc].ppid {
			if anc == pid {
				t.children += pr.cpu
				break
			}
		}
	}
	return t
}

func (t cpuTimes) sub(t0 cpuTimes) cpuTimes {
	return cpuTimes{self: t.self - t0.self, children: t.children - t0.children}
}
