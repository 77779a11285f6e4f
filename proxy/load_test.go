package proxy

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLoadConcurrentSessions is opt-in: MAILGATE_LOAD_SESSIONS=1000 go test
// -run TestLoadConcurrentSessions -v ./proxy. It opens that many sessions at
// once, each sending one message through the fake upstream, and checks that
// every message arrives and that goroutines and file descriptors return to
// their level before the run.
func TestLoadConcurrentSessions(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MAILGATE_LOAD_SESSIONS"))
	if n <= 0 {
		t.Skip("set MAILGATE_LOAD_SESSIONS=N to run N concurrent sessions")
	}
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Limits.Connections = n + 10
	cfg.Timeouts.Command = 60 * time.Second
	cfg.Timeouts.DataIdle = 60 * time.Second
	cfg.Timeouts.Upstream = 60 * time.Second
	addr, srv, _ := startServer(t, cfg, nil)
	g0, fd0 := runtime.NumGoroutine(), countFDs()
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ft := &failT{}
			func() {
				defer func() { recover() }()
				c := dialClient(ft, addr)
				c.c.SetDeadline(time.Now().Add(120 * time.Second))
				c.cmd("EHLO load.test", "250")
				if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
					ft.Errorf("reply %q", rp)
				}
				c.cmd("QUIT", "221")
				c.c.Close()
			}()
			if ft.msg != "" {
				mu.Lock()
				failures = append(failures, ft.msg)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	if len(failures) > 0 {
		t.Fatalf("%d of %d sessions failed, first: %s", len(failures), n, failures[0])
	}
	if got := len(up.transactions()); got != n {
		t.Fatalf("upstream got %d messages, want %d", got, n)
	}
	waitFor(t, "sessions to end", func() bool { return srv.active.Load() == 0 })
	time.Sleep(200 * time.Millisecond)
	g1, fd1 := runtime.NumGoroutine(), countFDs()
	t.Logf("%d sessions in %v; goroutines %d → %d, fds %d → %d", n, elapsed.Round(time.Millisecond), g0, g1, fd0, fd1)
	if g1 > g0+n/100+5 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if fd0 >= 0 && fd1 > fd0+n/100+5 {
		t.Errorf("file descriptors grew from %d to %d", fd0, fd1)
	}
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// failT is a testing.TB for client goroutines: a failure records the
// message and stops the goroutine.
type failT struct {
	testing.TB
	msg string
}

func (f *failT) Helper()        {}
func (f *failT) Cleanup(func()) {}
func (f *failT) Fatal(a ...any) { f.msg = fmt.Sprint(a...); panic(f) }
func (f *failT) Fatalf(format string, a ...any) {
	f.msg = fmt.Sprintf(format, a...)
	panic(f)
}
func (f *failT) Errorf(format string, a ...any) { f.msg = fmt.Sprintf(format, a...) }
