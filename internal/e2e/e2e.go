// Package e2e is the end-to-end test harness: it builds the mailgate binary
// once per test process, finds free loopback ports, starts processes and
// waits for their SMTP banners, runs a private Postfix or smtp-sink as a real
// upstream, and always cleans up after the test.
//
// Tests that need a component that is not installed skip with a clear
// message, except under CI=true, where they fail: CI must never pass by
// skipping what it was meant to test.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing stops the test because a component is absent: Skip on a
// developer's machine, Fatal under CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("required under CI=true: %s", msg)
	}
	t.Skipf("skipping: %s (install it, or run .ci/run)", msg)
}

// RequireTool returns the path of an executable, or stops the test via Missing.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	Missing(t, "%s is not installed", name)
	return ""
}

// RepoRoot returns the module root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("e2e: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// SharedDir returns ../shared/<rel> beside the repository (the corpus and
// other shared material: docs/DEVELOPING.md, "Test data outside the
// repository"), or stops the test via Missing when it is absent.
func SharedDir(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "..", "shared", rel)
	if _, err := os.Stat(p); err != nil {
		Missing(t, "%s is absent (it sits beside the repository in the developers' workspace)", p)
	}
	return p
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds ./cmd/mailgate once per test process and returns its path.
// The binary lives in a temporary directory removed by Cleanup, which a
// TestMain should call after m.Run.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailgate-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "mailgate")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/mailgate")
		cmd.Dir = RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/mailgate: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Cleanup removes the binary built by Binary. Call it from TestMain.
func Cleanup() {
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr returns "127.0.0.1:PORT" for a free port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// Process is a started child process with its combined output captured.
type Process struct {
	Cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended, and its error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits up to d for the process to end; it reports whether it did.
func (p *Process) Wait(d time.Duration) (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(d):
		return false, nil
	}
}

// Start starts name with args in its own process group and registers a
// cleanup that kills the group and, if the test failed, prints its output.
func Start(t testing.TB, dir string, env []string, name string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	buf := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &Process{Cmd: cmd, out: buf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if ok, _ := p.Exited(); !ok {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			if ok, _ := p.Wait(5 * time.Second); !ok {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				p.Wait(5 * time.Second)
			}
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(name), tail(p.Output(), 4000))
		}
	})
	return p
}

// WaitBanner connects to addr until it answers with a 220 banner or the
// timeout passes (or p, when not nil, exits first).
func WaitBanner(t testing.TB, p *Process, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p != nil {
			if ok, err := p.Exited(); ok {
				t.Fatalf("process exited before answering on %s: %v\n%s", addr, err, tail(p.Output(), 4000))
			}
		}
		line, err := Banner(addr, time.Second)
		if err == nil && strings.HasPrefix(line, "220") {
			return
		}
		if err == nil {
			err = fmt.Errorf("banner %q", line)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no 220 banner on %s within %v: %v", addr, timeout, last)
}

// Banner connects to addr, reads the first reply line, sends QUIT and closes.
func Banner(addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return strings.TrimRight(line, "\r\n"), nil
}

// StartMailgate starts the built binary with args (e.g. "serve", "-c", f)
// in dir and waits for its banner on addr.
func StartMailgate(t testing.TB, dir, addr string, args ...string) *Process {
	t.Helper()
	p := Start(t, dir, nil, Binary(t), args...)
	WaitBanner(t, p, addr, 20*time.Second)
	return p
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
