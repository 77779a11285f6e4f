// Command proxy is mailgate's throughput harness (issue 6). It starts
// Postfix's smtp-sink, then every target in front of it (nothing, a
// byte-pump relay, mailgate with policies/default.yaml, mailgate with every
// shipped pack, Haraka), drives each with Postfix's smtp-source and times
// single transactions with its own client, interleaving the targets so
// their ratios hold on a noisy machine. See bench/README.md.
//
//	go run ./proxy               full matrix (< 20 min)
//	go run ./proxy -smoke        seconds: direct, byte-pump, mailgate default
//	go run ./proxy -memtest      1,000 slow 10 MB sessions, RSS < 512 MiB
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailgate/bench/gen"
)

// pumpEnv, when set to LISTEN,UPSTREAM, makes this binary the byte pump.
const pumpEnv = "MAILGATE_BENCH_PUMP"

type options struct {
	smoke     bool
	targets   []string
	sizes     []string
	sessions  []int
	runs      int
	scale     float64
	timeout   time.Duration
	out       string
	keep      bool
	harakaV   string
	harakaDir string
	pprofDir  string
	harakaP   string
	x1Procs   int
	x2Procs   int
}

func main() {
	if v := os.Getenv(pumpEnv); v != "" {
		listen, upstream, _ := strings.Cut(v, ",")
		if err := runPump(listen, upstream); err != nil {
			fmt.Fprintln(os.Stderr, "pump:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var targets, sizes, sessions string
	memtest := fs.Bool("memtest", false, "run the memory test instead (see -mem-* flags)")
	var mo memOptions
	fs.BoolVar(&o.smoke, "smoke", false, "seconds-long check: direct, byte-pump, mailgate-default; 2k-text; 1 and 10 sessions; tiny counts")
	fs.StringVar(&targets, "targets", "direct,byte-pump,mailgate-default,mailgate-packs,haraka", "targets, comma-separated")
	fs.StringVar(&sizes, "sizes", "2k-text,100k-html-image,1m-pdf", "message shapes (bench/gen ProxyShapes)")
	fs.StringVar(&sessions, "sessions", "1,10,100", "parallel sessions")
	fs.IntVar(&o.runs, "runs", 3, "runs of every cell; medians are reported")
	fs.Float64Var(&o.scale, "scale", 1, "multiply every message count")
	fs.DurationVar(&o.timeout, "timeout", 19*time.Minute, "stop starting new cells after this; report what was measured")
	fs.StringVar(&o.out, "out", "", "also write the samples as JSON to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs)")
	fs.StringVar(&o.pprofDir, "pprof", "", "fetch CPU and heap profiles of each mailgate target into this directory during run 1's cells at the most sessions (needs /debug/pprof/ on mailgate's metrics_listen)")
	fs.StringVar(&o.harakaP, "haraka-plugins", "rcpt_to.in_host_list,attachment,queue/smtp_forward", "Haraka's plugins (to see what one costs, drop it here)")
	fs.StringVar(&o.harakaV, "haraka-version", "3.3.4", "Haraka version to npm install")
	fs.StringVar(&o.harakaDir, "haraka-dir", filepath.Join(os.TempDir(), "mailgate-bench-haraka"), "npm install directory for Haraka, reused across runs")
	fs.IntVar(&o.x1Procs, "x1-procs", 0, "GOMAXPROCS of mailgate in mailgate-rate-lru and mailgate-rate-redis (0: Go's default, the CPU count)")
	fs.IntVar(&o.x2Procs, "x2-procs", 0, "GOMAXPROCS of each of the two mailgates of mailgate-rate-lru-x2 and mailgate-rate-redis-x2 (0: Go's default, the CPU count)")
	fs.IntVar(&mo.sessions, "mem-sessions", 1000, "memtest: concurrent sessions")
	fs.Int64Var(&mo.size, "mem-size", 10<<20, "memtest: bytes of each message")
	fs.DurationVar(&mo.spread, "mem-spread", 90*time.Second, "memtest: time over which each session sends its message")
	fs.StringVar(&mo.target, "mem-target", "mailgate", "memtest: mailgate, or byte-pump to check the harness itself")
	fs.Int64Var(&mo.limitMiB, "mem-limit", 512, "memtest: fail if mailgate's peak RSS reaches this many MiB")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.targets = splitList(targets)
	o.sizes = splitList(sizes)
	for _, s := range splitList(sessions) {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
			fmt.Fprintf(stderr, "bad -sessions %q\n", s)
			return 2
		}
		o.sessions = append(o.sessions, n)
	}
	if o.x1Procs < 0 || o.x2Procs < 0 {
		fmt.Fprintln(stderr, "-x1-procs and -x2-procs must be >= 0")
		return 2
	}
	if o.smoke {
		o.targets = []string{"direct", "byte-pump", "mailgate-default"}
		o.sizes = []string{"2k-text"}
		o.sessions = []int{1, 10}
		o.runs = 1
		o.scale = 0.05
		o.timeout = time.Minute
	}
	for _, s := range o.sizes {
		if _, ok := gen.Lookup(s); !ok {
			fmt.Fprintf(stderr, "unknown size %q\n", s)
			return 2
		}
	}
	for _, tool := range []string{"/usr/sbin/smtp-source", "/usr/sbin/smtp-sink"} {
		if _, err := os.Stat(tool); err != nil {
			fmt.Fprintf(stderr, "bench: %s missing (apt-get install postfix)\n", tool)
			return 1
		}
	}
	nofile := raiseNoFile()
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	work, err := os.MkdirTemp("", "mailgate-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	os.Chmod(work, 0o755)
	if o.keep {
		fmt.Fprintln(stderr, "bench: work directory", work)
	} else {
		defer os.RemoveAll(work)
	}
	e := &env{work: work, root: root, harakaV: o.harakaV, harakaD: o.harakaDir, sinkConc: 2048, harakaP: splitList(o.harakaP), pprof: o.pprofDir != "", x1Procs: o.x1Procs, x2Procs: o.x2Procs}
	fmt.Fprintf(stdout, "# mailgate proxy bench %s\n\nmachine: %s, %d CPUs, GOMAXPROCS %d, RLIMIT_NOFILE %d, load average at start %s\n\n",
		time.Now().UTC().Format(time.RFC3339), cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), nofile, loadAvg())
	if o.x1Procs > 0 || o.x2Procs > 0 {
		fmt.Fprintf(stdout, "rate targets' mailgate GOMAXPROCS: one instance %s, each of two %s\n\n", procsText(o.x1Procs), procsText(o.x2Procs))
	}
	if *memtest {
		return memTest(e, mo, stdout, stderr)
	}
	return matrix(e, o, stdout, stderr)
}

// procsText is a -x1-procs/-x2-procs value as the report prints it.
func procsText(n int) string {
	if n == 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// repoRoot finds the mailgate module root: the parent of bench/.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module mailgate\n") {
			return d, nil
		}
	}
	return "", fmt.Errorf("no mailgate module root above %s (run from bench/)", dir)
}

