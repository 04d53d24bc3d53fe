package devstack

import "syscall"

// childProcAttr makes the kernel kill a child process if the test binary dies first (a test
// timeout panics without running cleanups); the dev stack's emulators then exit in turn.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
