package procfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
})

// CPUSeconds returns the user plus system CPU time pid has used, from
// /proc/PID/stat (utime and stime, fields 14 and 15).
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, errors.New("procfs: malformed /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, state
	if len(f) < 13 {
		return 0, errors.New("procfs: short /proc/PID/stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("procfs: /proc/PID/stat: %w", err)
	}
	return float64(utime+stime) / clockTicks(), nil
}

// Memory is a process's memory use, in KiB, from /proc/PID/status.
type Memory struct {
	// RSSKiB is VmRSS, the resident set size now.
	RSSKiB int64
	// PeakKiB is VmHWM, the largest resident set size so far.
	PeakKiB int64
}

// Mem returns pid's resident set size and its peak.
func Mem(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			m.RSSKiB, found = n, true
		case "VmHWM":
			m.PeakKiB = n
		}
	}
	if !found {
		return Memory{}, errors.New("procfs: no VmRSS in /proc/PID/status")
	}
	return m, nil
}

// OpenFDs counts pid's open file descriptors: the entries of
// /proc/PID/fd. Reading another user's process needs privileges.
func OpenFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}
