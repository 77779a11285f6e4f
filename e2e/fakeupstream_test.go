package e2e_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stage is a point in an SMTP session where the fake upstream (or the
// scripted client) can misbehave.
type stage int

const (
	stConnect stage = iota // the banner
	stEHLO                 // the reply to EHLO (and HELO)
	stMAIL
	stRCPT
	stDATA // the 354
	stBody // after part of the message bytes
	stDot  // the reply to the final dot
	stNone
)

func (s stage) String() string {
	return [...]string{"connect", "ehlo", "mail", "rcpt", "data", "body", "dot", "none"}[s]
}

// faultKind is what the fake upstream does at its fault stage.
type faultKind int

const (
	fNone   faultKind = iota
	fRefuse           // nothing listens (connect stage only)
	fStall            // read on, never answer (until the test ends)
	fDrop             // close the connection without a reply
	fReply            // answer with a fixed reply
)

// upstreamScript is one cell's upstream behaviour.
type upstreamScript struct {
	at    stage
	kind  faultKind
	reply string // for fReply: "451 4.3.0 try later"
	// bodyAfter is how many DATA bytes to read before acting at stBody.
	bodyAfter int
	// ext are extra EHLO keywords (e.g. "AUTH PLAIN").
	ext []string
	// noRecord keeps only counts (the soak: no memory growth in the test).
	noRecord bool
	// once applies the fault to the first connection only; later ones are
	// served normally (recovery after a failure).
	once bool
}

// upTx is one transaction the fake upstream accepted (it answered 250 to
// the final dot).
type upTx struct {
	From  string
	Rcpts []string
	Data  []byte // dot-unstuffed, as the upstream would store it
}

// fakeUpstream is a scriptable SMTP server on 127.0.0.1:0.
type fakeUpstream struct {
	Addr   string
	script upstreamScript
	ln     net.Listener

	mu       sync.Mutex
	accepted []upTx
	commands []string // every command line received, in order (all sessions)
	conns    []net.Conn

	nAccepted atomic.Int64 // transactions accepted (also with noRecord)
	nConns    atomic.Int64
	probes    atomic.Int64 // connections of mailgate's start-up check, not counted for once
	wg        sync.WaitGroup
	done      chan struct{}
}

// startUpstream starts a fake upstream following script; its connections
// are closed when the test ends (which also ends every stall).
func startUpstream(t testing.TB, script upstreamScript) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{script: script, done: make(chan struct{})}
	if script.at == stConnect && script.kind == fRefuse {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u.Addr = ln.Addr().String()
		ln.Close() // connection refused from now on
		return u
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.ln, u.Addr = ln, ln.Addr().String()
	u.wg.Add(1)
	go u.acceptLoop()
	t.Cleanup(u.close)
	return u
}

func (u *fakeUpstream) close() {
	select {
	case <-u.done:
		return
	default:
	}
	close(u.done)
	u.ln.Close()
	u.mu.Lock()
	for _, c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *fakeUpstream) acceptLoop() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		n := u.nConns.Add(1) - u.probes.Load()
		sc := u.script
		if sc.once && n > 1 {
			sc.kind = fNone
		}
		u.mu.Lock()
		u.conns = append(u.conns, c)
		u.mu.Unlock()
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer c.Close()
			u.serve(c, sc)
		}()
	}
}

// skipProbe waits (at most a second) for the connection mailgate's
// start-up check opens before it listens, and leaves it out of the count
// script.once uses: the fault is for the first connection of a session.
func (u *fakeUpstream) skipProbe() {
	if u.ln == nil {
		return
	}
	for i := 0; i < 100 && u.nConns.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	u.probes.Store(u.nConns.Load())
}

// Accepted returns the transactions the upstream accepted so far.
func (u *fakeUpstream) Accepted() []upTx {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upTx(nil), u.accepted...)
}

// Commands returns every command line the upstream received.
func (u *fakeUpstream) Commands() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.commands...)
}

// stall keeps the connection open, reading and discarding, until the test
// ends.
func (u *fakeUpstream) stall(c net.Conn) {
	go io.Copy(io.Discard, c)
	<-u.done
}

// act performs the fault at stage st if the script says so; it returns
// false when the session must end.
func (u *fakeUpstream) act(sc upstreamScript, c net.Conn, w *bufio.Writer, st stage, normal string) bool {
	if sc.at != st || sc.kind == fNone {
		fmt.Fprintf(w, "%s\r\n", normal)
		return w.Flush() == nil
	}
	switch sc.kind {
	case fStall:
		w.Flush()
		u.stall(c)
		return false
	case fDrop:
		w.Flush()
		return false
	case fReply:
		fmt.Fprintf(w, "%s\r\n", sc.reply)
		if err := w.Flush(); err != nil {
			return false
		}
		// 421 closes the session (RFC 5321 §3.8).
		return !strings.HasPrefix(sc.reply, "421")
	}
	return false
}

// failing reports whether st's command was refused by the script (a
// reply other than 2xx/3xx).
func failing(sc upstreamScript, st stage) bool {
	return sc.at == st && sc.kind == fReply && !strings.HasPrefix(sc.reply, "2") && !strings.HasPrefix(sc.reply, "3")
}

