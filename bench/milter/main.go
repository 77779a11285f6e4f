// Command milter measures mailgate as Postfix's milter (issue 14,
// README "Set-up 3"): smtp-source → a private Postfix → smtp-sink, with
// Postfix alone, with mailgate as its milter (smtpd_milters), with
// mailgate as its before-queue proxy (smtpd_proxy_filter, README
// "Set-up 2"), and with a null milter that negotiates what mailgate's
// milter does and answers continue to everything (null.go), or that asks
// Postfix for the end of the message only. One Postfix serves them all on
// their own ports; one mailgate process serves both its front-ends (listen
// and milter_listen) with the packs default, dangerous-attachments,
// office-macros and compliance-headers; the null milters run in a second
// process (this program, re-run with -null-listen).
//
// A cell is one message size, one session count and one target: N
// messages by smtp-source (one connection each), timed until Postfix's
// queue is empty again (every message handed to smtp-sink). mailgate's
// CPU (utime+stime from /proc), or the null milter's, is read around each
// cell, and Postfix's; mailgate's peak RSS
// (VmHWM) at the end. One session's added latency is the difference of
// the per-message wall time at -s 1.
//
// Run from bench/ as root (Postfix's master runs as root):
//
//	go run ./milter [-sizes 2k-text,1m-pdf] [-sessions 10,100] [-runs 3] [-timeout 15m] [-targets postfix,postfix+nullmilter,...]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	gomilter "github.com/d--j/go-milter"

	"mailgate/bench/gen"
)

