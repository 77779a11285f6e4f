package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	mailFrom = "alice@example.org"
	rcptTo   = "bob@example.net"
)

// sourceRun drives smtp-source: msgs messages over sessions parallel
// sessions, one connection per message, the file as header and body.
// It returns the wall time.
func sourceRun(ctx context.Context, addr, file string, msgs, sessions int, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/sbin/smtp-source",
		"-s", strconv.Itoa(sessions), "-m", strconv.Itoa(msgs),
		"-f", mailFrom, "-t", rcptTo, "-M", "client.bench.test", "-F", file, addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if ctx.Err() == context.DeadlineExceeded {
		return d, fmt.Errorf("smtp-source: no end within %v", timeout)
	}
	if err != nil || strings.Contains(out.String(), "fatal") || strings.Contains(out.String(), "warning") {
		return d, fmt.Errorf("smtp-source: %v: %s", err, firstLines(out.String(), 3))
	}
	return d, nil
}

// sourceRunAll is sourceRun split evenly over several instances at once
// (the sessions and messages divided between them); the wall time is the
// slowest one's.
func sourceRunAll(ctx context.Context, addrs []string, file string, msgs, sessions int, timeout time.Duration) (time.Duration, error) {
	if len(addrs) == 1 {
		return sourceRun(ctx, addrs[0], file, msgs, sessions, timeout)
	}
	n := len(addrs)
	var wg sync.WaitGroup
	ds, errs := make([]time.Duration, n), make([]error, n)
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds[i], errs[i] = sourceRun(ctx, a, file, max(1, msgs/n), max(1, sessions/n), timeout)
		}()
	}
	wg.Wait()
	return slices.Max(ds), errors.Join(errs...)
}

// latencyRunAll is latencyRun over several instances, each client taking
// them in turn.
func latencyRunAll(addrs []string, wire []byte, total, sessions int, timeout time.Duration) (p50, p99 time.Duration, errs int, firstErr error) {
	var next atomic.Uint64
	return latencyRunPick(func() string { return addrs[int(next.Add(1))%len(addrs)] }, wire, total, sessions, timeout)
}

func firstLines(s string, n int) string {
	l := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, " | ")
}

// wireData returns msg dot-stuffed and terminated for the DATA phase.
func wireData(msg []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(msg) + 64)
	for len(msg) > 0 {
		i := bytes.Index(msg, []byte("\r\n"))
		line := msg
		if i >= 0 {
			line, msg = msg[:i+2], msg[i+2:]
		} else {
			msg = nil
		}
		if line[0] == '.' {
			b.WriteByte('.')
		}
		b.Write(line)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// client is the harness's own minimal SMTP client: one transaction per
// connection, no pipelining, like smtp-source.
type client struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(addr string, timeout time.Duration) (*client, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	cl := &client{c: c, br: bufio.NewReaderSize(c, 4096)}
	if _, err := cl.expect("220"); err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

// expect reads one (multi-line) reply and checks its code's prefix.
func (cl *client) expect(prefix string) (string, error) {
	var all strings.Builder
	for {
		line, err := cl.br.ReadString('\n')
		if err != nil {
			return all.String(), fmt.Errorf("reading reply: %w", err)
		}
		all.WriteString(line)
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	s := all.String()
	if !strings.HasPrefix(s, prefix) {
		return s, fmt.Errorf("want %s, got %q", prefix, strings.TrimSpace(s))
	}
	return s, nil
}

func (cl *client) cmd(line, prefix string) error {
	if _, err := cl.c.Write([]byte(line + "\r\n")); err != nil {
		return err
	}
	_, err := cl.expect(prefix)
	return err
}

// envelope sends EHLO, MAIL, RCPT and DATA up to the 354.
func (cl *client) envelope() error {
	for _, s := range [][2]string{
		{"EHLO client.bench.test", "250"},
		{"MAIL FROM:<" + mailFrom + ">", "250"},
		{"RCPT TO:<" + rcptTo + ">", "250"},
		{"DATA", "354"},
	} {
		if err := cl.cmd(s[0], s[1]); err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(s[0])[0], err)
		}
	}
	return nil
}

// sendOne is one whole transaction on a new connection; the time is from
// dialling to the 250 after the final dot.
func sendOne(addr string, wire []byte, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	cl, err := dial(addr, timeout)
	if err != nil {
		return 0, err
	}
	defer cl.c.Close()
	if err := cl.envelope(); err != nil {
		return 0, err
	}
	if _, err := cl.c.Write(wire); err != nil {
		return 0, err
	}
	if _, err := cl.expect("250"); err != nil {
		return 0, fmt.Errorf("end of data: %w", err)
	}
	d := time.Since(t0)
	cl.c.Write([]byte("QUIT\r\n"))
	return d, nil
}

// latencyRun times total transactions sent by sessions concurrent
// clients, each sequential, and returns p50 and p99.
func latencyRun(addr string, wire []byte, total, sessions int, timeout time.Duration) (p50, p99 time.Duration, errs int, firstErr error) {
	return latencyRunPick(func() string { return addr }, wire, total, sessions, timeout)
}

// latencyRunPick is latencyRun with the address of each transaction
// chosen by pick.
func latencyRunPick(pick func() string, wire []byte, total, sessions int, timeout time.Duration) (p50, p99 time.Duration, errs int, firstErr error) {
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(timeout)
	for w := 0; w < sessions; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for next.Add(1) <= int64(total) && time.Now().Before(deadline) {
				d, err := sendOne(pick(), wire, 60*time.Second)
				mu.Lock()
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
				}
				mu.Unlock()
				if err == nil {
					mine = append(mine, d)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		if firstErr == nil {
			firstErr = fmt.Errorf("no transaction completed")
		}
		return 0, 0, errs, firstErr
	}
	slices.Sort(lat)
	return pct(lat, 50), pct(lat, 99), errs, firstErr
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return sorted[i-1]
}

// rssSampler polls VmRSS of pid until stopped and keeps the largest (kB).
type rssSampler struct {
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v := procStatusKB(pid, "VmRSS"); v > s.max.Load() {
				s.max.Store(v)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) end() int64 {
	close(s.stop)
	<-s.done
	return s.max.Load()
}
