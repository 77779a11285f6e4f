package clamd_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mailgate/clamd"
	"mailgate/internal/e2e"
)

// TestRealClamd drives a private clamd: EICAR found whether plain, base64
// or zipped inside the MIME message (clamd decodes MIME and zip itself when
// it is sent the whole message), over TCP and the unix socket; a clean
// message passes.
func TestRealClamd(t *testing.T) {
	cd := e2e.StartClamd(t, e2e.ClamdOptions{})
	cases := e2e.VirusMessages()
	for _, addr := range []string{cd.TCP, cd.Socket} {
		cl, err := clamd.New(addr, 10*time.Second, 25<<20)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Ping(context.Background()); err != nil {
			t.Fatalf("%s: Ping: %v", addr, err)
		}
		for _, tc := range cases {
			res, err := cl.Scan(context.Background(), bytes.NewReader(tc.Data), int64(len(tc.Data)))
			if err != nil {
				t.Errorf("%s %s: %v", addr, tc.Name, err)
				continue
			}
			if res.Found != tc.Virus {
				t.Errorf("%s %s: Found = %v, want %v (%v)", addr, tc.Name, res.Found, tc.Virus, res.Names)
			}
			if tc.Virus && (len(res.Names) == 0 || res.Names[0] != e2e.EICARSignature) {
				t.Errorf("%s %s: names %q, want [%s]", addr, tc.Name, res.Names, e2e.EICARSignature)
			}
		}
	}
}

// TestRealClamdFailures: clamd stopped → an error; clamd stuck (SIGSTOP)
// → an error after the timeout, not a hang; clamd's own StreamMaxLength
// smaller than max_size → clamd's ERROR is read after our write fails.
// None of them is ever a clean verdict.
func TestRealClamdFailures(t *testing.T) {
	cd := e2e.StartClamd(t, e2e.ClamdOptions{StreamMaxLength: "1M"})
	msg := e2e.MIMEAttachment("base64", "notes.txt", e2e.Base64Lines([]byte("clean\r\n")))

	big := bytes.Repeat([]byte("A"), 8<<20)
	cl, _ := clamd.New(cd.TCP, 10*time.Second, 64<<20)
	_, err := cl.Scan(context.Background(), bytes.NewReader(big), int64(len(big)))
	if err == nil || !strings.Contains(err.Error(), "size limit exceeded") {
		t.Errorf("8 MiB to a clamd with StreamMaxLength 1M: err = %v, want clamd's size limit error", err)
	}

	small, _ := clamd.New(cd.TCP, 10*time.Second, 1<<20)
	if _, err := small.Scan(context.Background(), bytes.NewReader(big), int64(len(big))); !errors.Is(err, clamd.ErrTooBig) {
		t.Errorf("8 MiB with max_size 1 MiB: err = %v, want ErrTooBig", err)
	}

	cd.Freeze()
	quick, _ := clamd.New(cd.TCP, 500*time.Millisecond, 25<<20)
	start := time.Now()
	_, err = quick.Scan(context.Background(), bytes.NewReader(msg), int64(len(msg)))
	el := time.Since(start)
	cd.Thaw()
	if err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("frozen clamd: err = %v, want a timeout", err)
	}
	if el < 400*time.Millisecond || el > 2*time.Second {
		t.Errorf("frozen clamd answered after %s with a timeout of 500ms", el)
	}
	if _, err := cl.Scan(context.Background(), bytes.NewReader(msg), int64(len(msg))); err != nil {
		t.Errorf("after thaw: %v", err)
	}

	cd.Stop()
	for _, addr := range []string{cd.TCP, cd.Socket} {
		c, _ := clamd.New(addr, time.Second, 25<<20)
		if res, err := c.Scan(context.Background(), bytes.NewReader(msg), int64(len(msg))); err == nil {
			t.Errorf("%s: clamd stopped: Scan = %+v, nil; want an error", addr, res)
		}
	}
}
