package e2e_test

// Load and soak (issue 7). The default run is a smoke test (50 sessions, 5
// seconds). The long runs are opt-in, documented in README "Reliability":
//
//	MAILGATE_LOAD=1000 go test ./e2e/ -run TestLoadConcurrent -v -timeout 20m
//	MAILGATE_SOAK=5m   go test ./e2e/ -run TestSoak -v -timeout 30m

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// procStats is a snapshot of mailgate's resources.
type procStats struct {
	rssKiB     int
	fds        int
	goroutines int // -1 when the metrics endpoint does not answer
}

func (s procStats) String() string {
	g := "n/a"
	if s.goroutines >= 0 {
		g = strconv.Itoa(s.goroutines)
	}
	return fmt.Sprintf("RSS %.1f MiB, fds %d, goroutines %s", float64(s.rssKiB)/1024, s.fds, g)
}

func snapshot(pid int, metricsAddr string) procStats {
	s := procStats{goroutines: -1}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				s.rssKiB, _ = strconv.Atoi(f[1])
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(ents)
	}
	if metricsAddr != "" {
		s.goroutines = scrapeGauge(metricsAddr, "go_goroutines")
	}
	return s
}

// scrapeGauge reads one unlabelled sample from a Prometheus text endpoint.
func scrapeGauge(addr, name string) int {
	// No keep-alive: an idle connection would count as one of mailgate's fds.
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				return int(v)
			}
		}
	}
	return -1
}

// loadGate starts mailgate with a metrics endpoint and room for n
// connections, in front of a counting fake upstream.
func loadGate(t *testing.T, n int) (*gate, string) {
	t.Helper()
	up := startUpstream(t, upstreamScript{noRecord: true})
	metrics := uniqueAddr(t)
	g := startGate(t, up, gateOpts{
		limits:   fmt.Sprintf("{connections: %d}", n+100),
		timeouts: "{command: 60s, data_idle: 60s, data_total: 120s, upstream_connect: 10s, upstream: 60s}",
		extra:    fmt.Sprintf("metrics_listen: %q\n", metrics),
		// One info line per transaction would pile up in the test's
		// capture of mailgate's output (hundreds of MB in a soak).
		logLevel: "warn",
	})
	g.metricsAddr = metrics
	return g, metrics
}

// loadResult counts what the clients saw.
type loadResult struct {
	messages atomic.Int64 // 250 at end-of-data
	errors   atomic.Int64 // anything else
	mu       sync.Mutex
	first    []string // the first few errors, for the report
}

func (r *loadResult) fail(format string, args ...any) {
	r.errors.Add(1)
	r.mu.Lock()
	if len(r.first) < 5 {
		r.first = append(r.first, fmt.Sprintf(format, args...))
	}
	r.mu.Unlock()
}

// loadSession runs one client session of perSession messages.
func loadSession(addr string, id string, perSession int, res *loadResult) {
	c, err := dialQuiet(addr)
	if err != nil {
		res.fail("dial: %v", err)
		return
	}
	defer c.c.Close()
	if r := c.readWithin(30 * time.Second); r.Code != 220 {
		res.fail("banner: %v", r)
		return
	}
	if r := c.cmd("EHLO load.test"); r.Code != 250 {
		res.fail("EHLO: %v", r)
		return
	}
	for i := 0; i < perSession; i++ {
		if r := tx(c, cleanMessage(fmt.Sprintf("%s-%d", id, i))); r.Code != 250 {
			res.fail("message: %v", r)
			return
		}
		res.messages.Add(1)
	}
	c.cmd("QUIT")
}

// settleTo waits until mailgate's descriptors and goroutines come back to
// the baseline (sessions end asynchronously), or d passes.
func settleTo(pid int, metrics string, base procStats, d time.Duration) procStats {
	deadline := time.Now().Add(d)
	for {
		s := snapshot(pid, metrics)
		if (s.fds <= base.fds && s.goroutines <= base.goroutines) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkLeaks fails on descriptors or goroutines left over after the load.
func checkLeaks(t *testing.T, start, end procStats) {
	t.Helper()
	if end.fds > start.fds+2 {
		t.Errorf("file descriptors: %d at start, %d at end (leak)", start.fds, end.fds)
	}
	if start.goroutines >= 0 && end.goroutines > start.goroutines+2 {
		t.Errorf("goroutines: %d at start, %d at end (leak)", start.goroutines, end.goroutines)
	}
	if start.goroutines < 0 {
		t.Logf("goroutines not measured: no go_goroutines on metrics_listen")
	}
}

// runSoak keeps sessions busy for dur: each worker runs sessions of a few
// messages back to back.
func runSoak(t *testing.T, sessions int, dur time.Duration) {
	g, metrics := loadGate(t, sessions)
	pid := g.proc.Cmd.Process.Pid
	// Warm up (first allocations, the policy's first use), then measure.
	var warm loadResult
	loadSession(g.addr, "warm", 3, &warm)
	time.Sleep(time.Second)
	start := snapshot(pid, metrics)
	upBase := g.up.nAccepted.Load()
	var res loadResult
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	var mid atomic.Pointer[procStats]
	for w := 0; w < sessions; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(stop); n++ {
				loadSession(g.addr, fmt.Sprintf("w%d-s%d", w, n), 5, &res)
			}
		}()
	}
	go func() {
		time.Sleep(dur / 5)
		s := snapshot(pid, metrics)
		mid.Store(&s)
	}()
	wg.Wait()
	end := settleTo(pid, metrics, start, 10*time.Second)
	report(t, fmt.Sprintf("soak %d sessions for %v", sessions, dur), &res, g, upBase, start, end)
	if m := mid.Load(); m != nil {
		t.Logf("at %v: %v", dur/5, m)
		// RSS after warm-up must not keep growing: allow 50% plus 16 MiB
		// for the collector's slack.
		if dur >= time.Minute && end.rssKiB > m.rssKiB*3/2+16<<10 {
			t.Errorf("RSS grew from %d KiB at %v to %d KiB at the end", m.rssKiB, dur/5, end.rssKiB)
		}
	}
	checkLeaks(t, start, end)
}

