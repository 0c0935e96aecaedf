//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package main

import "time"

// processCPU is not available on this platform.
func processCPU() (user, sys time.Duration, ok bool) {
	return 0, 0, false
}
