package main

import "syscall"

// childProcAttr makes the kernel kill the dev stack if the load test dies first (Ctrl-C twice,
// a panic, SIGKILL); the dev stack's emulators then exit in turn (see package emulators).
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
