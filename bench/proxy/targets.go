package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// env is what every target shares: the work directory, the repository
// root, the sink they all deliver to.
type env struct {
	work     string // temp dir of this run
	root     string // repository root (mailgate module)
	sinkAddr string
	mailgate string // built binary, "" until built
	harakaV  string
	harakaD  string // where Haraka is installed (kept across runs)
	sinkConc int
	harakaP  []string // Haraka's plugins, in order
	pprof    bool     // give mailgate a metrics_listen to fetch profiles from
	// x1Procs and x2Procs, when > 0, are the GOMAXPROCS of each
	// mailgate of the one-instance and two-instance rate targets
	// (-x1-procs, -x2-procs); 0 leaves Go's default (the CPU count).
	x1Procs, x2Procs int
}

// target is one thing smtp-source sends through.
type target struct {
	name string
	addr string
	proc *proc // nil for direct and in-harness targets
	// rssPid is the process whose memory is reported (mailgate), 0 if none.
	rssPid int
	// metrics is mailgate's metrics_listen address, "" unless -pprof.
	metrics string
	// more are further instances of the same target (mailgate sharing
	// one Redis): the load is split evenly over addr and these.
	more []*target
	// services are what the target needs running (redis-server, clamd),
	// stopped with it.
	services []*proc
}

// pids is every process of the target that smtp-source's load makes work:
// its own, its further instances' and its services' (redis-server).
func (t *target) pids() []int {
	var out []int
	if t.proc != nil && t.proc.cmd.Process != nil {
		out = append(out, t.proc.cmd.Process.Pid)
	}
	for _, m := range t.more {
		out = append(out, m.pids()...)
	}
	for _, s := range t.services {
		if s.cmd.Process != nil {
			out = append(out, s.cmd.Process.Pid)
		}
	}
	return out
}

// addrs is every address of the target.
func (t *target) addrs() []string {
	out := []string{t.addr}
	for _, m := range t.more {
		out = append(out, m.addr)
	}
	return out
}

// stop ends the target's processes and services.
func (t *target) stop() {
	for _, m := range t.more {
		m.stop()
	}
	if t.proc != nil {
		t.proc.stop()
	}
	for _, s := range t.services {
		s.stop()
	}
}

func startSink(e *env) (*proc, error) {
	port := freePort()
	e.sinkAddr = fmt.Sprintf("127.0.0.1:%d", port)
	argv := []string{"/usr/sbin/smtp-sink"}
	if os.Geteuid() == 0 {
		argv = append(argv, "-u", "nobody")
	}
	argv = append(argv, "-m", strconv.Itoa(e.sinkConc), e.sinkAddr, "1024")
	p, err := start("smtp-sink", e.work, nil, argv...)
	if err != nil {
		return nil, err
	}
	if err := waitBanner(p, e.sinkAddr, 10*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func startPump(e *env) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	p, err := start("byte-pump", e.work, []string{pumpEnv + "=" + addr + "," + e.sinkAddr}, self)
	if err != nil {
		return nil, err
	}
	if err := waitBanner(p, addr, 10*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return &target{name: "byte-pump", addr: addr, proc: p}, nil
}

// buildMailgate builds cmd/mailgate from the repository root.
func buildMailgate(e *env) error {
	if e.mailgate != "" {
		return nil
	}
	bin := filepath.Join(e.work, "mailgate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mailgate")
	cmd.Dir = e.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/mailgate: %v\n%s", err, out)
	}
	e.mailgate = bin
	return nil
}

// mailgateConfig is the mailgate.yaml of a bench target (docs/DESIGN.md keys).
func mailgateConfig(listen, upstream, spool, metrics string, policies []string, lists map[string]string, conns int, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: [%q]\nhostname: bench.mailgate.test\nupstream: smtp://%s\n", listen, upstream)
	// smtp-sink offers XCLIENT but answers it 250 where Postfix's smtpd
	// answers 220, which mailgate takes for a refusal and tempfails every
	// message; a sink has no client checks to inform anyway.
	b.WriteString("xclient: false\n")
	if metrics != "" {
		fmt.Fprintf(&b, "metrics_listen: %s\n", metrics)
	}
	fmt.Fprintf(&b, "limits: {message_size: 50MiB, connections: %d}\n", conns)
	fmt.Fprintf(&b, "spool_dir: %s\n", spool)
	fmt.Fprintf(&b, "log: {format: json, level: warn}\n")
	// An absent or empty policies: runs the embedded default pack; a
	// target without policies must say [] (docs/DESIGN.md "Configuration").
	if len(policies) == 0 {
		b.WriteString("policies: []\n")
	} else {
		b.WriteString("policies:\n")
	}
	for _, p := range policies {
		fmt.Fprintf(&b, "  - %s\n", p)
	}
	if len(lists) > 0 {
		b.WriteString("lists:\n")
		for _, k := range sortedKeys(lists) {
			fmt.Fprintf(&b, "  %s: %s\n", k, lists[k])
		}
	}
	b.WriteString(extra)
	return b.String()
}

// startMailgate writes a config for policies and starts `mailgate serve`.
func startMailgate(e *env, name string, policies []string, conns int) (*target, error) {
	return startMailgateExtra(e, name, policies, conns, "")
}

// startMailgateExtra is startMailgate with extra config lines (clamd:,
// state:).
func startMailgateExtra(e *env, name string, policies []string, conns int, extra string) (*target, error) {
	return startMailgateProcs(e, name, policies, conns, extra, 0)
}

// startMailgateProcs is startMailgateExtra with GOMAXPROCS=procs in
// mailgate's environment when procs > 0.
func startMailgateProcs(e *env, name string, policies []string, conns int, extra string, procs int) (*target, error) {
	if err := buildMailgate(e); err != nil {
		return nil, err
	}
	dir := filepath.Join(e.work, name)
	spool := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, err
	}
	lists, err := listsFor(e, dir, policies)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	metrics := ""
	if e.pprof {
		metrics = fmt.Sprintf("127.0.0.1:%d", freePort())
	}
	cfg := filepath.Join(dir, "mailgate.yaml")
	if err := os.WriteFile(cfg, []byte(mailgateConfig(addr, e.sinkAddr, spool, metrics, policies, lists, conns, extra)), 0o644); err != nil {
		return nil, err
	}
	var penv []string
	if procs > 0 {
		penv = []string{fmt.Sprintf("GOMAXPROCS=%d", procs)}
	}
	p, err := start(name, dir, penv, e.mailgate, "serve", "-c", cfg)
	if err != nil {
		return nil, err
	}
	t := &target{name: name, addr: addr, proc: p, rssPid: p.cmd.Process.Pid, metrics: metrics}
	if err := waitBanner(p, addr, 20*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w\nconfig %s:\n%s", err, cfg, mailgateConfig(addr, e.sinkAddr, spool, metrics, policies, lists, conns, extra))
	}
	return t, nil
}

