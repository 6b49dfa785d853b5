package workers

import (
	"sync"
	"testing"
)

// deep uses about 12 KiB of stack, as a fan-out member's NewStream does.
//
//go:noinline
func deep(n int) byte {
	var frame [1 << 10]byte
	frame[n%len(frame)] = byte(n)
	if n == 0 {
		return frame[0]
	}
	return deep(n-1) + frame[n%len(frame)]
}

// BenchmarkGo compares a plain goroutine per task with the pool, for
// tasks that outgrow a goroutine's first stack, 8 callers per P at a time.
func BenchmarkGo(b *testing.B) {
	run := func(b *testing.B, spawn func(func())) {
		b.SetParallelism(8)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var wg sync.WaitGroup
			task := func() { deep(12); wg.Done() }
			for pb.Next() {
				wg.Add(1)
				spawn(task)
				wg.Wait()
			}
		})
	}
	b.Run("goroutine", func(b *testing.B) {
		run(b, func(f func()) { go f() })
	})
	b.Run("pool", func(b *testing.B) {
		p := New(256)
		run(b, p.Go)
	})
}
