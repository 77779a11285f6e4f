package proxy

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPregreet: with timeouts.greet_delay, a client that talks before the
// greeting has Client.Pregreet from the helo stage on; a policy refusing on
// it refuses its EHLO (sent early, read after the greeting). A client that
// waits is not flagged. Both get the greeting only after the delay.
func TestPregreet(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Timeouts.GreetDelay = 200 * time.Millisecond
	cfg.TrustedForwarders = nil // the test clients are the clients
	pol := filepath.Join(t.TempDir(), "pregreet.yaml")
	os.WriteFile(pol, []byte("rules:\n  - name: pregreet\n    stage: helo\n    when: Client.Pregreet\n    action: reject\n    reply: 550 5.7.1 talked before the greeting\n"), 0o600)
	cfg.Policies = []string{pol}
	addr, lg := startServerOpts(t, cfg, Options{LoadEngine: PolicyLoader(nil)})

	// The pregreeter: EHLO in the same breath as the connection.
	t0 := time.Now()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte("EHLO early.test\r\n")); err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, c: nc, br: bufio.NewReader(nc)}
	c.expect("220 ")
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Errorf("greeting after %v, want the 200ms delay", d)
	}
	c.expect("550 5.7.1 talked before the greeting")
	c.cmd("QUIT", "221")
	waitFor(t, "pregreet log", func() bool {
		return strings.Contains(lg.String(), `"msg":"pregreet: the client sent data before the greeting"`)
	})

	// The polite client.
	t0 = time.Now()
	c = dialClient(t, addr)
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Errorf("greeting after %v, want the 200ms delay", d)
	}
	c.cmd("EHLO polite.test", "250")
	c.cmd("QUIT", "221")
	if n := strings.Count(lg.String(), "pregreet: the client"); n != 1 {
		t.Errorf("%d pregreet log lines, want 1 (the polite client was flagged)", n)
	}
}
