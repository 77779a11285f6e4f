package e2e_test

// The fault matrix (issue 7): the built binary between a scriptable client
// and a scriptable upstream (fakeupstream_test.go). For every cell:
// invariant 1 of docs/DESIGN.md (2xx for end-of-data only when the upstream
// accepted exactly that message; otherwise 4xx/5xx and nothing arrives), a
// bounded reply time, and a log line naming the fault.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mailgate/internal/e2e"
)

// Short timeouts keep stall cells fast; replyBound is the longest any reply
// may take (the longest timeout plus slack for a loaded 2-core machine).
const (
	matrixTimeouts = "{command: 2s, data_idle: 2s, data_total: 3s, upstream_connect: 2s, upstream: 2s}"
	replyBound     = 8 * time.Second
	emptyPolicy    = "rules: []\n"
)

// cellParallel bounds how many cells (each its own mailgate and upstream)
// run at once; MAILGATE_E2E_PARALLEL overrides it.
func cellParallel() int {
	if n, err := strconv.Atoi(os.Getenv("MAILGATE_E2E_PARALLEL")); err == nil && n > 0 {
		return n
	}
	return 4
}

// runCells runs one subtest per cell, at most cellParallel at a time.
func runCells[C any](t *testing.T, cells []C, name func(C) string, run func(*testing.T, C)) {
	t.Helper()
	sem := make(chan struct{}, cellParallel())
	var wg sync.WaitGroup
	for _, c := range cells {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.Run(name(c), func(t *testing.T) { run(t, c) })
		}()
	}
	wg.Wait()
}

var (
	addrMu    sync.Mutex
	addrsUsed = map[string]bool{}
)

// uniqueAddr is e2e.FreeAddr that never hands out the same port twice in
// this test process: cells start in parallel, and the kernel may return a
// port another cell's mailgate is about to bind (then that cell's client
// would talk to the wrong mailgate).
func uniqueAddr(t testing.TB) string {
	t.Helper()
	addrMu.Lock()
	defer addrMu.Unlock()
	for i := 0; i < 100; i++ {
		if a := e2e.FreeAddr(t); !addrsUsed[a] {
			addrsUsed[a] = true
			return a
		}
	}
	t.Fatal("no unused loopback port")
	return ""
}

// gateOpts shapes a generated mailgate.yaml.
type gateOpts struct {
	policy    string // inline YAML (contains a newline) or a repo-relative path; default: no rules
	limits    string // YAML flow map; default "{spool_memory: 4KiB}"
	timeouts  string // YAML flow map; default matrixTimeouts
	extra     string // more top-level lines
	logLevel  string // default info
	logFormat string // default json
}

// gate is one running mailgate in front of a fake upstream.
type gate struct {
	addr     string
	dir      string
	spoolDir string
	quarDir  string
	proc     *e2e.Process
	up       *fakeUpstream
	// metricsAddr is metrics_listen when the cell set one.
	metricsAddr string
}

