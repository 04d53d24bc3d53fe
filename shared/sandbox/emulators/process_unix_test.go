//go:build unix

package emulators

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// alive reports whether pid runs. A zombie (exited, not yet reaped by its new parent) counts
// as dead.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err)
	}
	// Format: pid (comm) state ...
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

func syscallKill(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
