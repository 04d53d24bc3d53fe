package ingesttest

import (
	"bytes"
	"strings"
	"sync"
)

// LineBuffer collects a child process's output: it is safe for the concurrent writes of its
// stdout and stderr, and splits what it holds into lines.
type LineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Lines returns the complete lines so far.
func (b *LineBuffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// String returns all output so far.
func (b *LineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