func main() {
	sizes := flag.String("sizes", "2k-text,1m-pdf", "message shapes (bench/gen)")
	sessions := flag.String("sessions", "10,100", "parallel sessions")
	runs := flag.Int("runs", 3, "runs per cell (medians reported)")
	timeout := flag.Duration("timeout", 15*time.Minute, "stop starting cells after this")
	latencyN := flag.Int("latency", 300, "messages for the one-session latency run (2k-text); 0: none")
	flag.StringVar(&mgPacks, "packs", strings.Join(benchPacks, ","), "the policy packs (policies/NAME.yaml) mailgate loads")
	flag.IntVar(&mgProcs, "procs", 0, "GOMAXPROCS for mailgate (0: Go's default, the CPU count); the report's header says when it is set")
	keep := flag.Bool("keep", false, "keep the work directory")
	flag.StringVar(&pprofDir, "pprof", "", "after the measured cells, fetch a CPU profile (and a heap profile) of mailgate into this directory while each mailgate target takes the first size at the most sessions (gives mailgate a metrics_listen; see profileTarget)")
	flag.IntVar(&pprofSeconds, "pprof-seconds", 10, "length of each -pprof CPU profile")
	tl := flag.String("targets", strings.Join(defaultTargets, ","), "targets to measure (postfix is always measured: the ratios are to it)")
	nullListen := flag.String("null-listen", "", "internal: serve the null milter (mailgate's negotiation) on this address, and the minimal one on -null-min-listen, and nothing else")
	nullMinListen := flag.String("null-min-listen", "", "internal: see -null-listen")
	nullUnix := flag.String("null-unix", "", "internal: also serve the null milter (mailgate's negotiation) on this unix socket")
	nullNoReply := flag.Uint("null-noreply", 0, "internal: the no-reply stage options (SMFIP_NR_CONN|HELO|MAIL|RCPT bits) mailgate negotiated")
	flag.Parse()
	if *nullListen != "" {
		err := serveNull(*nullListen, *nullMinListen, *nullUnix, gomilter.OptProtocol(*nullNoReply))
		fmt.Fprintln(os.Stderr, "bench milter: null milter:", err)
		os.Exit(1)
	}
	targets = []string{"postfix"}
	for _, t := range strings.Split(*tl, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(allTargets, t) {
			fmt.Fprintf(os.Stderr, "bench milter: no target %q (%s)\n", t, strings.Join(allTargets, ", "))
			os.Exit(2)
		}
		if !slices.Contains(targets, t) {
			targets = append(targets, t)
		}
	}
	if err := run(strings.Split(*sizes, ","), ints(*sessions), *runs, *timeout, *latencyN, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench milter:", err)
		os.Exit(1)
	}
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

var (
	pprofDir     string
	pprofSeconds int
)

type env struct {
	metrics                     string // mailgate's metrics_listen (-pprof), else ""
	work                        string
	sink, alone, milter, proxy  string // smtp-sink and the Postfix smtpd addresses
	null, nullMin               string // Postfix with the null milters
	reinject, mgProxy, mgMilter string
	nlFull, nlMin               string // the null milters' addresses
	milterUnix, nullUnix        string // Postfix with mailgate's milter, and the null one, over a unix socket
	mgSock, nlSock              string // those sockets
	pfEtc, pfQueue              string
	mg, nl                      *exec.Cmd // mailgate, the null milters
	negotiated                  string    // what mailgate's milter and the null one negotiate
}

// mgProcs is -procs.
var mgProcs int

// benchPacks are the packs mailgate loads unless -packs says otherwise
// (mgPacks); the report's header names them when they differ.
var (
	benchPacks = []string{"default", "dangerous-attachments", "office-macros", "compliance-headers"}
	mgPacks    string
)

var (
	allTargets = []string{"postfix", "postfix+nullmilter", "postfix+nullmilter-min", "postfix+milter", "postfix+proxy", "postfix+milter-unix", "postfix+nullmilter-unix"}
	// defaultTargets leaves out the unix socket pair: in the runs of
	// BENCHMARKS.md it was no faster than TCP.
	defaultTargets = allTargets[:5]
	targets        []string // the -targets measured, postfix first
)

func (e *env) addr(target string) string {
	switch target {
	case "postfix+milter":
		return e.milter
	case "postfix+proxy":
		return e.proxy
	case "postfix+nullmilter":
		return e.null
	case "postfix+nullmilter-min":
		return e.nullMin
	case "postfix+milter-unix":
		return e.milterUnix
	case "postfix+nullmilter-unix":
		return e.nullUnix
	}
	return e.alone
}

// pid is the process whose CPU counts as the target's milter (or proxy).
func (e *env) pid(target string) int {
	if strings.HasPrefix(target, "postfix+nullmilter") {
		return e.nl.Process.Pid
	}
	return e.mg.Process.Pid
}

func run(sizes []string, sessions []int, runs int, timeout time.Duration, latencyN int, keep bool) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (Postfix's master runs as root)")
	}
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	work, err := os.MkdirTemp("", "mailgate-bench-milter-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	os.Chmod(work, 0o755)
	e := &env{work: work}
	for _, p := range []*string{&e.sink, &e.alone, &e.milter, &e.proxy, &e.null, &e.nullMin, &e.reinject, &e.mgProxy, &e.mgMilter, &e.nlFull, &e.nlMin, &e.milterUnix, &e.nullUnix} {
		*p = fmt.Sprintf("127.0.0.1:%d", freePort())
	}
	e.mgSock, e.nlSock = filepath.Join(work, "mailgate-milter.sock"), filepath.Join(work, "null-milter.sock")
	sink := exec.Command("/usr/sbin/smtp-sink", "-u", "nobody", e.sink, "1000")
	sink.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sink.Start(); err != nil {
		return err
	}
	defer syscall.Kill(-sink.Process.Pid, syscall.SIGKILL)
	if err := startMailgate(e); err != nil {
		return err
	}
	defer func() { e.mg.Process.Signal(syscall.SIGTERM); e.mg.Wait() }()
	if err := startNull(e); err != nil {
		return err
	}
	defer func() { e.nl.Process.Kill(); e.nl.Wait() }()
	if err := startPostfix(e); err != nil {
		return err
	}
	defer exec.Command("postfix", "-c", e.pfEtc, "stop").Run()

	fmt.Printf("Run started %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("machine: %s, %d CPUs, GOMAXPROCS %d, load average at start %s\n\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), loadavg())
	if mgPacks != strings.Join(benchPacks, ",") {
		fmt.Printf("mailgate loads the packs %s (-packs).\n\n", mgPacks)
	}
	if mgProcs > 0 {
		fmt.Printf("mailgate runs with GOMAXPROCS=%d (-procs).\n\n", mgProcs)
	}
	fmt.Printf("Option negotiation (Postfix's offer: version 6, actions %#x, protocol %#x):\n%s\n", mtaActions, mtaProtocol, e.negotiated)
	deadline := time.Now().Add(timeout)
	type key struct {
		size     string
		sessions int
		target   string
	}
	type meas struct {
		run               int
		rate, cpuMs, pfMs float64
	}
	res := map[key][]meas{}
	files := map[string]string{}
	bytesOf := map[string]int{}
	for _, s := range sizes {
		sh, ok := gen.Lookup(s)
		if !ok {
			return fmt.Errorf("no shape %q", s)
		}
		msg := sh.Make()
		f := filepath.Join(work, s+".eml")
		os.WriteFile(f, bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")), 0o644) // smtp-source -F adds the CR
		files[s], bytesOf[s] = f, len(msg)
	}
	// Warm up every target once (Postfix forks its smtpd processes).
	for _, t := range targets {
		if _, err := cell(e, t, files[sizes[0]], 20, 5); err != nil {
			return fmt.Errorf("warm-up %s: %w", t, err)
		}
	}
	for i := 0; i < runs && time.Now().Before(deadline); i++ {
		for _, s := range sizes {
			for _, ss := range sessions {
				n := msgsFor(bytesOf[s], ss)
				order := slices.Clone(targets)
				for k := 0; k < i; k++ { // rotate the order between runs
					order = append(order[1:], order[0])
				}
				for _, t := range order {
					if time.Now().After(deadline) {
						break
					}
					cpu0, pf0 := cpuTicks(e.pid(t)), postfixTicks(e)
					d, err := cell(e, t, files[s], n, ss)
					cpu := float64(cpuTicks(e.pid(t))-cpu0) * 10 // ms (100 ticks/s)
					pf := float64(postfixTicks(e)-pf0) * 10
					if err != nil {
						fmt.Fprintf(os.Stderr, "%s %d %s: %v\n", s, ss, t, err)
						continue
					}
					m := meas{run: i, rate: float64(n) / d.Seconds(), pfMs: pf / float64(n)}
					if t != "postfix" {
						m.cpuMs = cpu / float64(n)
					}
					res[key{s, ss, t}] = append(res[key{s, ss, t}], m)
					fmt.Fprintf(os.Stderr, "run %d %s s=%d %-22s %5d msgs %7.0f msg/s cpu %.2f ms/msg postfix cpu %.2f ms/msg\n", i+1, s, ss, t, n, m.rate, m.cpuMs, m.pfMs)
				}
			}
		}
	}
	fmt.Printf("Medians of up to %d run(s) per cell. msg/s: smtp-source (one connection per message) into Postfix until Postfix's queue is empty again (all handed to smtp-sink). ÷ postfix: the ratio of the medians to Postfix alone's; paired: the median of each run's own ratio (the target over Postfix alone in the same run), which a change of the machine's speed between runs moves less. milter CPU: the user+system time per message over the cell of mailgate (milter, proxy) or of the null milters' process; Postfix's: that of its master and all its children (smtpd, cleanup, qmgr, smtp; not smtp-source or smtp-sink).\n\n", runs)
	fmt.Println("| size | sessions | target | msg/s | ÷ postfix | paired | milter CPU ms/msg | Postfix CPU ms/msg | runs |")
	fmt.Println("|---|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, s := range sizes {
		for _, ss := range sessions {
			base := median(res[key{s, ss, "postfix"}], func(m meas) float64 { return m.rate })
			for _, t := range targets {
				ms := res[key{s, ss, t}]
				if len(ms) == 0 {
					continue
				}
				rate := median(ms, func(m meas) float64 { return m.rate })
				cpu := "—"
				if t != "postfix" {
					cpu = fmt.Sprintf("%.2f", median(ms, func(m meas) float64 { return m.cpuMs }))
				}
				pf := median(ms, func(m meas) float64 { return m.pfMs })
				var ratios []float64
				for _, m := range ms {
					for _, b := range res[key{s, ss, "postfix"}] {
						if b.run == m.run && b.rate > 0 {
							ratios = append(ratios, m.rate/b.rate)
						}
					}
				}
				paired := ""
				if t != "postfix" && len(ratios) > 0 {
					paired = fmt.Sprintf("%.2f", median(ratios, func(f float64) float64 { return f }))
				}
				fmt.Printf("| %s (%d B) | %d | %s | %.0f | %.2f× | %s | %s | %.2f | %d |\n", s, bytesOf[s], ss, t, rate, rate/base, paired, cpu, pf, len(ms))
			}
		}
	}
	if latencyN > 0 && time.Now().Before(deadline.Add(2*time.Minute)) {
		fmt.Printf("\nOne session, %d messages of 2k-text one after the other (smtp-source -s 1), per-message wall time until the queue is empty; added: minus Postfix alone (median of %d runs).\n\n", latencyN, runs)
		fmt.Println("| target | ms/msg | added ms/msg |")
		fmt.Println("|---|---:|---:|")
		f := files["2k-text"]
		if f == "" {
			sh, _ := gen.Lookup("2k-text")
			f = filepath.Join(work, "2k-text.eml")
			os.WriteFile(f, bytes.ReplaceAll(sh.Make(), []byte("\r\n"), []byte("\n")), 0o644)
		}
		lat := map[string][]float64{}
		for i := 0; i < runs; i++ {
			for _, t := range targets {
				d, err := sourceOnly(e, t, f, latencyN)
				if err != nil {
					fmt.Fprintf(os.Stderr, "latency %s: %v\n", t, err)
					continue
				}
				lat[t] = append(lat[t], float64(d.Microseconds())/1000/float64(latencyN))
			}
		}
		base := median(lat["postfix"], func(f float64) float64 { return f })
		for _, t := range targets {
			m := median(lat[t], func(f float64) float64 { return f })
			fmt.Printf("| %s | %.2f | %+.2f |\n", t, m, m-base)
		}
	}
	if pprofDir != "" {
		for _, t := range targets {
			if t != "postfix+milter" && t != "postfix+proxy" {
				continue
			}
			fmt.Println()
			fmt.Println(profileTarget(e, t, files[sizes[0]], slices.Max(sessions)))
		}
	}
	fmt.Printf("\nmailgate peak RSS (VmHWM) over the whole run: %d MiB; load average at end %s\n", procStatusKB(e.mg.Process.Pid, "VmHWM")/1024, loadavg())
	return nil
}

// msgsFor sizes a cell: about 2,000 small messages, 200 of 1 MB.
func msgsFor(size, sessions int) int {
	n := 2000
	if size > 500_000 {
		n = 200
	}
	return max(n, sessions*4)
}

// cell sends n messages over sessions and waits until Postfix's queue is
// empty again.
func cell(e *env, target, file string, n, sessions int) (time.Duration, error) {
	t0 := time.Now()
	out, err := exec.Command("/usr/sbin/smtp-source", "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n),
		"-f", "alice@example.org", "-t", "bob@example.net", "-M", "client.bench.test", "-F", file, addr(e, target)).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("fatal")) || bytes.Contains(out, []byte("warning")) {
		return 0, fmt.Errorf("smtp-source: %v %s", err, firstLine(out))
	}
	for queued(e) > 0 {
		if time.Since(t0) > 5*time.Minute {
			return 0, fmt.Errorf("queue not empty after 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(t0), nil
}

// sourceOnly is cell for one session.
func sourceOnly(e *env, target, file string, n int) (time.Duration, error) {
	return cell(e, target, file, n, 1)
}

func addr(e *env, target string) string { return e.addr(target) }

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(l)
}

// queued counts the files in Postfix's incoming, active and deferred
// queues (a message refused by the milter never gets there).
func queued(e *env) int {
	n := 0
	for _, q := range []string{"incoming", "active", "deferred", "maildrop", "hold"} {
		filepath.WalkDir(filepath.Join(e.pfQueue, q), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				n++
			}
			return nil
		})
	}
	return n
}

