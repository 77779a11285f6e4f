package proxy

import (
	"context"
	"io"
	"mailgate/config"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate"
	"mailgate/rules"
)

// fixture reads a message from the repository's testdata with CRLF line
// endings, skipping the test when it is absent.
func fixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fixture %s: %v", name, err)
		}
		t.Skipf("fixture %s absent: %v", name, err)
	}
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// TestEmbeddedDefaultPolicy runs the real rules engine with the embedded
// default pack: an executable is refused, a clean message passes.
func TestEmbeddedDefaultPolicy(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.EmbeddedPolicy = mailgate.DefaultPack
	cfg.Limits.SpoolMemory = 512 // exercise the temp file
	eng, err := PolicyLoader(mailgate.Tree)(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if eng == nil {
		t.Fatal("no engine for the embedded default")
	}
	addr, _, _ := startServer(t, cfg, eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	exe := fixture(t, "attacks/exe-attachment.eml")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(exe)); !strings.HasPrefix(rp, "550 5.7.1") {
		t.Fatalf("executable: final reply %q, want 550 5.7.1", rp)
	}
	zip := fixture(t, "attacks/exe-in-zip.eml")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(zip)); !strings.HasPrefix(rp, "550 5.7.1") {
		t.Fatalf("exe in zip: final reply %q, want 550 5.7.1", rp)
	}
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("clean: final reply %q", rp)
	}
	// Spool and inspection spill files are gone after every outcome.
	if ents, _ := os.ReadDir(cfg.SpoolDir); len(ents) != 0 {
		t.Errorf("spool dir holds %v", ents)
	}
	txs := up.transactions()
	if len(txs) != 1 || string(txs[0].Data) != cleanMsg {
		t.Fatalf("upstream: %d transactions", len(txs))
	}
}

func TestPolicyFileAndReload(t *testing.T) {
	up := newFakeUpstream(t)
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.yaml")
	os.WriteFile(pol, []byte(`rules:
  - name: no-evil
    stage: mail
    when: 'Envelope.From == "evil@example.org"'
    action: reject
    reply: "550 5.7.1 No"
`), 0o600)
	cfg := testConfig(t, up.url())
	cfg.Policies = []string{pol}
	lg := &testLog{}
	srv, err := NewServer(cfg, Options{Logger: NewLogger(lg, "json", "info"), LoadEngine: PolicyLoader(mailgate.Tree)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	addr := srv.Addrs()[0].String()
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<evil@example.org>", "550 5.7.1 No")

	// A broken policy: the reload fails and the running one stays.
	os.WriteFile(pol, []byte("rules:\n  - name: x\n    when: 'Nope > 1'\n"), 0o600)
	if err := srv.Reload(cfg); err == nil {
		t.Fatal("reload of a broken policy succeeded")
	}
	c = dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<evil@example.org>", "550 5.7.1 No")

	// A good one replaces it for new sessions.
	os.WriteFile(pol, []byte("rules:\n  - name: none\n    stage: mail\n    when: 'false'\n    action: reject\n"), 0o600)
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	c = dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<evil@example.org>", "250")
	if !strings.Contains(lg.String(), "reload failed, keeping the running configuration") {
		t.Errorf("log lacks the failed reload:\n%s", lg.String())
	}
}

func TestShutdownDrains(t *testing.T) {
	up := newFakeUpstream(t)
	addr, srv, _ := startServer(t, testConfig(t, up.url()), nil)
	idle := dialClient(t, addr)
	idle.cmd("EHLO idle.test", "250")
	busy := dialClient(t, addr)
	busy.cmd("EHLO busy.test", "250")
	busy.cmd("MAIL FROM:<a@example.org>", "250")
	busy.cmd("RCPT TO:<b@example.net>", "250")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	idle.expect("421 4.3.0") // idle sessions are told at once
	// The transaction in progress may finish.
	busy.cmd("DATA", "354")
	busy.send(stuff(cleanMsg))
	busy.expect("250")
	busy.expect("421 4.3.0")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if len(up.transactions()) != 1 {
		t.Fatal("drained transaction not delivered")
	}
}

func TestShutdownTimeoutCutsOff(t *testing.T) {
	up := newFakeUpstream(t)
	addr, srv, _ := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	go srv.Shutdown(ctx)
	c.expect("421 4.3.0")
}

func TestPanicRecovered(t *testing.T) {
	up := newFakeUpstream(t)
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st == rules.StageData {
			panic("boom")
		}
		return rules.Verdict{Action: rules.ActionContinue}
	}}
	cfg := testConfig(t, up.url())
	cfg.Limits.SpoolMemory = 10 // the message goes to a temp file
	addr, srv, lg := startServer(t, cfg, eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "421 4.3.0") {
		t.Fatalf("final reply %q", rp)
	}
	waitFor(t, "panic counted", func() bool { return srv.Panics() == 1 })
	if !strings.Contains(lg.String(), "panic in session") || !strings.Contains(lg.String(), "boom") {
		t.Errorf("panic not logged:\n%s", lg.String())
	}
	if len(up.transactions()) != 0 {
		t.Error("message relayed after a panic")
	}
	if ents, _ := os.ReadDir(cfg.SpoolDir); len(ents) != 0 {
		t.Errorf("spool dir after a panic: %v", ents)
	}
	srv.panicCount.Store(0) // expected here; startServer checks for others
}

