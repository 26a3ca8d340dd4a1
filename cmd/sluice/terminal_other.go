//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import (
	"errors"
	"os"
)

func isTerminal(fd int) bool { return false }

func readPasswordNoEcho(f *os.File) (string, error) {
	return "", errors.New("password prompts are not supported on this platform: pipe the password on stdin")
}