func startMailgate(e *env) error {
	bin := filepath.Join(e.work, "mailgate")
	b := exec.Command("go", "build", "-o", bin, "./cmd/mailgate")
	b.Dir = ".."
	if out, err := b.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	root, _ := filepath.Abs("..")
	var pols []string
	for _, p := range strings.Split(mgPacks, ",") {
		pols = append(pols, fmt.Sprintf("%q", filepath.Join(root, "policies", p+".yaml")))
	}
	cfg := fmt.Sprintf(`listen: [%q]
milter_listen: [%q, %q]
hostname: mailgate.bench.test
upstream: smtp://%s
trusted_forwarders: [127.0.0.1/32]
xclient: false
policies: [%s]
lists: {internal_domains: %q}
spool_dir: %q
quarantine_dir: %q
limits: {connections: 5000}
log: {format: json, level: warn}
%s`, e.mgProxy, e.mgMilter, "unix:"+e.mgSock, e.reinject, strings.Join(pols, ", "), filepath.Join(root, "policies", "lists", "internal_domains.txt"),
		e.work, filepath.Join(e.work, "quarantine"), metricsLine(e))
	path := filepath.Join(e.work, "mailgate.yaml")
	os.WriteFile(path, []byte(cfg), 0o644)
	e.mg = exec.Command(bin, "serve", "-c", path)
	if mgProcs > 0 {
		e.mg.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", mgProcs))
	}
	logf, _ := os.Create(filepath.Join(e.work, "mailgate.log"))
	e.mg.Stdout, e.mg.Stderr = logf, logf
	if err := e.mg.Start(); err != nil {
		return err
	}
	for i := 0; i < 200; i++ {
		c1, err1 := net.Dial("tcp", e.mgMilter)
		c2, err2 := net.Dial("tcp", e.mgProxy)
		if err1 == nil && err2 == nil {
			c1.Close()
			c2.Close()
			return nil
		}
		if c1 != nil {
			c1.Close()
		}
		if c2 != nil {
			c2.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := os.ReadFile(filepath.Join(e.work, "mailgate.log"))
	return fmt.Errorf("mailgate did not start:\n%s", out)
}

// startNull starts the null milters: this program again with -null-listen,
// given the no-reply stages mailgate's milter negotiated; then it checks
// that the full null milter's option negotiation reply is mailgate's byte
// for byte (version, actions, protocol options, macro requests).
func startNull(e *env) error {
	mgReply, err := probeNegotiation(e.mgMilter)
	if err != nil {
		return fmt.Errorf("negotiating with mailgate's milter: %w", err)
	}
	mg, err := decodeNegotiation(mgReply)
	if err != nil {
		return fmt.Errorf("mailgate's negotiation: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	e.nl = exec.Command(self, "-null-listen", e.nlFull, "-null-min-listen", e.nlMin, "-null-unix", e.nlSock, "-null-noreply", strconv.FormatUint(uint64(mg.protocol&noReplyStages), 10))
	e.nl.Stdout, e.nl.Stderr = os.Stderr, os.Stderr
	if err := e.nl.Start(); err != nil {
		return err
	}
	var nlReply, minReply []byte
	for i := 0; i < 200; i++ {
		if nlReply, err = probeNegotiation(e.nlFull); err == nil {
			if minReply, err = probeNegotiation(e.nlMin); err == nil {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		e.nl.Process.Kill()
		e.nl.Wait()
		return fmt.Errorf("null milter: %w", err)
	}
	nl, _ := decodeNegotiation(nlReply)
	mn, _ := decodeNegotiation(minReply)
	if !bytes.Equal(mgReply, nlReply) {
		e.nl.Process.Kill()
		e.nl.Wait()
		return fmt.Errorf("the null milter negotiates %s; mailgate's milter %s", nl, mg)
	}
	e.negotiated = fmt.Sprintf("- mailgate's milter and postfix+nullmilter (identical replies): %s\n- postfix+nullmilter-min: %s\n", mg, mn)
	return nil
}

// startPostfix builds a private Postfix relaying everything to smtp-sink,
// with eight smtpd services: alone, with mailgate's milter, with the
// before-queue proxy, the proxy's re-injection port, with each null
// milter (the same milter settings as mailgate's), and with mailgate's
// milter and the full null one over unix sockets.
func startPostfix(e *env) error {
	base := filepath.Join(e.work, "postfix")
	e.pfEtc, e.pfQueue = filepath.Join(base, "etc"), filepath.Join(base, "queue")
	for _, d := range []string{"etc", "queue", "data"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	os.Chmod(base, 0o755)
	if pu, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(pu.Uid)
		os.Chown(filepath.Join(base, "data"), uid, -1)
	}
	mainCf := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.test
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [%[2]s]:%[3]s
smtp_host_lookup = native
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
alias_maps =
alias_database =
in_flow_delay = 0s
default_process_limit = 400
smtpd_client_connection_count_limit = 0
smtp_destination_concurrency_limit = 100
default_destination_concurrency_limit = 100
message_size_limit = 104857600
`, base, host(e.sink), port(e.sink))
	os.WriteFile(filepath.Join(e.pfEtc, "main.cf"), []byte(mainCf), 0o644)
	master, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		return err
	}
	var out []string
	for _, line := range strings.Split(string(master), "\n") {
		if strings.HasPrefix(line, "smtp ") && strings.Contains(line, " inet ") {
			line = strings.Join([]string{
				e.alone + " inet n - n - - smtpd",
				milterService(e.milter, "inet:"+e.mgMilter),
				fmt.Sprintf("%s inet n - n - - smtpd\n  -o smtpd_proxy_filter=%s\n  -o smtpd_proxy_options=speed_adjust", e.proxy, e.mgProxy),
				fmt.Sprintf("%s inet n - n - - smtpd\n  -o smtpd_authorized_xforward_hosts=127.0.0.0/8\n  -o receive_override_options=no_unknown_recipient_checks", e.reinject),
				milterService(e.null, "inet:"+e.nlFull),
				milterService(e.nullMin, "inet:"+e.nlMin),
				milterService(e.milterUnix, "unix:"+e.mgSock),
				milterService(e.nullUnix, "unix:"+e.nlSock),
			}, "\n")
		}
		out = append(out, line)
	}
	os.WriteFile(filepath.Join(e.pfEtc, "master.cf"), []byte(strings.Join(out, "\n")), 0o644)
	if b, err := exec.Command("postfix", "-c", e.pfEtc, "start").CombinedOutput(); err != nil {
		ml, _ := os.ReadFile(filepath.Join(base, "maillog"))
		return fmt.Errorf("postfix start: %v\n%s\n%s", err, b, ml)
	}
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", e.alone); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("postfix did not start")
}

// milterService is a master.cf smtpd service on addr with one milter,
// Postfix's milter settings as README set-up 3 gives them.
func milterService(addr, milter string) string {
	return fmt.Sprintf("%s inet n - n - - smtpd\n  -o smtpd_milters=%s\n  -o milter_protocol=6\n  -o milter_default_action=tempfail", addr, milter)
}

func host(a string) string { h, _, _ := net.SplitHostPort(a); return h }
func port(a string) string { _, p, _ := net.SplitHostPort(a); return p }

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cpuTicks is utime+stime of pid (clock ticks).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func procStatusKB(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line[len(field)+1:])
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func median[T any](xs []T, f func(T) float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
