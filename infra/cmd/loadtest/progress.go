package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress shows how the load test goes, on stderr: a bar redrawn in place on a terminal, a
// plain line every few seconds otherwise (CI logs, files).
type Progress struct {
	w        io.Writer
	terminal bool
	every    time.Duration
	status   func() ProgressStatus

	mu      sync.Mutex
	stop    chan struct{}
	done    chan struct{}
	lastLen int
}

// ProgressStatus is one reading.
type ProgressStatus struct {
	Phase            string // "sending", "draining"
	Elapsed, Total   time.Duration
	Sent, Accepted   int64
	AtMeta, Expected int64
}

// isTerminal reports whether f is a character device (a terminal), without a dependency.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// NewProgress returns a display on f; status is called at every redraw.
func NewProgress(f *os.File, status func() ProgressStatus) *Progress {
	p := &Progress{w: f, terminal: isTerminal(f), status: status}
	p.every = 5 * time.Second
	if p.terminal {
		p.every = 250 * time.Millisecond
	}
	return p
}

// Start redraws until Stop.
func (p *Progress) Start() {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
}

// Stop ends the display, leaving the last reading on its own line.
func (p *Progress) Stop() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.stop = nil
	p.draw()
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}

func (p *Progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := FormatProgress(p.status(), p.terminal)
	if !p.terminal {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := ""
	if n := p.lastLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprint(p.w, "\r"+line+pad)
	p.lastLen = len(line)
}

// FormatProgress renders one reading: with a bar for a terminal, as a plain line otherwise.
func FormatProgress(s ProgressStatus, bar bool) string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Accepted) / s.Elapsed.Seconds()
	}
	var b strings.Builder
	if bar {
		const width = 24
		frac := 0.0
		if s.Total > 0 {
			frac = min(1, s.Elapsed.Seconds()/s.Total.Seconds())
		}
		if s.Phase != "sending" {
			frac = 1
			if s.Expected > 0 {
				frac = min(1, float64(s.AtMeta)/float64(s.Expected))
			}
		}
		full := int(frac * width)
		b.WriteString("[" + strings.Repeat("=", full) + strings.Repeat(" ", width-full) + "] ")
	}
	fmt.Fprintf(&b, "%s %s/%s  sent %s  accepted %s (%s/s)  at Meta %s",
		s.Phase, s.Elapsed.Truncate(time.Second), s.Total.Truncate(time.Second),
		thousands(float64(s.Sent)), thousands(float64(s.Accepted)), thousands(rate), thousands(float64(s.AtMeta)))
	if s.Expected > 0 {
		fmt.Fprintf(&b, " of %s", thousands(float64(s.Expected)))
	}
	return b.String()
}

// thousands formats a number rounded to an integer with thousands separators: 12,345.
func thousands(v float64) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
