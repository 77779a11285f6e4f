package redisstate_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"mailgate/internal/e2e"
	"mailgate/rules"
)

// BenchmarkRate is one rate() against a private Redis (a Lua script round
// trip on loopback), against the in-process LRU: what each rate() call of
// a policy costs with state: redis. Beside the wall time it reports the
// CPU per call of this process (cpu-ns/op: go-redis and the store) and of
// redis-server (redis-cpu-ns/op), which share the machine's cores with
// mailgate in production, and the time Redis spent executing the script
// itself (exec-ns/op, INFO commandstats: without the network and the
// event loop); "ping" is the floor, one PING round trip on the same kind
// of connection. The "warm" cases first give the key 100,000
// hits, the state of the bench/proxy targets after a few runs (every
// message there counts the same two keys).
func BenchmarkRate(b *testing.B) {
	r := e2e.StartRedis(b)
	s, err := newStoreB(r.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pid := r.P.Cmd.Process.Pid
	opts, _ := redis.ParseURL(r.URL)
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	b.Run("ping", func(b *testing.B) {
		benchCPU(b, pid, func() error { return c.Ping(ctx).Err() })
	})
	rate := func(key string) func() error {
		return func() error { _, err := s.Rate(key, time.Hour); return err }
	}
	// exec reports the server's own time in EVALSHA per call of f.
	exec := func(f func(b *testing.B)) func(b *testing.B) {
		return func(b *testing.B) {
			c.ConfigResetStat(ctx)
			f(b)
			info, _ := c.Info(ctx, "commandstats").Result()
			if i := strings.Index(info, "cmdstat_evalsha:"); i >= 0 {
				var calls, usec int64
				fmt.Sscanf(info[i:], "cmdstat_evalsha:calls=%d,usec=%d", &calls, &usec)
				if calls > 0 {
					b.ReportMetric(float64(usec*1000)/float64(calls), "exec-ns/op")
				}
			}
		}
	}
	b.Run("redis", exec(func(b *testing.B) { benchCPU(b, pid, rate("from:alice@example.org")) }))
	for i := 0; i < 100000; i++ {
		if _, err := s.Rate("from:warm@example.org", time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("redis-warm", exec(func(b *testing.B) { benchCPU(b, pid, rate("from:warm@example.org")) }))
	b.Run("redis-warm-parallel", exec(func(b *testing.B) {
		benchCPUParallel(b, pid, rate("from:warm@example.org"))
	}))
	lru := rules.NewState(0, nil)
	b.Run("lru", func(b *testing.B) {
		benchCPU(b, 0, func() error { _, err := lru.Rate("from:alice@example.org", time.Hour); return err })
	})
}

func benchCPU(b *testing.B, pid int, op func() error) {
	b.ReportAllocs()
	c0, r0 := procCPU(), pidCPU(pid)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCPU(b, pid, c0, r0)
}

func benchCPUParallel(b *testing.B, pid int, op func() error) {
	b.ReportAllocs()
	c0, r0 := procCPU(), pidCPU(pid)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportCPU(b, pid, c0, r0)
}

func reportCPU(b *testing.B, pid int, c0, r0 time.Duration) {
	if c := procCPU() - c0; c > 0 {
		b.ReportMetric(float64(c.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	if pid != 0 {
		if r := pidCPU(pid) - r0; r > 0 {
			b.ReportMetric(float64(r.Nanoseconds())/float64(b.N), "redis-cpu-ns/op")
		}
	}
}

// procCPU is this process's CPU time (every goroutine's: go-redis reads
// and writes on other threads than the benchmark's).
func procCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pidCPU is the CPU time of another process from /proc/PID/stat (utime
// and stime, in clock ticks of 10 ms: benchmarks of a few seconds keep the
// rounding under 1%).
func pidCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	buf, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(buf)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ut, st int64
	if len(f) < 13 {
		return 0
	}
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