// loadAvg is the 1, 5 and 15 minute load averages from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

// counts returns the smtp-source message count and the latency client's
// transaction count of a cell, before -scale.
func counts(size string, sessions int) (load, lat int) {
	type k struct {
		s string
		n int
	}
	table := map[k][2]int{
		{"2k-text", 1}: {400, 300}, {"2k-text", 10}: {2000, 1000}, {"2k-text", 100}: {3000, 2000},
		{"100k-html-image", 1}: {150, 100}, {"100k-html-image", 10}: {400, 300}, {"100k-html-image", 100}: {600, 500},
		{"1m-pdf", 1}: {30, 30}, {"1m-pdf", 10}: {80, 80}, {"1m-pdf", 100}: {150, 150},
	}
	if c, ok := table[k{size, sessions}]; ok {
		return c[0], c[1]
	}
	return 20 * sessions, 10 * sessions
}

// Seconds of smtp-source load and of latency probing a cell aims at, once a
// target's rate on the size is known: slow targets send fewer messages, so
// a full matrix stays bounded.
const (
	loadSeconds    = 3.0
	latencySeconds = 2.0
)

// budget returns a cell's smtp-source and latency-client message counts:
// the table's, scaled, cut to what the target's last measured rate on the
// size (est msg/s, 0 when unknown) sends in loadSeconds/latencySeconds, and
// never fewer than one message per session.
func budget(size string, sessions int, scale, est float64) (load, lat int) {
	load, lat = counts(size, sessions)
	load, lat = scaled(load, scale, sessions), scaled(lat, scale, 5)
	if est > 0 {
		load = min(load, max(sessions, int(est*loadSeconds)))
		lat = min(lat, max(sessions, 5, int(est*latencySeconds)))
	}
	return load, lat
}

