package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Redis is a private redis-server started by a test: loopback only, no
// persistence, in a temporary directory.
type Redis struct {
	Addr string // "127.0.0.1:PORT"
	URL  string // "redis://127.0.0.1:PORT/0"
	P    *Process
	t    testing.TB
	bin  string
	dir  string
	port int
}

// StartRedis starts redis-server on a free port and waits until it
// answers PING.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{t: t, bin: RequireTool(t, "redis-server"), dir: t.TempDir(), port: FreePort(t)}
	r.Addr = fmt.Sprintf("127.0.0.1:%d", r.port)
	r.URL = "redis://" + r.Addr + "/0"
	r.start()
	return r
}

func (r *Redis) start() {
	r.t.Helper()
	// --bind keeps the test instance off every other interface
	// (docs/DESIGN.md's POSTFIX notes on redis-server).
	r.P = Start(r.t, r.dir, nil, r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", r.dir)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, err := r.P.Exited(); ok {
			r.t.Fatalf("redis-server exited: %v\n%s", err, r.P.Output())
		}
		if pingRedis(r.Addr) == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server did not answer PING within 10s\n%s", r.P.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends redis-server with SIGKILL (what a crash looks like) and waits
// for it.
func (r *Redis) Kill() {
	r.P.Signal(syscall.SIGKILL)
	r.P.Wait(10 * time.Second)
}

// Restart starts a fresh, empty redis-server on the same port.
func (r *Redis) Restart() {
	r.t.Helper()
	r.start()
}

func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
