package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The byte pump is this binary started again with pumpEnv set; under
	// `go test` that binary is the test binary.
	if os.Getenv(pumpEnv) != "" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestWireData(t *testing.T) {
	got := string(wireData([]byte("a\r\n.b\r\n..c\r\nd")))
	if want := "a\r\n..b\r\n...c\r\nd\r\n.\r\n"; got != want {
		t.Fatalf("wireData = %q, want %q", got, want)
	}
}

func TestBigMessage(t *testing.T) {
	m := bigMessage(1 << 20)
	if len(m) < 1<<20-200 || len(m) > 1<<20+200 {
		t.Fatalf("size %d, want about 1 MiB", len(m))
	}
	if !bytes.HasSuffix(m, []byte("\r\n--mt--\r\n.\r\n")) || bytes.Count(m, []byte("\r\n.\r\n")) != 1 {
		t.Fatal("bigMessage must end with the final boundary and one end-of-data")
	}
}

func TestReportTargets(t *testing.T) {
	var s []sample
	add := func(target, size string, sess int, msgs, mb, p50, cpu float64) {
		for r := 1; r <= 3; r++ {
			s = append(s, sample{Target: target, Size: size, Sessions: sess, Run: r, MsgsPerS: msgs + float64(r), MBPerS: mb, P50ms: p50, P99ms: 2 * p50, CPUms: cpu * float64(r)})
		}
	}
	add("direct", "2k-text", 1, 900, 2, 0.4, 0)
	add("byte-pump", "2k-text", 100, 2000, 4, 5, 0)
	add("mailgate-packs", "2k-text", 100, 1500, 3, 6, 0.5)
	add("mailgate-packs", "2k-text", 1, 800, 2, 0.9, 0.5)
	add("haraka", "2k-text", 100, 450, 1, 50, 0)
	s = append(s, sample{Target: "haraka", Size: "2k-text", Sessions: 100, Run: 4, Err: "boom"})
	var b bytes.Buffer
	o := options{sizes: []string{"2k-text"}, sessions: []int{1, 100}, runs: 3}
	report(&b, s, o, map[string]int{"2k-text": 2088}, map[string]int64{"mailgate-packs": 51200}, nil)
	out := b.String()
	for _, want := range []string{
		"| 2k-text (2088 B) | 100 | mailgate-packs | 1502 | 3.0 | 75% |",
		"| 2k-text (2088 B) | 1 | mailgate-packs | 802 | 2.0 | — | 0.90 | 1.80 | +0.50 | +1.00 | 1.000 | 3 / 0 |",
		"| 2k-text (2088 B) | 100 | haraka | 452 | 1.0 | 23% | 50.00 | 100.00 | — | — | — | 3 / 1 |",
		"| mailgate-packs | 50.0 MiB |",
		"packs ≥ 70% of byte-pump msg/s: 75% — met",
		"packs ≥ 3x Haraka msg/s: 3.32x — met",
		"added p50 < 1 ms: 0.50 ms — met",
		"run 4 haraka 2k-text s=100: boom",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestSmokeDirectAndPump runs the harness's own smallest form: smtp-sink,
// direct and the byte pump, a few messages. Seconds; skips without
// Postfix's tools (fails in CI).
func TestSmokeDirectAndPump(t *testing.T) {
	for _, tool := range []string{"/usr/sbin/smtp-source", "/usr/sbin/smtp-sink"} {
		if _, err := os.Stat(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing in CI", tool)
			}
			t.Skipf("%s missing (apt-get install postfix)", tool)
		}
	}
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-targets", "direct,byte-pump", "-sizes", "2k-text", "-sessions", "1,4", "-runs", "1", "-scale", "0.02"}, &out, &errb)
	}()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("smoke run did not end within 60 s")
	}
	for _, want := range []string{"| 2k-text (2088 B) | 1 | direct |", "| 2k-text (2088 B) | 4 | byte-pump |", "1 / 0 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBudget(t *testing.T) {
	for _, c := range []struct {
		size          string
		sess          int
		scale, est    float64
		wantL, wantLt int
	}{
		{"2k-text", 100, 1, 0, 3000, 2000},    // unknown rate: the table
		{"2k-text", 100, 1, 5000, 3000, 2000}, // fast: the table caps
		{"2k-text", 100, 1, 300, 900, 600},    // slow: 3 s and 2 s of it
		{"1m-pdf", 100, 1, 2, 100, 100},       // very slow: one per session
		{"2k-text", 10, 0.05, 0, 100, 50},     // smoke scale
		{"2k-text", 1, 0.001, 0, 1, 5},        // floors
	} {
		l, lt := budget(c.size, c.sess, c.scale, c.est)
		if l != c.wantL || lt != c.wantLt {
			t.Errorf("budget(%s, %d, %v, %v) = %d, %d; want %d, %d", c.size, c.sess, c.scale, c.est, l, lt, c.wantL, c.wantLt)
		}
	}
}

// TestStartEnvWins: -x1-procs/-x2-procs pass GOMAXPROCS through start's
// env, which must win over a GOMAXPROCS the harness itself inherited.
func TestStartEnvWins(t *testing.T) {
	t.Setenv("GOMAXPROCS", "7")
	p, err := start("env", t.TempDir(), []string{"GOMAXPROCS=1"}, "sh", "-c", `echo "GOMAXPROCS=$GOMAXPROCS"`)
	if err != nil {
		t.Fatal(err)
	}
	<-p.done
	if got := strings.TrimSpace(p.output()); got != "GOMAXPROCS=1" {
		t.Fatalf("child saw %q, want GOMAXPROCS=1", got)
	}
}

func TestProcsFlagsRejectNegative(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"-x2-procs", "-1"}, &out, &errb); rc != 2 {
		t.Fatalf("run -x2-procs -1 = %d, want 2 (stderr %q)", rc, errb.String())
	}
}
