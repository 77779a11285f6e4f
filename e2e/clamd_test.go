package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate/internal/e2e"
)

// checkVerdicts runs `mailgate check -c cfg --json` on the files and
// returns file name → "verdict rule,rule".
func checkVerdicts(t *testing.T, dir string, files ...string) map[string]string {
	t.Helper()
	out, errOut, code := runMailgate(t, dir, append([]string{"check", "-c", "mailgate.yaml", "--json"}, files...)...)
	if code != 0 {
		t.Fatalf("check exited %d:\n%s\n%s", code, out, errOut)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			File    string   `json:"file"`
			Verdict string   `json:"verdict"`
			Rules   []string `json:"rules"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("check --json line %q: %v", line, err)
		}
		got[filepath.Base(r.File)] = r.Verdict + " " + strings.Join(r.Rules, ",")
	}
	return got
}

// TestCheckScansWithClamd: `mailgate check -c` with a clamd: section and
// the shipped antivirus pack, against a private clamd: EICAR plain,
// base64 and zipped is rejected, a clean message accepted, a message over
// clamd.max_size rejected at once (not deferred), and clamd stuck or
// stopped tempfails (fail closed).
func TestCheckScansWithClamd(t *testing.T) {
	cd := e2e.StartClamd(t, e2e.ClamdOptions{})
	dir := t.TempDir()
	root := e2e.RepoRoot(t)
	var names []string
	for _, m := range e2e.VirusMessages() {
		names = append(names, m.Name+".eml")
		writeFiles(t, dir, map[string]string{m.Name + ".eml": string(m.Data)})
	}
	big := e2e.MIMEAttachment("base64", "big.bin", e2e.Base64Lines(make([]byte, 300<<10)))
	writeFiles(t, dir, map[string]string{"big.eml": string(big)})
	cfg := func(addr, timeout string) {
		writeFiles(t, dir, map[string]string{"mailgate.yaml": fmt.Sprintf("upstream: smtp://127.0.0.1:1\npolicies: [%q]\nclamd: {address: %q, timeout: %s, max_size: 200KiB}\n",
			filepath.Join(root, "policies/facts/antivirus.yaml"), addr, timeout)})
	}
	want := map[string]string{
		"eicar-plain.eml":  "reject virus-found",
		"eicar-base64.eml": "reject virus-found",
		"eicar-zip.eml":    "reject virus-found",
		"clean.eml":        "accept ",
		"big.eml":          "reject virus-scan-too-large",
	}
	for _, addr := range []string{cd.TCP, cd.Socket} {
		cfg(addr, "10s")
		got := checkVerdicts(t, dir, append(names, "big.eml")...)
		for f, w := range want {
			if got[f] != w {
				t.Errorf("%s: %s: %q, want %q", addr, f, got[f], w)
			}
		}
	}

	cfg(cd.TCP, "500ms")
	cd.Freeze()
	got := checkVerdicts(t, dir, "clean.eml", "eicar-zip.eml")
	cd.Thaw()
	for _, f := range []string{"clean.eml", "eicar-zip.eml"} {
		if got[f] != "tempfail virus-scan-failed" {
			t.Errorf("clamd stuck: %s: %q, want tempfail virus-scan-failed", f, got[f])
		}
	}
	cd.Stop()
	got = checkVerdicts(t, dir, "clean.eml")
	if got["clean.eml"] != "tempfail virus-scan-failed" {
		t.Errorf("clamd stopped: %q, want tempfail virus-scan-failed", got["clean.eml"])
	}

	// -p: nothing scans; check says so rather than let the verdicts pass
	// for scanned.
	if _, errOut, _ := runMailgate(t, dir, "check", "-p", filepath.Join(root, "policies/facts/antivirus.yaml"), "eicar-plain.eml"); !strings.Contains(errOut, "nothing scans") {
		t.Errorf("check -p with a policy reading Virus: no warning in %q", errOut)
	}

	// Without clamd:, a config reading Virus is refused.
	writeFiles(t, dir, map[string]string{"mailgate.yaml": fmt.Sprintf("upstream: smtp://127.0.0.1:1\npolicies: [%q]\n", filepath.Join(root, "policies/facts/antivirus.yaml"))})
	for _, cmd := range [][]string{{"check", "-c", "mailgate.yaml", "clean.eml"}, {"lint", "-c", "mailgate.yaml"}} {
		_, errOut, code := runMailgate(t, dir, cmd...)
		if code != 1 || !strings.Contains(errOut, "no clamd: section") {
			t.Errorf("%s without clamd:: exit %d, %s", cmd[0], code, errOut)
		}
	}
}

// smtpClient is a minimal client that keeps its session open between
// transactions.
type smtpClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialSMTP(t *testing.T, addr string) *smtpClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &smtpClient{t: t, c: c, br: bufio.NewReader(c)}
	if r := cl.reply(); !strings.HasPrefix(r, "220") {
		t.Fatalf("banner %q", r)
	}
	if r := cl.cmd("EHLO client.example\r\n"); !strings.HasPrefix(r, "250") {
		t.Fatalf("EHLO: %q", r)
	}
	return cl
}

func (cl *smtpClient) reply() string {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		line, err := cl.br.ReadString('\n')
		if err != nil {
			cl.t.Fatalf("reading reply: %v", err)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (cl *smtpClient) cmd(s string) string {
	cl.t.Helper()
	cl.c.SetWriteDeadline(time.Now().Add(60 * time.Second))
	if _, err := cl.c.Write([]byte(s)); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
	return cl.reply()
}

// send runs one transaction with the message (CRLF, no dot-stuffing
// needed for the test messages) and returns the reply to the final dot.
func (cl *smtpClient) send(msg []byte) string {
	cl.t.Helper()
	for _, c := range []string{"MAIL FROM:<a@example.com>\r\n", "RCPT TO:<b@example.org>\r\n"} {
		if r := cl.cmd(c); !strings.HasPrefix(r, "250") {
			cl.t.Fatalf("%s: %q", strings.TrimSpace(c), r)
		}
	}
	if r := cl.cmd("DATA\r\n"); !strings.HasPrefix(r, "354") {
		cl.t.Fatalf("DATA: %q", r)
	}
	return cl.cmd(string(msg) + ".\r\n")
}

// startClamdServe starts mailgate serve with the given policies, a clamd:
// section for addr and a fake upstream.
func startClamdServe(t *testing.T, clamdAddr, timeout string, policies ...string) (string, *fakeUpstream, string, *e2e.Process) {
	t.Helper()
	up := startUpstream(t, upstreamScript{at: stNone})
	dir := t.TempDir()
	var pols []string
	for _, p := range policies {
		pols = append(pols, fmt.Sprintf("%q", p))
	}
	addr, maddr := e2e.FreeAddr(t), e2e.FreeAddr(t)
	cfg := fmt.Sprintf("listen: [%q]\nhostname: mx.test\nupstream: smtp://%s\nxclient: false\npolicies: [%s]\nlog: {format: json}\nspool_dir: %s\nmetrics_listen: %q\n"+
		"clamd: {address: %q, timeout: %s, max_size: 200KiB}\ntimeouts: {command: 30s}\n",
		addr, up.Addr, strings.Join(pols, ", "), dir, maddr, clamdAddr, timeout)
	writeFiles(t, dir, map[string]string{"mailgate.yaml": cfg})
	p := e2e.StartMailgate(t, dir, addr, "serve", "-c", filepath.Join(dir, "mailgate.yaml"))
	return addr, up, maddr, p
}

// TestServeScansWithClamd: serve streams each message to a private clamd
// after the parse, because the antivirus pack reads Virus: EICAR plain,
// base64 and zipped is refused with 554 5.7.1 and never reaches the
// upstream; a clean message is relayed; a message over clamd.max_size is
// refused with 552 5.3.4 at once; clamd answering slowly gives 451 after
// clamd.timeout, and the session goes on; clamd stopped gives 451.
func TestServeScansWithClamd(t *testing.T) {
	cd := e2e.StartClamd(t, e2e.ClamdOptions{})
	root := e2e.RepoRoot(t)
	av := filepath.Join(root, "policies/facts/antivirus.yaml")
	for _, clamdAddr := range []string{cd.TCP, cd.Socket} {
		addr, up, maddr, p := startClamdServe(t, clamdAddr, "1s", av)
		cl := dialSMTP(t, addr)
		for _, m := range e2e.VirusMessages() {
			r := cl.send(m.Data)
			want := "250"
			if m.Virus {
				want = "554 5.7.1"
			}
			if !strings.HasPrefix(r, want) {
				t.Errorf("%s %s: %q, want %s", clamdAddr, m.Name, r, want)
			}
		}
		if got := len(up.Accepted()); got != 1 {
			t.Errorf("%s: the upstream accepted %d messages, want the clean one only", clamdAddr, got)
		}
		big := e2e.MIMEAttachment("base64", "big.bin", e2e.Base64Lines(make([]byte, 300<<10)))
		if r := cl.send(big); !strings.HasPrefix(r, "552 5.3.4") {
			t.Errorf("%s: over max_size: %q, want 552 5.3.4", clamdAddr, r)
		}
		cl.cmd("QUIT\r\n")
		time.Sleep(200 * time.Millisecond)
		found := 0
		for _, rec := range logRecords(p.Output()) {
			if rec["msg"] == "transaction" && rec["virus"] == "found" {
				found++
			}
		}
		if found != 3 {
			t.Errorf("%s: %d transaction log lines with virus=found, want 3", clamdAddr, found)
		}
		for outcome, want := range map[string]string{"found": "3", "clean": "1", "too-big": "1"} {
			if v := metricValue(t, maddr, `mailgate_virus_scans_total{outcome="`+outcome+`"}`); v != want {
				t.Errorf("%s: mailgate_virus_scans_total{outcome=%q} = %q, want %s", clamdAddr, outcome, v, want)
			}
		}
	}

	addr, up, _, _ := startClamdServe(t, cd.TCP, "1s", av)
	cl := dialSMTP(t, addr)
	clean := e2e.VirusMessages()[3].Data
	cd.Freeze()
	start := time.Now()
	r := cl.send(clean)
	el := time.Since(start)
	cd.Thaw()
	if !strings.HasPrefix(r, "451 4.7.1") {
		t.Errorf("clamd stuck: %q, want 451 4.7.1", r)
	}
	if el < 900*time.Millisecond || el > 5*time.Second {
		t.Errorf("clamd stuck: answered after %s with clamd.timeout 1s", el)
	}
	if r := cl.cmd("NOOP\r\n"); !strings.HasPrefix(r, "250") {
		t.Errorf("after the scan timeout the session should go on: NOOP %q", r)
	}
	if r := cl.send(clean); !strings.HasPrefix(r, "250") {
		t.Errorf("clamd back: %q, want 250", r)
	}
	cd.Stop()
	if r := cl.send(clean); !strings.HasPrefix(r, "451 4.7.1") {
		t.Errorf("clamd stopped: %q, want 451 4.7.1", r)
	}
	if got := len(up.Accepted()); got != 1 {
		t.Errorf("upstream accepted %d, want 1 (only while clamd answered)", got)
	}

	// A set that does not read Virus never calls clamd: with clamd
	// stopped, mail flows.
	addr, up, maddr, _ := startClamdServe(t, cd.TCP, "1s", filepath.Join(root, "policies/default.yaml"))
	if r := dialSMTP(t, addr).send(clean); !strings.HasPrefix(r, "250") {
		t.Errorf("no rule reads Virus, clamd stopped: %q, want 250", r)
	}
	if v := metricValue(t, maddr, `mailgate_virus_scans_total{outcome="error"}`); v != "" && v != "0" {
		t.Errorf("scanned although no rule reads Virus: errors %q", v)
	}
	if len(up.Accepted()) != 1 {
		t.Errorf("upstream accepted %d, want 1", len(up.Accepted()))
	}
}