func (u *fakeUpstream) serve(c net.Conn, sc upstreamScript) {
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	br := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriter(c)
	if !u.act(sc, c, w, stConnect, "220 upstream.test ESMTP fake") {
		return
	}
	var from string
	var rcpts []string
	inMail := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		u.mu.Lock()
		u.commands = append(u.commands, cmd)
		u.mu.Unlock()
		verb := strings.ToUpper(cmd)
		if i := strings.IndexAny(verb, " :"); i >= 0 {
			verb = verb[:i]
		}
		switch verb {
		case "EHLO":
			ehlo := "250-upstream.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n"
			for _, e := range sc.ext {
				ehlo += "250-" + e + "\r\n"
			}
			if !u.act(sc, c, w, stEHLO, ehlo+"250 SIZE 104857600") {
				return
			}
		case "HELO":
			if !u.act(sc, c, w, stEHLO, "250 upstream.test") {
				return
			}
		case "MAIL":
			if !u.act(sc, c, w, stMAIL, "250 2.1.0 Ok") {
				return
			}
			if !failing(sc, stMAIL) {
				inMail, from, rcpts = true, addrOf(cmd), nil
			}
		case "RCPT":
			if !u.act(sc, c, w, stRCPT, "250 2.1.5 Ok") {
				return
			}
			if !failing(sc, stRCPT) {
				rcpts = append(rcpts, addrOf(cmd))
			}
		case "DATA":
			if !inMail || len(rcpts) == 0 {
				fmt.Fprintf(w, "503 5.5.1 Error: need RCPT command\r\n")
				w.Flush()
				continue
			}
			if !u.act(sc, c, w, stDATA, "354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			if failing(sc, stDATA) {
				continue
			}
			data, ok := u.readData(sc, br)
			if !ok {
				return
			}
			// Recorded before the 250 goes out, so that a client which has
			// its 250 finds the transaction here.
			if sc.at != stDot || sc.kind == fNone {
				u.nAccepted.Add(1)
				if !sc.noRecord {
					u.mu.Lock()
					u.accepted = append(u.accepted, upTx{From: from, Rcpts: rcpts, Data: data})
					u.mu.Unlock()
				}
			}
			if !u.act(sc, c, w, stDot, "250 2.0.0 Ok: queued") {
				return
			}
			inMail, from, rcpts = false, "", nil
		case "RSET":
			inMail, from, rcpts = false, "", nil
			fmt.Fprintf(w, "250 2.0.0 Ok\r\n")
			w.Flush()
		case "QUIT":
			fmt.Fprintf(w, "221 2.0.0 Bye\r\n")
			w.Flush()
			return
		case "NOOP", "XFORWARD", "XCLIENT":
			fmt.Fprintf(w, "250 2.0.0 Ok\r\n")
			w.Flush()
		case "AUTH":
			fmt.Fprintf(w, "235 2.7.0 Authentication successful\r\n")
			w.Flush()
		default:
			fmt.Fprintf(w, "502 5.5.2 Error: command not recognized\r\n")
			w.Flush()
		}
	}
}

// readData reads DATA up to CRLF.CRLF, dot-unstuffed (RFC 5321 §4.5.2),
// acting at stBody after bodyAfter bytes. false: the session ends.
func (u *fakeUpstream) readData(sc upstreamScript, br *bufio.Reader) ([]byte, bool) {
	var data bytes.Buffer
	read := 0
	for {
		if sc.at == stBody && read >= sc.bodyAfter {
			switch sc.kind {
			case fStall:
				<-u.done // stop reading: the sender's writes block
				return nil, false
			case fDrop:
				return nil, false
			}
		}
		line, err := br.ReadBytes('\n')
		read += len(line)
		if err != nil {
			return nil, false
		}
		if bytes.Equal(line, []byte(".\r\n")) {
			return data.Bytes(), true
		}
		if line[0] == '.' {
			line = line[1:]
		}
		if !sc.noRecord {
			data.Write(line)
		}
	}
}

// addrOf extracts the address between < and > of a MAIL or RCPT line.
func addrOf(cmd string) string {
	i := strings.IndexByte(cmd, '<')
	j := strings.IndexByte(cmd, '>')
	if i < 0 || j < i {
		return ""
	}
	return cmd[i+1 : j]
}

// TestFakeUpstreamScripts checks the test's own upstream: talking to it
// directly, each script fails the transaction where it says, and only a
// clean run is recorded, byte for byte.
func TestFakeUpstreamScripts(t *testing.T) {
	msg := bigMessage("fake", 256<<10)
	for _, cell := range upstreamCells() {
		t.Run(cell.name, func(t *testing.T) {
			up := startUpstream(t, cell.script)
			if cell.script.kind == fRefuse {
				if _, err := net.DialTimeout("tcp", up.Addr, time.Second); err == nil {
					t.Fatal("refuse: the connection was accepted")
				}
				return
			}
			c := dialClient(t, up.Addr)
			c.bound = 500 * time.Millisecond
			o := runTx(c, "alice@sender.test", "bob@example.net", msg)
			want := cell.script.at
			if want == stBody {
				want = stDot
			}
			if cell.script.kind == fNone {
				want = stNone
			}
			if o.failedAt != want {
				t.Errorf("failed at %v (%v), want %v", o.failedAt, o.reply, want)
			}
			var rec [][]byte
			if want == stNone {
				rec = [][]byte{msg}
			}
			checkDelivered(t, up, rec)
		})
	}
}
