package main

import (
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func waitFor(t *testing.T, b *syncBuffer, s string) bool {
	t.Helper()
	for i := 0; i < 500; i++ {
		if strings.Contains(b.String(), s) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("log lacks %q:\n%s", s, b.String())
	return false
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestServeReloadMetricsAndRestartKeys: a reload that fails to parse the
// file is counted as failed and sets last_reload_success to 0; build_info
// is exported; a changed log.level is applied, changed listen and
// metrics_listen are logged as needing a restart; an unreachable
// upstream is a warning at start.
func TestServeReloadMetricsAndRestartKeys(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mailgate.yaml")
	listen, metricsAddr, dead := freeAddr(t), freeAddr(t), freeAddr(t)
	write := func(extra string) {
		os.WriteFile(cfgPath, []byte("listen: [\""+listen+"\"]\nmetrics_listen: \""+metricsAddr+"\"\nupstream: smtp://"+dead+
			"\nquarantine_dir: "+dir+"/q\ntimeouts: {upstream_connect: 2s}\n"+extra), 0o600)
	}
	write("log: {level: info}\n")
	var out, errb syncBuffer
	code := make(chan int, 1)
	go func() { code <- runServe([]string{"-c", cfgPath}, &out, &errb) }()
	if !waitFor(t, &errb, "metrics listening") {
		t.FailNow()
	}
	waitFor(t, &errb, "upstream cannot be reached")
	m := scrape(t, metricsAddr)
	for _, want := range []string{`mailgate_config_last_reload_success 1`, `mailgate_build_info{goversion="go`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !regexp.MustCompile(`mailgate_config_last_reload_success_timestamp_seconds \d\.\d+e\+09`).MatchString(m) {
		t.Errorf("no reload timestamp in metrics")
	}

	os.WriteFile(cfgPath, []byte("listen: [\n"), 0o600) // a syntax error
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, &errb, "reload failed")
	m = scrape(t, metricsAddr)
	for _, want := range []string{`mailgate_config_reloads_total{result="failed"} 1`, "mailgate_config_last_reload_success 0"} {
		if !strings.Contains(m, want) {
			t.Errorf("after a failed reload, metrics lack %q", want)
		}
	}

	write("log: {level: debug}\n")
	b := strings.Replace(mustRead(t, cfgPath), `listen: ["`+listen, `listen: ["127.0.0.1:1`, 1)
	b = strings.Replace(b, `metrics_listen: "`+metricsAddr, `metrics_listen: "127.0.0.1:2`, 1)
	os.WriteFile(cfgPath, []byte(b), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, &errb, "configuration reloaded")
	waitFor(t, &errb, "log level changed")
	waitFor(t, &errb, "listen changed: restart mailgate to apply it")
	waitFor(t, &errb, "metrics_listen changed: restart mailgate to apply it")
	m = scrape(t, metricsAddr)
	if !strings.Contains(m, "mailgate_config_last_reload_success 1") || !strings.Contains(m, `mailgate_config_reloads_total{result="ok"} 1`) {
		t.Errorf("after a good reload: success gauge or ok count wrong")
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-code:
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServeListFlag: serve takes -l NAME=FILE like the other commands; a
// policy that reads the list starts with it and is refused without it.
func TestServeListFlag(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.yaml")
	os.WriteFile(pol, []byte("rules:\n  - name: internal\n    when: 'Envelope.FromDomain in Lists.mine'\n    action: reject\n"), 0o600)
	list := filepath.Join(dir, "mine.txt")
	os.WriteFile(list, []byte("example.org\n"), 0o600)
	t.Chdir(dir)
	var out, errb syncBuffer
	if code := runServe([]string{"-p", pol, "--listen", "127.0.0.1:0"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "list mine is not configured") {
		t.Fatalf("without -l: exit %d, %s", code, errb.String())
	}
	code := make(chan int, 1)
	go func() {
		code <- runServe([]string{"-p", pol, "-l", "mine=" + list, "--listen", "127.0.0.1:0"}, &out, &errb)
	}()
	re := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	var addr string
	for i := 0; i < 500 && addr == ""; i++ {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	if addr == "" {
		t.Fatalf("serve -l did not start: %s", errb.String())
	}
	err := smtp.SendMail(addr, nil, "a@example.org", []string{"b@example.net"}, []byte("Subject: hi\r\n\r\nhello\r\n"))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("a sender in the list: %v, want 550", err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-code:
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