func startGate(t *testing.T, up *fakeUpstream, o gateOpts) *gate {
	t.Helper()
	dir := t.TempDir()
	g := &gate{addr: uniqueAddr(t), dir: dir, up: up,
		spoolDir: filepath.Join(dir, "spool"), quarDir: filepath.Join(dir, "quarantine")}
	policy := o.policy
	if policy == "" {
		policy = emptyPolicy
	}
	var pol string
	if strings.Contains(policy, "\n") {
		pol = filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(pol, []byte(policy), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		pol = filepath.Join(e2e.RepoRoot(t), policy)
		if _, err := os.Stat(pol); err != nil {
			t.Fatalf("policy %s: %v (the shipped policy pack is part of the product)", policy, err)
		}
	}
	if o.timeouts == "" {
		o.timeouts = matrixTimeouts
	}
	if o.logLevel == "" {
		o.logLevel = "info"
	}
	if o.logFormat == "" {
		o.logFormat = "json"
	}
	cfg := fmt.Sprintf("listen: [%q]\nhostname: mailgate.test\nupstream: smtp://%s\npolicies: [%q]\n"+
		"spool_dir: %q\nquarantine_dir: %q\nlog: {format: %s, level: %s}\ntimeouts: %s\n",
		g.addr, up.Addr, pol, g.spoolDir, g.quarDir, o.logFormat, o.logLevel, o.timeouts)
	if o.limits == "" {
		// A small spool_memory puts every message past a few KiB on disk,
		// so each cell also checks the spool file is gone afterwards.
		o.limits = "{spool_memory: 4KiB}"
	}
	cfg += "limits: " + o.limits + "\n"
	cfg += o.extra
	for _, d := range []string{g.spoolDir, g.quarDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "mailgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g.proc = e2e.StartMailgate(t, dir, g.addr, "serve", "-c", cfgPath)
	up.skipProbe()
	return g
}

// waitLog waits up to d for mailgate's output to match re.
func (g *gate) waitLog(t *testing.T, re string, d time.Duration) {
	t.Helper()
	rx := regexp.MustCompile("(?i)" + re)
	deadline := time.Now().Add(d)
	for {
		// The temp dir's name holds the test's name: never match on it.
		if rx.MatchString(strings.ReplaceAll(g.proc.Output(), g.dir, "DIR")) {
			if os.Getenv("MAILGATE_E2E_SHOWLOG") != "" {
				t.Logf("log (matched /%s/):\n%s", re, lastLines(g.proc.Output(), 15))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("no log line names the fault (want /%s/); log:\n%s", re, lastLines(g.proc.Output(), 15))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive checks that mailgate still answers new sessions and never
// panicked (a session's panic is recovered and logged, docs/DEVELOPING.md rule 13).
func (g *gate) alive(t *testing.T) {
	t.Helper()
	if strings.Contains(g.proc.Output(), "panic") {
		t.Errorf("mailgate logged a panic:\n%s", lastLines(g.proc.Output(), 30))
	}
	if line, err := e2e.Banner(g.addr, 5*time.Second); err != nil || !strings.HasPrefix(line, "220") {
		t.Errorf("mailgate no longer answers after the cell: %q %v", line, err)
	}
}

// spoolClean checks that no spool file is left in spool_dir, nor held open
// by mailgate (a temp file unlinked while open would not show in the dir).
func (g *gate) spoolClean(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := g.spoolFiles()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("spool files left behind: %v", left)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (g *gate) spoolFiles() []string {
	var left []string
	ents, _ := os.ReadDir(g.spoolDir)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	for _, f := range openFiles(g.proc.Cmd.Process.Pid) {
		if strings.HasPrefix(f.target, g.spoolDir+"/") {
			left = append(left, "open: "+f.target)
		}
	}
	return left
}

// openFile is one descriptor of a process: /proc/PID/fd/N and its target.
type openFile struct{ fd, target string }

func openFiles(pid int) []openFile {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []openFile
	for _, e := range ents {
		if tg, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			out = append(out, openFile{filepath.Join(dir, e.Name()), tg})
		}
	}
	return out
}

// checkDelivered asserts invariant 1 for a cell: the upstream accepted
// exactly the messages the client got 2xx for, byte for byte.
func checkDelivered(t *testing.T, up *fakeUpstream, want [][]byte) {
	t.Helper()
	got := up.Accepted()
	if len(got) != len(want) {
		t.Errorf("invariant 1: client got 2xx for %d message(s), upstream accepted %d", len(want), len(got))
	}
	for i := range min(len(got), len(want)) {
		if !bytes.Equal(got[i].Data, want[i]) {
			t.Errorf("invariant 1: message %d differs upstream (%d bytes sent, %d arrived)%s", i, len(want[i]), len(got[i].Data), firstDiff(want[i], got[i].Data))
		}
	}
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			lo := max(0, i-20)
			return fmt.Sprintf(": first difference at %d: sent %q, arrived %q", i, a[lo:min(len(a), i+20)], b[lo:min(len(b), i+20)])
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// smtpReply is one reply as the client saw it. Code 0: no reply (the
// connection closed or the read timed out; Err says which).
type smtpReply struct {
	Code  int
	Lines []string
	Dur   time.Duration
	Err   error
}

func (r smtpReply) String() string {
	if r.Code == 0 {
		return fmt.Sprintf("no reply (%v) after %v", r.Err, r.Dur.Round(time.Millisecond))
	}
	return fmt.Sprintf("%q after %v", strings.Join(r.Lines, " | "), r.Dur.Round(time.Millisecond))
}

func (r smtpReply) class() int { return r.Code / 100 }

// client is a raw SMTP client that never fails the test by itself: every
// outcome, a closed connection included, is a value to assert on.
type client struct {
	c     net.Conn
	br    *bufio.Reader
	bound time.Duration // the longest wait for a reply; default replyBound
}

func dialClient(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c: c, br: bufio.NewReaderSize(c, 64<<10)}
}

// read reads one reply, waiting at most c.bound.
func (c *client) read() smtpReply {
	if c.bound > 0 {
		return c.readWithin(c.bound)
	}
	return c.readWithin(replyBound)
}

func (c *client) readWithin(d time.Duration) smtpReply {
	t0 := time.Now()
	c.c.SetReadDeadline(t0.Add(d))
	var r smtpReply
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			r.Code, r.Err, r.Dur = 0, err, time.Since(t0)
			return r
		}
		line = strings.TrimRight(line, "\r\n")
		r.Lines = append(r.Lines, line)
		if len(line) < 4 || line[3] != '-' {
			r.Code, _ = strconv.Atoi(line[:min(3, len(line))])
			r.Dur = time.Since(t0)
			return r
		}
	}
}

// send writes raw bytes; an error (the peer closed) is returned, not fatal.
func (c *client) send(s string) error {
	c.c.SetWriteDeadline(time.Now().Add(replyBound))
	_, err := c.c.Write([]byte(s))
	return err
}

// cmd sends one command line and reads its reply.
func (c *client) cmd(line string) smtpReply {
	if err := c.send(line + "\r\n"); err != nil {
		return smtpReply{Err: err}
	}
	return c.read()
}

// dotStuff encodes a CRLF message for DATA with the final dot (RFC 5321
// §4.5.2).
func dotStuff(msg []byte) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(msg), "\r\n") {
		if strings.HasPrefix(line, ".") {
			b.WriteByte('.')
		}
		b.WriteString(line)
	}
	b.WriteString(".\r\n")
	return b.String()
}

// txOutcome is how far a transaction got and the reply that ended it.
type txOutcome struct {
	failedAt stage     // stNone: the final dot got 2xx
	reply    smtpReply // the reply at failedAt, or the final dot's
	replies  []smtpReply
}

// runTx runs banner, EHLO, MAIL, RCPT, DATA, the message and the final dot,
// stopping at the first reply that is not 2xx/3xx.
func runTx(c *client, from, rcpt string, msg []byte) txOutcome {
	steps := []struct {
		st   stage
		send string
		want int
	}{
		{stConnect, "", 2},
		{stEHLO, "EHLO client.test\r\n", 2},
		{stMAIL, "MAIL FROM:<" + from + ">\r\n", 2},
		{stRCPT, "RCPT TO:<" + rcpt + ">\r\n", 2},
		{stDATA, "DATA\r\n", 3},
		{stDot, dotStuff(msg), 2},
	}
	var o txOutcome
	for _, s := range steps {
		if s.send != "" {
			if err := c.send(s.send); err != nil {
				o.failedAt, o.reply = s.st, smtpReply{Err: err}
				return o
			}
		}
		r := c.read()
		o.replies = append(o.replies, r)
		if r.class() != s.want {
			o.failedAt, o.reply = s.st, r
			return o
		}
	}
	o.failedAt, o.reply = stNone, o.replies[len(o.replies)-1]
	return o
}

// upstreamCell is one row of the upstream fault matrix.
type upstreamCell struct {
	name    string
	script  upstreamScript
	big     bool   // send a 4 MiB message (past the spool memory, blocks a non-reading upstream)
	failAt  stage  // where the client must see the refusal; stNone: delivered
	classes string // acceptable reply classes at failAt, e.g. "4" or "45"
	logRE   string // what mailgate's log must say
	recover bool   // the fault breaks the upstream connection: retry on a new one
}

func upstreamCells() []upstreamCell {
	refuse := `connection refused`
	timeout := `timeout|deadline|timed out`
	drop := `EOF|reset|closed|broken pipe`
	var cells []upstreamCell
	// A relayed or logged upstream reply is named by its text, which only
	// the upstream knows.
	add := func(name string, at stage, kind faultKind, rp string, failAt stage, classes, logRE string) {
		if kind == fReply {
			logRE = regexp.QuoteMeta(strings.SplitN(rp, " ", 3)[2])
		}
		cells = append(cells, upstreamCell{name: name, script: upstreamScript{at: at, kind: kind, reply: rp, bodyAfter: 64 << 10},
			failAt: failAt, classes: classes, logRE: logRE})
	}
	cells = append(cells,
		upstreamCell{name: "ok", script: upstreamScript{}, failAt: stNone, classes: "2", logRE: `"transaction"`},
		upstreamCell{name: "ok-4MiB", script: upstreamScript{}, big: true, failAt: stNone, classes: "2", logRE: `"transaction"`})
	// The upstream is connected at the first MAIL (DESIGN "The SMTP side"):
	// a failure before MAIL shows at MAIL, as a 4xx (invariant 1).
	add("connect-refuse", stConnect, fRefuse, "", stMAIL, "4", refuse)
	add("connect-stall", stConnect, fStall, "", stMAIL, "4", timeout)
	add("connect-drop", stConnect, fDrop, "", stMAIL, "4", drop)
	add("connect-421", stConnect, fReply, "421 4.3.2 upstream.test busy", stMAIL, "4", "")
	add("connect-554", stConnect, fReply, "554 5.3.2 upstream.test no service", stMAIL, "4", "")
	add("ehlo-stall", stEHLO, fStall, "", stMAIL, "4", timeout)
	add("ehlo-drop", stEHLO, fDrop, "", stMAIL, "4", drop)
	add("ehlo-421", stEHLO, fReply, "421 4.3.2 shutting down", stMAIL, "4", "")
	add("ehlo-554", stEHLO, fReply, "554 5.7.1 go away", stMAIL, "4", "")
	// MAIL and RCPT replies are the upstream's, relayed.
	add("mail-stall", stMAIL, fStall, "", stMAIL, "4", timeout)
	add("mail-drop", stMAIL, fDrop, "", stMAIL, "4", drop)
	add("mail-451", stMAIL, fReply, "451 4.3.0 mail try later", stMAIL, "4", "")
	add("mail-550", stMAIL, fReply, "550 5.7.1 sender refused", stMAIL, "5", "")
	add("rcpt-stall", stRCPT, fStall, "", stRCPT, "4", timeout)
	add("rcpt-drop", stRCPT, fDrop, "", stRCPT, "4", drop)
	add("rcpt-450", stRCPT, fReply, "450 4.2.0 mailbox busy", stRCPT, "4", "")
	add("rcpt-550", stRCPT, fReply, "550 5.1.1 no such user", stRCPT, "5", "")
	// Upstream DATA starts once mailgate has the whole message: a failure
	// from there on answers the client's final dot.
	add("data-stall", stDATA, fStall, "", stDot, "4", timeout)
	add("data-drop", stDATA, fDrop, "", stDot, "4", drop)
	add("data-451", stDATA, fReply, "451 4.3.0 data try later", stDot, "4", "")
	add("data-554", stDATA, fReply, "554 5.5.1 no data for you", stDot, "45", "")
	add("body-stall", stBody, fStall, "", stDot, "4", timeout)
	add("body-drop", stBody, fDrop, "", stDot, "4", drop)
	add("dot-stall", stDot, fStall, "", stDot, "4", timeout)
	add("dot-drop", stDot, fDrop, "", stDot, "4", drop)
	add("dot-451", stDot, fReply, "451 4.3.0 queue full", stDot, "4", "")
	add("dot-554", stDot, fReply, "554 5.7.1 content refused", stDot, "45", "")
	for i := range cells {
		sc := &cells[i].script
		if sc.at == stBody {
			cells[i].big = true
		}
		// Stalls, drops, and failures before MAIL leave the upstream
		// connection unusable: mailgate must open a new one next time.
		if sc.kind == fStall || sc.kind == fDrop || (sc.kind == fReply && (sc.at <= stEHLO || strings.HasPrefix(sc.reply, "421"))) {
			sc.once, cells[i].recover = true, true
		}
	}
	return cells
}

// bigMessage is a clean text message of about n bytes with dot-led lines.
func bigMessage(id string, n int) []byte {
	var b bytes.Buffer
	b.Write(cleanMessage(id))
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	for i := 0; b.Len() < n; i++ {
		if i%97 == 0 {
			b.WriteString("." + line)
			continue
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

func TestFaultMatrixUpstream(t *testing.T) {
	runCells(t, upstreamCells(), func(c upstreamCell) string { return c.name }, func(t *testing.T, cell upstreamCell) {
		up := startUpstream(t, cell.script)
		g := startGate(t, up, gateOpts{})
		msg := cleanMessage("matrix-" + cell.name)
		if cell.big {
			msg = bigMessage("matrix-"+cell.name, 4<<20)
		}
		c := dialClient(t, g.addr)
		o := runTx(c, "alice@sender.test", "bob@example.net", msg)
		for _, r := range o.replies {
			if r.Dur > replyBound-time.Second {
				t.Errorf("reply took %v (bound %v): %v", r.Dur, replyBound, r)
			}
		}
		if o.failedAt != cell.failAt {
			t.Errorf("client saw the outcome at %v (%v), want at %v", o.failedAt, o.reply, cell.failAt)
		}
		if o.reply.Code == 0 || !strings.Contains(cell.classes, strconv.Itoa(o.reply.class())) {
			t.Errorf("at %v the client got %v, want a %sxx reply", o.failedAt, o.reply, cell.classes)
		}
		var want [][]byte
		if o.failedAt == stNone && o.reply.class() == 2 {
			want = [][]byte{msg}
		}
		// Recovery: the fault broke the first upstream connection only
		// (script.once); the same client session, if mailgate kept it,
		// must get a second message through a new upstream connection.
		if cell.recover {
			if r := c.cmd("RSET"); r.Code == 250 {
				second := cleanMessage("recovery-" + cell.name)
				if r := tx(c, second); r.Code != 250 {
					t.Errorf("after the fault, a new transaction on the same session got %v", r)
				} else {
					want = append(want, second)
				}
			} else {
				t.Logf("mailgate ended the session after the fault: RSET got %v", r)
			}
		}
		c.cmd("QUIT")
		checkDelivered(t, up, want)
		g.waitLog(t, cell.logRE, 3*time.Second)
		g.spoolClean(t)
		g.alive(t)
	})
}