// report logs the figures and fails on errors; upBase is what the upstream
// had accepted before the measured run (the warm-up).
func report(t *testing.T, what string, res *loadResult, g *gate, upBase int64, start, end procStats) {
	t.Helper()
	up := g.up.nAccepted.Load() - upBase
	t.Logf("%s: %d messages, %d errors, upstream accepted %d", what, res.messages.Load(), res.errors.Load(), up)
	t.Logf("start: %v", start)
	t.Logf("end:   %v", end)
	for _, e := range res.first {
		t.Logf("error: %s", e)
	}
	if res.errors.Load() != 0 {
		t.Errorf("%d sessions failed", res.errors.Load())
	}
	if res.messages.Load() == 0 {
		t.Errorf("no message went through")
	}
	if n := scrapeGauge(g.metricsAddr, "mailgate_panics_total"); n > 0 {
		t.Errorf("mailgate_panics_total is %d", n)
	}
	if n := scrapeGauge(g.metricsAddr, "mailgate_smtp_sessions_active"); n > 0 {
		t.Errorf("mailgate_smtp_sessions_active is %d after every client left", n)
	}
	if up != res.messages.Load() {
		t.Errorf("invariant 1: clients got 250 for %d messages, the upstream accepted %d", res.messages.Load(), up)
	}
}

// TestLoadSmoke is the short form that runs in the default go test.
func TestLoadSmoke(t *testing.T) {
	runSoak(t, 50, 5*time.Second)
}

// TestSoak: MAILGATE_SOAK=5m runs 100 sessions for that long
// (MAILGATE_SOAK_SESSIONS changes the count).
func TestSoak(t *testing.T) {
	v := os.Getenv("MAILGATE_SOAK")
	if v == "" {
		t.Skip("set MAILGATE_SOAK=5m to run the soak (README, Reliability)")
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("MAILGATE_SOAK=%q: %v", v, err)
	}
	n := 100
	if s, err := strconv.Atoi(os.Getenv("MAILGATE_SOAK_SESSIONS")); err == nil && s > 0 {
		n = s
	}
	runSoak(t, n, dur)
}

// TestLoadConcurrent: MAILGATE_LOAD=1000 opens that many sessions at once,
// holds them all open, then sends one message on each.
func TestLoadConcurrent(t *testing.T) {
	v := os.Getenv("MAILGATE_LOAD")
	if v == "" {
		t.Skip("set MAILGATE_LOAD=1000 to run the concurrent load (README, Reliability)")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("MAILGATE_LOAD=%q: want a number of sessions", v)
	}
	g, metrics := loadGate(t, n)
	pid := g.proc.Cmd.Process.Pid
	start := snapshot(pid, metrics)
	var res loadResult
	var opened sync.WaitGroup
	release := make(chan struct{})
	var wg sync.WaitGroup
	var peak atomic.Pointer[procStats]
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		opened.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialQuiet(g.addr)
			if err != nil {
				opened.Done()
				res.fail("dial: %v", err)
				return
			}
			defer c.c.Close()
			r := c.readWithin(60 * time.Second)
			opened.Done()
			if r.Code != 220 {
				res.fail("banner: %v", r)
				return
			}
			<-release
			if r := c.cmd("EHLO load.test"); r.Code != 250 {
				res.fail("EHLO: %v", r)
				return
			}
			if r := tx(c, cleanMessage(fmt.Sprintf("load-%d", i))); r.Code != 250 {
				res.fail("message: %v", r)
				return
			}
			res.messages.Add(1)
			c.cmd("QUIT")
		}()
	}
	opened.Wait()
	s := snapshot(pid, metrics)
	peak.Store(&s)
	t.Logf("%d sessions open at once after %v: %v", n, time.Since(t0).Round(time.Millisecond), s)
	close(release)
	wg.Wait()
	t.Logf("%d messages in %v", res.messages.Load(), time.Since(t0).Round(time.Millisecond))
	end := settleTo(pid, metrics, start, 15*time.Second)
	report(t, fmt.Sprintf("%d concurrent sessions", n), &res, g, 0, start, end)
	checkLeaks(t, start, end)
}

// dialQuiet dials without a testing.TB: load goroutines must not call
// t.Fatal. Replies may take up to a minute under load.
func dialQuiet(addr string) (*client, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	return &client{c: c, br: bufio.NewReaderSize(c, 4096), bound: time.Minute}, nil
}
