package clamd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseReply(t *testing.T) {
	tests := []struct {
		in      string
		want    Result
		wantErr string
	}{
		{in: "stream: OK\x00", want: Result{}},
		{in: "stream: OK\n", want: Result{}},
		{in: "stream: Eicar-Test-Signature FOUND\x00", want: Result{Found: true, Names: []string{"Eicar-Test-Signature"}}},
		{in: "1: stream: Win.Test.EICAR_HDB-1 FOUND\x00", want: Result{Found: true, Names: []string{"Win.Test.EICAR_HDB-1"}}},
		{in: "stream: A FOUND\x00stream: B FOUND\x00", want: Result{Found: true, Names: []string{"A", "B"}}},
		{in: "stream: Foo: bar FOUND\x00", want: Result{Found: true, Names: []string{"Foo: bar"}}},
		{in: "INSTREAM size limit exceeded. ERROR\x00", wantErr: "size limit exceeded"},
		{in: "stream: Can't allocate memory ERROR\x00", wantErr: "allocate memory"},
		{in: "stream: A FOUND\x00x ERROR\x00", wantErr: "clamd error"},
		{in: "", wantErr: "empty reply"},
		{in: "\x00\x00", wantErr: "empty reply"},
		{in: "stream: FOUND\x00", wantErr: "unexpected"},
		{in: "stream:  FOUND\x00", wantErr: "FOUND without"},
		{in: "UNKNOWN COMMAND\x00", wantErr: "unexpected reply"},
		{in: "stream: OKAY\x00", wantErr: "unexpected reply"},
		{in: "stream: \x01evil\x7f FOUND\x00", want: Result{Found: true, Names: []string{"evil"}}},
	}
	for _, tt := range tests {
		got, err := ParseReply([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseReply(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseReply(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"stream: OK\x00", "stream: X FOUND\x00", "INSTREAM size limit exceeded. ERROR\x00", "1: stream: a: b FOUND\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := ParseReply(b)
		if err != nil {
			if res.Found || len(res.Names) > 0 {
				t.Fatalf("error with a verdict: %+v", res)
			}
			return
		}
		if res.Found != (len(res.Names) > 0) {
			t.Fatalf("Found=%v with names %q", res.Found, res.Names)
		}
		if !res.Found && !bytes.Contains(b, []byte("OK")) {
			t.Fatalf("clean without an OK in %q", b)
		}
		for _, n := range res.Names {
			if n == "" || len(n) > 200 || strings.ContainsAny(n, "\x00\r\n") {
				t.Fatalf("bad name %q", n)
			}
		}
	})
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string][2]string{
		"tcp://127.0.0.1:3310":       {"tcp", "127.0.0.1:3310"},
		"tcp://[::1]:3310":           {"tcp", "[::1]:3310"},
		"unix:/run/clamav/clamd.ctl": {"unix", "/run/clamav/clamd.ctl"},
		"unix:///run/clamd.ctl":      {"unix", "/run/clamd.ctl"},
		"/run/clamd.ctl":             {"unix", "/run/clamd.ctl"},
	} {
		n, a, err := ParseAddress(in)
		if err != nil || n != want[0] || a != want[1] {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q", in, n, a, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:3310", "tcp://host", "tcp://:3310", "unix:relative.sock", "http://x:1"} {
		if _, _, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q): no error", bad)
		}
	}
}

// fakeClamd serves one connection with handle.
func fakeClamd(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return "tcp://" + ln.Addr().String()
}

// readStream reads an INSTREAM request and returns the data sent.
func readStream(c net.Conn) ([]byte, error) {
	cmd := make([]byte, len("zINSTREAM\x00"))
	if _, err := io.ReadFull(c, cmd); err != nil || string(cmd) != "zINSTREAM\x00" {
		return nil, errors.New("bad command")
	}
	var data []byte
	for {
		var l [4]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(l[:])
		if n == 0 {
			return data, nil
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(c, chunk); err != nil {
			return nil, err
		}
		data = append(data, chunk...)
	}
}

func TestScanProtocol(t *testing.T) {
	msg := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160000 bytes: three chunks
	var got []byte
	addr := fakeClamd(t, func(c net.Conn) {
		got, _ = readStream(c)
		c.Write([]byte("stream: OK\x00"))
	})
	cl, err := New(addr, 5*time.Second, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.Scan(context.Background(), bytes.NewReader(msg), int64(len(msg)))
	if err != nil || res.Found {
		t.Fatalf("Scan = %+v, %v", res, err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("clamd received %d bytes, want the %d sent", len(got), len(msg))
	}
}

func TestScanTooBigNotSent(t *testing.T) {
	contacted := make(chan bool, 4)
	addr := fakeClamd(t, func(c net.Conn) { contacted <- true; c.Write([]byte("stream: OK\x00")) })
	cl, _ := New(addr, time.Second, 1000)
	if _, err := cl.Scan(context.Background(), bytes.NewReader(make([]byte, 1001)), 1001); !errors.Is(err, ErrTooBig) {
		t.Fatalf("declared 1001 bytes over max_size 1000: err = %v, want ErrTooBig", err)
	}
	select {
	case <-contacted:
		t.Fatal("a message larger than max_size was sent to clamd")
	case <-time.After(50 * time.Millisecond):
	}
	// Size unknown (or lying): stopped while streaming.
	if _, err := cl.Scan(context.Background(), bytes.NewReader(make([]byte, 5000)), -1); !errors.Is(err, ErrTooBig) {
		t.Fatalf("5000 bytes of unknown size over max_size 1000: err = %v, want ErrTooBig", err)
	}
}

// clamd refuses a stream past its StreamMaxLength with an ERROR and closes
// while the client still writes: the reply must still be read and be an
// error, never a clean verdict.
func TestScanReplyAfterWriteError(t *testing.T) {
	addr := fakeClamd(t, func(c net.Conn) {
		io.CopyN(io.Discard, c, 100)
		c.Write([]byte("INSTREAM size limit exceeded. ERROR\x00"))
		c.(*net.TCPConn).CloseRead()
	})
	cl, _ := New(addr, 5*time.Second, 1<<30)
	big := bytes.NewReader(make([]byte, 32<<20))
	_, err := cl.Scan(context.Background(), big, -1)
	if err == nil || !strings.Contains(err.Error(), "size limit exceeded") {
		t.Fatalf("err = %v, want clamd's size limit error", err)
	}
}

func TestScanFailures(t *testing.T) {
	slow := fakeClamd(t, func(c net.Conn) { readStream(c); time.Sleep(2 * time.Second) })
	silent := fakeClamd(t, func(c net.Conn) { readStream(c) })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "tcp://" + ln.Addr().String()
	ln.Close()
	for name, tc := range map[string]struct {
		addr    string
		timeout time.Duration
		want    string
	}{
		"slow":    {slow, 200 * time.Millisecond, "no answer within 200ms"},
		"silent":  {silent, 2 * time.Second, "closed without a reply"},
		"refused": {closed, time.Second, "connection refused"},
	} {
		cl, _ := New(tc.addr, tc.timeout, 1<<20)
		start := time.Now()
		res, err := cl.Scan(context.Background(), strings.NewReader("hello\r\n"), 7)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Scan = %+v, %v; want error %q", name, res, err, tc.want)
		}
		if el := time.Since(start); el > tc.timeout+500*time.Millisecond {
			t.Errorf("%s: took %s with timeout %s", name, el, tc.timeout)
		}
	}
}
