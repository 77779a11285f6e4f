package proxy

import (
	"encoding/base64"
	"mailgate/config"
	"mailgate/internal/bounded"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"mailgate/rules"
)

// manyParts is a message of n-1 text parts in one multipart (n parts with
// the root).
func manyParts(n int) string {
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nTo: b@example.net\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := 1; i < n; i++ {
		b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n")
	}
	b.WriteString("--b--\r\n")
	return b.String()
}

// loadEngine compiles one policy file for the proxy, as serve would.
func loadEngine(t *testing.T, policy string, ruleError string) Engine {
	t.Helper()
	set, err := rules.LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(policy)}},
		rules.Config{Policies: []string{"p.yaml"}, RuleError: ruleError}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rulesEngine{set}
}

// TestPolicyTimeout: a rule under the cost budget but slower than
// timeouts.policy tempfails the message, although rule_error says
// continue; the message is not relayed and the log names the timeout.
func TestPolicyTimeout(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Timeouts.Policy = 5 * time.Millisecond
	eng := loadEngine(t, "rules:\n  - name: slow\n    when: 'any(Parts, any(Parts, .Path == \"x\"))'\n    action: reject\n", "continue")
	addr, srv, lg := startServer(t, cfg, eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(manyParts(999))); !strings.HasPrefix(rp, "451 4.3.0 ") {
		t.Fatalf("final reply %q, want 451 4.3.0", rp)
	}
	if n := len(up.transactions()); n != 0 {
		t.Errorf("%d messages relayed", n)
	}
	waitFor(t, "log line naming the timeout", func() bool {
		return strings.Contains(lg.String(), "past timeouts.policy") && strings.Contains(lg.String(), `"verdict":"tempfail"`)
	})
	// The session goes on with a new evaluator; the abandoned one ends.
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250 ") {
		t.Fatalf("next message: %q", rp)
	}
	for i := 0; srv.Abandoned() != 0; i++ { // a minute: slow under -race
		if i == 6000 {
			t.Fatal("the abandoned evaluation did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInspectTimeout: a parse slower than timeouts.inspect tempfails the
// message, with DATA and with BDAT.
func TestInspectTimeout(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Timeouts.Inspect = time.Millisecond
	eng := &fakeEngine{decide: func(rules.Stage, *rules.Facts) rules.Verdict { return rules.Verdict{Action: rules.ActionContinue} }}
	addr, srv, lg := startServer(t, cfg, eng)
	blob := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("0123456789abcdef", 256<<10))) // 4 MiB
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nTo: b@example.net\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(blob) > 0 {
		n := min(76, len(blob))
		b.WriteString(blob[:n] + "\r\n")
		blob = blob[n:]
	}
	b.WriteString("--b--\r\n")
	msg := b.String()
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(msg)); !strings.HasPrefix(rp, "451 4.3.0 ") {
		t.Fatalf("DATA: final reply %q, want 451 4.3.0", rp)
	}
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.send("BDAT " + strconv.Itoa(len(msg)) + " LAST\r\n" + msg)
	c.expect("451 4.3.0 ")
	if n := len(up.transactions()); n != 0 {
		t.Errorf("%d messages relayed", n)
	}
	waitFor(t, "log line naming the timeout", func() bool { return strings.Count(lg.String(), "past timeouts.inspect") == 2 })
	waitFor(t, "abandoned parses to end", func() bool { return srv.Abandoned() == 0 })
}

// TestAbandonedPile: while as many evaluations past timeouts.policy as
// allowed still run, a new message is tempfailed at once, without being
// evaluated; once they end, messages pass again.
func TestAbandonedPile(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Timeouts.Policy = 50 * time.Millisecond
	unblock := make(chan struct{})
	calls := 0
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st == rules.StageData && f.Envelope.From == "slow@example.org" {
			calls++
			<-unblock
		}
		return rules.Verdict{Action: rules.ActionContinue}
	}}
	addr, srv, lg := startServerWork(t, cfg, eng, bounded.New(1))
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("slow@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "451 4.3.0 ") {
		t.Fatalf("first: %q", rp)
	}
	// The next transaction is refused at its first evaluated stage.
	t0 := time.Now()
	c.cmd("MAIL FROM:<slow@example.org>", "451 4.3.0 ")
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("second message took %v: it waited", d)
	}
	if !strings.Contains(lg.String(), "too many evaluations past their timeout") {
		t.Errorf("no log line for the full pile:\n%s", lg.String())
	}
	close(unblock)
	waitFor(t, "abandoned evaluation to end", func() bool { return srv.Abandoned() == 0 })
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250 ") {
		t.Fatalf("after the pile drained: %q", rp)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if calls != 1 {
		t.Errorf("the slow rule ran %d times, want 1 (the second message must not be evaluated)", calls)
	}
}

// TestUpstreamIdleTimeoutNotRelayed: while mailgate decides, the upstream
// session idles out and sends 421; that reply is an upstream failure
// (451), not the verdict.
func TestUpstreamIdleTimeoutNotRelayed(t *testing.T) {
	up := newFakeUpstream(t)
	up.idle = 100 * time.Millisecond
	cfg := testConfig(t, up.url())
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st == rules.StageData {
			time.Sleep(400 * time.Millisecond)
		}
		return rules.Verdict{Action: rules.ActionContinue}
	}}
	addr, _, lg := startServer(t, cfg, eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "451 4.4.2 ") || strings.Contains(rp, "timeout") {
		t.Fatalf("final reply %q, want mailgate's 451 4.4.2", rp)
	}
	waitFor(t, "upstream failure logged", func() bool { return strings.Contains(lg.String(), "upstream failed") })
}

// TestPolicyCostFromConfig: serve's policy loader estimates costs with the
// config's limits, and the timeouts take milliseconds.
func TestPolicyCostFromConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.yaml"), []byte("rules:\n  - name: cubed\n    when: 'any(Parts, any(Parts, any(Parts, .Macros)))'\n    action: reject\n"), 0o644)
	for _, tc := range []struct {
		limits string
		ok     bool
	}{{"{}", false}, {"{mime_parts: 100}", true}} {
		src := "upstream: smtp://127.0.0.1:25\npolicies: [p.yaml]\nlimits: " + tc.limits + "\ntimeouts: {policy: 50ms, inspect: 250ms}\n"
		cfg, err := config.Parse(filepath.Join(dir, "mailgate.yaml"), []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Timeouts.Policy != 50*time.Millisecond || cfg.Timeouts.Inspect != 250*time.Millisecond {
			t.Errorf("timeouts %v %v", cfg.Timeouts.Policy, cfg.Timeouts.Inspect)
		}
		_, err = PolicyLoader(nil)(cfg)
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "over the budget") {
			t.Errorf("limits %s: load error %v, want ok=%v", tc.limits, err, tc.ok)
		}
	}
}
