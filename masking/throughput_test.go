//go:build linux

package masking

import (
	"flag"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

var throughput = flag.Bool("throughput", false, "run TestThroughputCPU")

// threadCPU is the CPU time of the calling OS thread
// (clock_gettime(CLOCK_THREAD_CPUTIME_ID), Linux).
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTime = 3
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

// TestThroughputCPU measures MB per CPU-second of the calling thread, which
// stays meaningful on a loaded machine where wall-clock benchmarks do not.
// go test ./masking -run TestThroughputCPU -throughput -v
func TestThroughputCPU(t *testing.T) {
	if !*throughput {
		t.Skip("run with -throughput")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	corpora := benchCorpora()
	for _, name := range []string{"realistic-mix", "no-pii", "all-pii", "free-text"} {
		c := corpora[name]
		for _, style := range []string{"partial", "redact", "hash"} {
			p := allPolicy(t, style)
			dst := make([]byte, 0, 4096)
			best := time.Duration(1 << 62)
			for range 5 {
				start := threadCPU()
				const passes = 20
				for range passes {
					copy(c.work, c.pristine)
					for _, bd := range c.bounds {
						p.MaskValue(dst[:0], c.work[bd[0]:bd[1]], false)
					}
				}
				best = min(best, (threadCPU()-start)/passes)
			}
			t.Logf("%-14s %-8s %7.1f MB/s per CPU (%5.1f ns/value)", name, style,
				float64(len(c.pristine))/best.Seconds()/1e6, float64(best.Nanoseconds())/float64(len(c.bounds)))
		}
	}
}