// packPolicies returns every shipped pack (policies/*.yaml), spam-basics
// replaced by a copy with its rate and greylist thresholds raised.
func packPolicies(e *env) ([]string, error) {
	files, _ := filepath.Glob(filepath.Join(e.root, "policies", "*.yaml"))
	if len(files) == 0 {
		return nil, fmt.Errorf("no policies/*.yaml in %s", e.root)
	}
	var out []string
	for _, f := range files {
		if filepath.Base(f) == "spam-basics.yaml" {
			src, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			patched, err := PatchSpamBasics(string(src))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			dst := filepath.Join(e.work, "spam-basics.bench.yaml")
			if err := os.WriteFile(dst, []byte(patched), 0o644); err != nil {
				return nil, err
			}
			f = dst
		}
		out = append(out, f)
	}
	return out, nil
}

// harakaTarget installs Haraka (npm, once per install dir) and starts an
// instance: rcpt_to.in_host_list (accepts the bench domain), attachment
// (with bsdtar from libarchive-tools, so archives are opened), and
// queue/smtp_forward to the sink, before queue like mailgate; nodes=2 (one
// worker per core), logging at warn.
func startHaraka(e *env, nodes int) (*target, error) {
	if _, err := exec.LookPath("bsdtar"); err != nil {
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("haraka: bsdtar missing: apt-get install libarchive-tools")
		}
		cmd := exec.Command("apt-get", "install", "-y", "-qq", "libarchive-tools")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get install libarchive-tools: %v\n%s", err, out)
		}
	}
	bin := filepath.Join(e.harakaD, "node_modules", "Haraka", "bin", "haraka")
	pkg := filepath.Join(e.harakaD, "node_modules", "Haraka", "package.json")
	if b, err := os.ReadFile(pkg); err != nil || !strings.Contains(string(b), `"version": "`+e.harakaV+`"`) {
		if err := os.MkdirAll(e.harakaD, 0o755); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "bench: npm install Haraka@%s in %s\n", e.harakaV, e.harakaD)
		cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "Haraka@"+e.harakaV)
		cmd.Dir = e.harakaD
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("npm install Haraka: %v\n%s", err, out)
		}
	}
	inst := filepath.Join(e.work, "haraka")
	os.RemoveAll(inst)
	if out, err := exec.Command("node", bin, "-i", inst).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haraka -i: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	host, port, _ := strings.Cut(e.sinkAddr, ":")
	files := map[string]string{
		"smtp.ini":         fmt.Sprintf("listen=%s\nnodes=%d\n", addr, nodes),
		"log.ini":          "[main]\nlevel=warn\ntimestamps=false\nformat=default\n",
		"plugins":          strings.Join(e.harakaP, "\n") + "\n",
		"host_list":        "example.net\n",
		"smtp_forward.ini": fmt.Sprintf("host=%s\nport=%s\n", host, port),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(inst, "config", name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	p, err := start("haraka", inst, nil, "node", bin, "-c", inst)
	if err != nil {
		return nil, err
	}
	if err := waitBanner(p, addr, 60*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return &target{name: "haraka", addr: addr, proc: p}, nil
}
