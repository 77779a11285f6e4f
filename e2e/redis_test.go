package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate/internal/e2e"
)

// sendMail runs one transaction on a new connection and returns the
// reply that ended it: the first refusal (MAIL, RCPT, DATA) or the reply
// to the final dot.
func sendMail(t *testing.T, addr, from, rcpt string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	reply := func() string {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading reply: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimRight(line, "\r\n")
			}
		}
	}
	if r := reply(); !strings.HasPrefix(r, "220") {
		t.Fatalf("banner %q", r)
	}
	for _, step := range []struct{ cmd, want string }{
		{"EHLO client.example\r\n", "250"},
		{"MAIL FROM:<" + from + ">\r\n", "250"},
		{"RCPT TO:<" + rcpt + ">\r\n", "250"},
		{"DATA\r\n", "354"},
		{"From: <" + from + ">\r\nTo: <" + rcpt + ">\r\nSubject: shared state\r\nMessage-ID: <" + fmt.Sprint(time.Now().UnixNano()) + "@example.com>\r\n\r\nhello\r\n.\r\n", "250"},
	} {
		fmt.Fprint(c, step.cmd)
		if r := reply(); !strings.HasPrefix(r, step.want) || step.want == "250" && strings.HasPrefix(step.cmd, "From:") {
			fmt.Fprint(c, "QUIT\r\n")
			return r
		}
	}
	return ""
}

// sharedStatePolicy limits each sender to 3 messages an hour and
// greylists senders starting with "grey".
const sharedStatePolicy = `rules:
  - name: sender-rate
    stage: mail
    when: 'rate("from:" + lower(Envelope.From), "1h") > 3'
    action: tempfail
    reply: "451 4.7.1 Too many messages from this sender, try again later"
  - name: grey
    stage: rcpt
    when: 'Envelope.From startsWith "grey"'
    action: greylist
    greylist: {delay: 1s}
`

// startSharedInstances starts n mailgate processes sharing one Redis
// (state: {redis: URL}) in front of one fake upstream.
func startSharedInstances(t *testing.T, n int, redisURL string) (addrs, metrics []string) {
	t.Helper()
	up := startUpstream(t, upstreamScript{at: stNone})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"policy.yaml": sharedStatePolicy})
	for i := 0; i < n; i++ {
		addr, maddr := e2e.FreeAddr(t), e2e.FreeAddr(t)
		cfg := fmt.Sprintf("listen: [%q]\nhostname: mx%d.test\nupstream: smtp://%s\npolicies: [policy.yaml]\nlog: {format: json}\nstate: {redis: %q}\nspool_dir: %s\nmetrics_listen: %q\n",
			addr, i, up.Addr, redisURL, dir, maddr)
		name := filepath.Join(dir, fmt.Sprintf("mx%d.yaml", i))
		if err := os.WriteFile(name, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		e2e.StartMailgate(t, dir, addr, "serve", "-c", name)
		addrs, metrics = append(addrs, addr), append(metrics, maddr)
	}
	return addrs, metrics
}

// metricValue reads one unlabelled metric from a /metrics page.
func metricValue(t *testing.T, addr, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestTwoInstancesShareRedis: two mailgate processes sharing one Redis.
// A rate limit of 3 an hour: the 4th message tempfails whichever
// instance it reaches. A greylisted triple retried through the other
// instance passes. Redis killed mid-run: the rules that read the state
// tempfail (never pass); Redis restarted: it works again, no restart of
// mailgate.
func TestTwoInstancesShareRedis(t *testing.T) {
	rd := e2e.StartRedis(t)
	mx, mm := startSharedInstances(t, 2, rd.URL)

	for i, a := range []string{mx[0], mx[1], mx[0]} {
		if r := sendMail(t, a, "bulk@example.com", "user@example.org"); !strings.HasPrefix(r, "250") {
			t.Fatalf("message %d via mx%d: %q, want 250", i+1, i%2, r)
		}
	}
	for i, a := range mx {
		if r := sendMail(t, a, "bulk@example.com", "user@example.org"); !strings.HasPrefix(r, "451 4.7.1 Too many") {
			t.Errorf("message %d via mx%d: %q, want the rate limit's 451", 4+i, i, r)
		}
	}
	if r := sendMail(t, mx[1], "other@example.com", "user@example.org"); !strings.HasPrefix(r, "250") {
		t.Errorf("another sender: %q", r)
	}

	if r := sendMail(t, mx[0], "grey@example.net", "user@example.org"); !strings.HasPrefix(r, "450 4.7.1") {
		t.Fatalf("first attempt via mx0: %q, want greylisted", r)
	}
	if r := sendMail(t, mx[1], "grey@example.net", "user@example.org"); !strings.HasPrefix(r, "450 4.7.1") {
		t.Errorf("retry before the delay via mx1: %q, want greylisted", r)
	}
	time.Sleep(1100 * time.Millisecond)
	if r := sendMail(t, mx[1], "grey@example.net", "user@example.org"); !strings.HasPrefix(r, "250") {
		t.Errorf("retry after the delay via mx1: %q, want 250", r)
	}

	rd.Kill()
	for i, a := range mx {
		r := sendMail(t, a, "fresh@example.com", "user@example.org")
		if !strings.HasPrefix(r, "451 4.3.0") {
			t.Errorf("Redis down, via mx%d: %q, want 451 4.3.0", i, r)
		}
	}
	for i, m := range mm {
		if v := metricValue(t, m, "mailgate_state_errors_total"); v != "1" {
			t.Errorf("mx%d: mailgate_state_errors_total %q, want 1", i, v)
		}
	}
	rd.Restart()
	for i, a := range mx {
		var r string
		for try := 0; try < 3; try++ { // a pooled connection from before the restart may fail once
			if r = sendMail(t, a, fmt.Sprintf("back%d@example.com", i), "user@example.org"); strings.HasPrefix(r, "250") {
				break
			}
			t.Logf("Redis back, via mx%d, attempt %d: %q", i, try+1, r)
		}
		if !strings.HasPrefix(r, "250") {
			t.Errorf("Redis back, via mx%d: %q, want 250", i, r)
		}
	}
}
