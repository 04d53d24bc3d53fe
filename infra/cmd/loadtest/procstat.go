package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// cpuTime returns the CPU time (user + system) a process has used, from /proc. It fails off
// Linux or for a process that is gone.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ... utime is field 14, stime 15; comm may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// peakRSSMB returns a process's peak resident memory (VmHWM) in MB.
func peakRSSMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// machineTicks are /proc/stat's first line, summed over CPUs, in clock ticks.
type machineTicks struct {
	processes int64 // user + nice + system: what processes (ours and others) ran
	interrupt int64 // irq + softirq: e.g. loopback network processing, billed to no process
	steal     int64 // time the hypervisor gave to other guests
	total     int64
}

func readMachineTicks() (machineTicks, error) {
	var m machineTicks
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return m, fmt.Errorf("/proc/stat: unexpected format")
	}
	var v [8]int64 // user nice system idle iowait irq softirq steal (guest is inside user)
	for i := range v {
		if v[i], err = strconv.ParseInt(fields[i+1], 10, 64); err != nil {
			return m, err
		}
		m.total += v[i]
	}
	m.processes, m.interrupt, m.steal = v[0]+v[1]+v[2], v[5]+v[6], v[7]
	return m, nil
}

// processTicks returns every process's CPU ticks (user + system) and command name, from /proc.
func processTicks() map[int]procTicks {
	out := map[int]procTicks{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(string(b[end+1:]))
		if len(fields) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		s, _ := strconv.ParseInt(fields[12], 10, 64)
		out[pid] = procTicks{comm: string(b[open+1 : end]), ticks: u + s}
	}
	return out
}

type procTicks struct {
	comm  string
	ticks int64
}

// busiestOthers names the processes outside ours that used the most CPU between two
// snapshots, e.g. "chaos.test 0.21, node 0.12".
func busiestOthers(before, after map[int]procTicks, ours []int, wall time.Duration) string {
	mine := map[int]bool{}
	for _, p := range ours {
		mine[p] = true
	}
	byName := map[string]int64{}
	for pid, a := range after {
		if mine[pid] {
			continue
		}
		byName[a.comm] += a.ticks - before[pid].ticks // a process started meanwhile: all of it
	}
	type use struct {
		name  string
		cores float64
	}
	var uses []use
	for name, t := range byName {
		if c := float64(t) / clockTicks / wall.Seconds(); c >= 0.01 {
			uses = append(uses, use{name, c})
		}
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].cores > uses[j].cores })
	var parts []string
	for _, u := range uses[:min(len(uses), 4)] {
		parts = append(parts, fmt.Sprintf("%s %.2f", u.name, u.cores))
	}
	return strings.Join(parts, ", ")
}

// CPUUse is the CPU a process used during the load, in cores (1.0 = one core busy all along).
// A Node.js emulator runs its JavaScript on one thread: near 1.0 it is the bottleneck.
type CPUUse struct {
	Process string `json:"process"`
	PID     int    `json:"pid"`
	// Cores is the mean over send and drain; PeakCores the busiest second.
	Cores     float64 `json:"cores"`
	PeakCores float64 `json:"peak_cores"`
	// PerSecond is the use of each second, from the start of sending.
	PerSecond []float64 `json:"per_second,omitempty"`
	PeakRSSMB float64   `json:"peak_rss_mb,omitempty"`
	// Detail names, for the other processes, the busiest ones.
	Detail string `json:"detail,omitempty"`
}

// cpuMeter measures the CPU of a few processes between start and stop, second by second.
type cpuMeter struct {
	names  []string
	pids   []int
	before []time.Duration
	at     time.Time

	machine0 machineTicks // at start
	procs0   map[int]procTicks

	mu     sync.Mutex
	last   []time.Duration
	lastAt time.Time
	series [][]float64
	stopCh chan struct{}
	done   chan struct{}
}

func (c *cpuMeter) add(name string, pid int) {
	if pid <= 0 {
		return
	}
	c.names, c.pids = append(c.names, name), append(c.pids, pid)
}

func (c *cpuMeter) start() {
	c.at = time.Now()
	c.before = make([]time.Duration, len(c.pids))
	for i, pid := range c.pids {
		c.before[i], _ = cpuTime(pid)
	}
	c.machine0, _ = readMachineTicks()
	c.procs0 = processTicks()
	c.last, c.lastAt = append([]time.Duration(nil), c.before...), c.at
	c.series = make([][]float64, len(c.pids))
	c.stopCh, c.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-c.stopCh:
				return
			case <-t.C:
				c.sample()
			}
		}
	}()
}

// sample records each process's use since the previous sample.
func (c *cpuMeter) sample() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	wall := now.Sub(c.lastAt).Seconds()
	for i, pid := range c.pids {
		t, err := cpuTime(pid)
		if err != nil {
			continue
		}
		c.series[i] = append(c.series[i], (t-c.last[i]).Seconds()/wall)
		c.last[i] = t
	}
	c.lastAt = now
}

// stop returns the use since start of every process that could be read.
func (c *cpuMeter) stop() []CPUUse {
	if c.stopCh != nil {
		close(c.stopCh)
		<-c.done
	}
	wall := time.Since(c.at)
	var out []CPUUse
	for i, pid := range c.pids {
		t, err := cpuTime(pid)
		if err != nil || c.before[i] == 0 && t == 0 {
			continue
		}
		u := CPUUse{Process: c.names[i], PID: pid, Cores: (t - c.before[i]).Seconds() / wall.Seconds()}
		for _, v := range c.series[i] {
			u.PerSecond = append(u.PerSecond, math.Round(v*100)/100)
			u.PeakCores = max(u.PeakCores, v)
		}
		u.PeakRSSMB, _ = peakRSSMB(pid)
		out = append(out, u)
	}
	// What the rest of the machine used meanwhile: other work on a shared machine, the
	// kernel's interrupt work and the hypervisor take CPU from the pipeline.
	if m, err := readMachineTicks(); err == nil && m.total > c.machine0.total {
		cores := func(ticks int64) float64 {
			return float64(ticks) / float64(m.total-c.machine0.total) * float64(runtime.NumCPU())
		}
		others := cores(m.processes - c.machine0.processes)
		for _, u := range out {
			others -= u.Cores
		}
		out = append(out,
			CPUUse{Process: "other processes", Cores: max(0, others), Detail: busiestOthers(c.procs0, processTicks(), c.pids, wall)},
			CPUUse{Process: "kernel interrupts", Cores: cores(m.interrupt - c.machine0.interrupt)},
			CPUUse{Process: "stolen by the hypervisor", Cores: cores(m.steal - c.machine0.steal)})
	}
	return out
}
