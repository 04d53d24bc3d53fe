//go:build unix && !linux

package devstack

import "syscall"

// childProcAttr: only Linux can tie a child's life to its parent; elsewhere the cleanups do.
func childProcAttr() *syscall.SysProcAttr { return nil }