func TestMetricsEndpoint(t *testing.T) {
	up := newFakeUpstream(t)
	addr, srv, _ := startServer(t, testConfig(t, up.url()), nil)
	ma, err := srv.ListenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg))
	c.cmd("QUIT", "221")
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + ma.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mailgate_smtp_transactions_total{verdict="accept"} 1`, "mailgate_panics_total 0",
		`mailgate_smtp_command_duration_seconds_bucket{cmd="MAIL",code="250",ecode="2.1.0"`, `mailgate_smtp_replies_total{code="250"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	resp, err = cl.Get("http://" + ma.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine: %d %.200q", resp.StatusCode, body)
	}
}

func TestXforwardTrusted(t *testing.T) {
	up := newFakeUpstream(t)
	eng := &fakeEngine{}
	cfg := testConfig(t, up.url())
	cfg.TrustedForwarders = loopbackForwarders // no default trusts anyone
	addr, _, lg := startServer(t, cfg, eng)
	c := dialClient(t, addr)
	c.cmd("EHLO postfix.test", "250")
	c.cmd("XFORWARD NAME=client.example ADDR=192.0.2.7 PORT=4711 PROTO=ESMTP HELO=orig.example", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply %q", rp)
	}
	txs := up.transactions()
	if len(txs) != 1 || !strings.Contains(txs[0].Xfwd, "ADDR=192.0.2.7") || !strings.Contains(txs[0].Xfwd, "HELO=orig.example") ||
		!strings.Contains(txs[0].Xfwd, "NAME=client.example") {
		t.Fatalf("upstream XFORWARD %+v", txs)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	for _, f := range eng.seen {
		if f.Client.IP != "192.0.2.7" || f.Client.HELO != "orig.example" || f.Client.Port != 4711 {
			t.Errorf("policy saw client %+v", f.Client)
		}
	}
	if len(eng.seen) < 4 {
		t.Errorf("stages evaluated: %d", len(eng.seen))
	}
	if !strings.Contains(lg.String(), `"client_ip":"192.0.2.7"`) {
		t.Errorf("log lacks the original client")
	}
}

// TestXforwardDefaultUntrusted: the default config trusts no forwarder, so
// a loopback client's XFORWARD is refused and the upstream hears the real
// address (a publicly listening mailgate must not let local processes pose
// as any client). Both the built-in defaults and a config file without
// trusted_forwarders.
func TestXforwardDefaultUntrusted(t *testing.T) {
	dir := t.TempDir()
	fromFile, err := config.Parse(filepath.Join(dir, "mailgate.yaml"), []byte("upstream: smtp://127.0.0.1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, def := range map[string]*config.Config{"DefaultConfig": config.Default(), "file": fromFile} {
		t.Run(name, func(t *testing.T) {
			if len(def.TrustedForwarders) != 0 {
				t.Fatalf("default trusted_forwarders %v, want none", def.TrustedForwarders)
			}
			up := newFakeUpstream(t)
			cfg := testConfig(t, up.url())
			cfg.TrustedForwarders = def.TrustedForwarders
			addr, _, _ := startServer(t, cfg, nil)
			c := dialClient(t, addr)
			if ehlo := c.cmd("EHLO postfix.test", "250"); strings.Contains(ehlo, "XFORWARD") {
				t.Errorf("XFORWARD offered to 127.0.0.1 by default: %q", ehlo)
			}
			c.cmd("XFORWARD NAME=client.example ADDR=192.0.2.7 PROTO=ESMTP HELO=orig.example", "550 5.7.0")
			c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg))
			if txs := up.transactions(); len(txs) != 1 || strings.Contains(txs[0].Xfwd, "192.0.2.7") ||
				!strings.Contains(txs[0].Xfwd, "ADDR=127.0.0.1") {
				t.Fatalf("upstream XFORWARD %+v", txs)
			}
		})
	}
}

func TestXforwardUntrusted(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.TrustedForwarders = nil
	addr, _, _ := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	ehlo := c.cmd("EHLO client.test", "250")
	if strings.Contains(ehlo, "XFORWARD") || strings.Contains(ehlo, "XCLIENT") {
		t.Errorf("XFORWARD offered to an untrusted client: %q", ehlo)
	}
	c.cmd("XFORWARD ADDR=192.0.2.7", "550 5.7.0")
	c.cmd("XCLIENT ADDR=192.0.2.7", "550 5.7.0")
	c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg))
	if txs := up.transactions(); len(txs) != 1 || !strings.Contains(txs[0].Xfwd, "ADDR=127.0.0.1") {
		t.Fatalf("upstream XFORWARD %+v", txs)
	}
}