func scaled(n int, f float64, min int) int {
	v := int(float64(n)*f + 0.5)
	if v < min {
		v = min
	}
	return v
}

// sample is one measurement of one cell.
type sample struct {
	Target   string  `json:"target"`
	Size     string  `json:"size"`
	Sessions int     `json:"sessions"`
	Run      int     `json:"run"`
	Msgs     int     `json:"msgs"`
	Seconds  float64 `json:"seconds"`
	MsgsPerS float64 `json:"msgs_per_s"`
	MBPerS   float64 `json:"mb_per_s"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	RSSkB    int64   `json:"rss_kb,omitempty"`
	// CPUms is the target's processes' CPU time per message of the
	// throughput load (mailgate, and redis-server or clamd where the
	// target runs them): steadier than msg/s on a shared machine.
	CPUms float64 `json:"cpu_ms_per_msg,omitempty"`
	Err   string  `json:"error,omitempty"`
}

func matrix(e *env, o options, stdout, stderr io.Writer) int {
	sink, err := startSink(e)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer sink.stop()
	var targets []*target
	var notes []string
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	failed := false
	for _, name := range o.targets {
		t, err := startTarget(e, name)
		if err != nil {
			if o.smoke && strings.HasPrefix(name, "mailgate") && strings.Contains(err.Error(), "not implemented yet") {
				notes = append(notes, fmt.Sprintf("%s: skipped, `mailgate serve` is not implemented yet", name))
				continue
			}
			fmt.Fprintf(stderr, "bench: target %s: %v\n", name, err)
			notes = append(notes, fmt.Sprintf("%s: could not start: %s", name, firstLines(err.Error(), 2)))
			failed = true
			continue
		}
		targets = append(targets, t)
	}
	files := map[string]string{}
	wires := map[string][]byte{}
	bytesOf := map[string]int{}
	for _, s := range o.sizes {
		sh, _ := gen.Lookup(s)
		msg := sh.Make()
		// smtp-source -F appends CRLF to every line it reads: give it LF.
		f := filepath.Join(e.work, s+".eml")
		if err := os.WriteFile(f, []byte(strings.ReplaceAll(string(msg), "\r\n", "\n")), 0o644); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		files[s], wires[s], bytesOf[s] = f, wireData(msg), len(msg)
	}
	deadline := time.Now().Add(o.timeout)
	var samples []sample
	ctx := context.Background()
	rss := map[string]*rssSampler{}
	est := map[string]float64{} // last msg/s of a target on a size: sizes the next cell
	for _, t := range targets {
		if t.rssPid != 0 {
			rss[t.name] = sampleRSS(t.rssPid, 100*time.Millisecond)
		}
	}
	t0 := time.Now()
outer:
	for r := 0; r < o.runs; r++ {
		for _, size := range o.sizes {
			for _, sess := range o.sessions {
				for i := range targets {
					if time.Now().After(deadline) {
						notes = append(notes, fmt.Sprintf("stopped at run %d by -timeout %v", r+1, o.timeout))
						break outer
					}
					t := targets[(i+r)%len(targets)] // rotate the order between runs
					load, lat := budget(size, sess, o.scale, est[t.name+"/"+size])
					s := sample{Target: t.name, Size: size, Sessions: sess, Run: r + 1, Msgs: load}
					var d time.Duration
					var err error
					pids := t.pids()
					var cpu time.Duration
					runLoad := func() {
						c0 := procsCPU(pids)
						d, err = sourceRunAll(ctx, t.addrs(), files[size], load, sess, 3*time.Minute)
						cpu = procsCPU(pids) - c0
					}
					if o.pprofDir != "" && t.metrics != "" && r == 0 && sess == slices.Max(o.sessions) {
						label := fmt.Sprintf("%s-%s-s%d", t.name, size, sess)
						notes = append(notes, profileDuring(o.pprofDir, t.metrics, label, int(loadSeconds), runLoad))
					} else {
						runLoad()
					}
					s.Seconds = d.Seconds()
					if err == nil {
						s.MsgsPerS = float64(load) / d.Seconds()
						est[t.name+"/"+size] = s.MsgsPerS
						s.MBPerS = s.MsgsPerS * float64(bytesOf[size]) / 1e6
						if len(pids) > 0 {
							s.CPUms = float64(cpu) / float64(time.Millisecond) / float64(load)
						}
						p50, p99, errs, lerr := latencyRunAll(t.addrs(), wires[size], lat, sess, 2*time.Minute)
						s.P50ms, s.P99ms = ms(p50), ms(p99)
						if errs > 0 {
							err = fmt.Errorf("latency client: %d of %d failed, first: %v", errs, lat, lerr)
						}
					}
					if err != nil {
						s.Err = err.Error()
						failed = true
						if t.proc != nil && t.proc.exited() {
							s.Err += "; the target exited:\n" + t.proc.output()
						}
					}
					if rs := rss[t.name]; rs != nil {
						s.RSSkB = rs.max.Load()
					}
					fmt.Fprintf(stderr, "bench: run %d %-16s %-15s s=%-3d %7.1f msg/s %7.1f MB/s p50 %6.2f ms p99 %6.2f ms cpu %5.3f ms/msg %s\n",
						r+1, t.name, size, sess, s.MsgsPerS, s.MBPerS, s.P50ms, s.P99ms, s.CPUms, s.Err)
					samples = append(samples, s)
				}
			}
		}
	}
	peak := map[string]int64{}
	for name, rs := range rss {
		rs.end()
		for _, t := range targets {
			if t.name == name {
				peak[name] = procStatusKB(t.rssPid, "VmHWM")
			}
		}
	}
	fmt.Fprintf(stdout, "wall time %s, load average at end %s (above the CPU count, other work shared the machine: treat the figures as noise)\n\n",
		time.Since(t0).Round(time.Second), loadAvg())
	report(stdout, samples, o, bytesOf, peak, notes)
	if o.out != "" {
		b, _ := json.MarshalIndent(samples, "", " ")
		if err := os.WriteFile(o.out, b, 0o644); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
	}
	if failed {
		return 1
	}
	return 0
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func startTarget(e *env, name string) (*target, error) {
	switch name {
	case "direct":
		return &target{name: "direct", addr: e.sinkAddr}, nil
	case "byte-pump":
		return startPump(e)
	case "mailgate-default":
		return startMailgate(e, name, []string{filepath.Join(e.root, "policies", "default.yaml")}, 2000)
	case "mailgate-auth":
		// The default pack with every authentication check and one
		// blocklist on, through a private unbound (issue 13's figure).
		p, dns, err := startUnbound(e)
		if err != nil {
			return nil, err
		}
		t, err := startMailgateExtra(e, name, []string{filepath.Join(e.root, "policies", "default.yaml")}, 2000, authSections(dns))
		if err != nil {
			p.stop()
			return nil, err
		}
		t.services = append(t.services, p)
		return t, nil
	case "mailgate-packs":
		p, err := packPolicies(e)
		if err != nil {
			return nil, err
		}
		return startMailgate(e, name, p, 2000)
	case "haraka":
		return startHaraka(e, runtime.NumCPU())
	case "mailgate-rate-lru", "mailgate-rate-lru-x2", "mailgate-rate-redis", "mailgate-rate-redis-x2", "mailgate-av-off", "mailgate-av":
		return startServiceTarget(e, name)
	}
	return nil, fmt.Errorf("unknown target %q", name)
}
