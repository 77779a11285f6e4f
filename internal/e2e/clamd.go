package e2e

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EICAR is the antivirus test string (www.eicar.org): every scanner
// reports it, and it is harmless.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// EICARSignature is the name the private clamd reports for EICAR: the
// .ndb signature below, marked UNOFFICIAL by clamd as every local one.
const EICARSignature = "Mailgate-Test-EICAR.UNOFFICIAL"

// Clamd is a private clamd (Debian clamav-daemon) started by a test, with
// its own database: there are no official signatures offline, and clamd
// refuses to start with an empty database (docs/DESIGN.md's POSTFIX notes
// on clamd), so the database is one .ndb line for the EICAR string.
type Clamd struct {
	TCP    string // "tcp://127.0.0.1:PORT"
	Socket string // "unix:/.../clamd.sock"
	Dir    string
	P      *Process
}

// ClamdOptions tune the private clamd.
type ClamdOptions struct {
	StreamMaxLength string // clamd's StreamMaxLength ("" = clamd's default, 25M)
}

// StartClamd starts clamd on a free loopback port and a unix socket in a
// temporary directory, and waits until it answers PING.
func StartClamd(t testing.TB, o ClamdOptions) *Clamd {
	t.Helper()
	bin := RequireTool(t, "clamd")
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	tmp := filepath.Join(dir, "tmp")
	must(t, os.MkdirAll(db, 0o755))
	must(t, os.MkdirAll(tmp, 0o755))
	sig := fmt.Sprintf("Mailgate-Test-EICAR:0:*:%s\n", hex.EncodeToString([]byte(EICAR)))
	must(t, os.WriteFile(filepath.Join(db, "mailgate-test.ndb"), []byte(sig), 0o644))
	port := FreePort(t)
	sock := filepath.Join(dir, "clamd.sock")
	conf := []string{
		"Foreground yes",
		"DatabaseDirectory " + db,
		"TemporaryDirectory " + tmp,
		"LogFile " + filepath.Join(dir, "clamd.log"),
		"PidFile " + filepath.Join(dir, "clamd.pid"),
		"LocalSocket " + sock,
		fmt.Sprintf("TCPSocket %d", port),
		"TCPAddr 127.0.0.1",
		"SelfCheck 0",
		"ScanMail yes",
		"ScanArchive yes",
	}
	if o.StreamMaxLength != "" {
		conf = append(conf, "StreamMaxLength "+o.StreamMaxLength)
	}
	cf := filepath.Join(dir, "clamd.conf")
	must(t, os.WriteFile(cf, []byte(strings.Join(conf, "\n")+"\n"), 0o644))
	c := &Clamd{TCP: fmt.Sprintf("tcp://127.0.0.1:%d", port), Socket: "unix:" + sock, Dir: dir}
	c.P = Start(t, dir, nil, bin, "-c", cf)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ok, err := c.P.Exited(); ok {
			log, _ := os.ReadFile(filepath.Join(dir, "clamd.log"))
			t.Fatalf("clamd exited: %v\n%s\n%s", err, c.P.Output(), tail(string(log), 2000))
		}
		if pingTCP(fmt.Sprintf("127.0.0.1:%d", port)) == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("clamd did not answer PING within 30s\n%s", c.P.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends clamd (SIGTERM) and waits for it.
func (c *Clamd) Stop() {
	c.P.Signal(syscall.SIGTERM)
	c.P.Wait(10 * time.Second)
}

// Freeze stops clamd (SIGSTOP): connections are accepted by the kernel but
// nothing answers, which is how a clamd overloaded or stuck looks.
// Thaw resumes it.
func (c *Clamd) Freeze() { c.P.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen clamd.
func (c *Clamd) Thaw() { c.P.Signal(syscall.SIGCONT) }

func pingTCP(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString(0)
	if err != nil {
		return err
	}
	if line != "PONG\x00" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// VirusMessage is a test message for the virus scanning tests.
type VirusMessage struct {
	Name  string
	Data  []byte
	Virus bool // carries EICAR
}

// VirusMessages returns EICAR as a plain (7bit) attachment, base64-encoded,
// and zipped inside a base64 attachment, and a clean message with an
// attachment: clamd must find the first three in the whole message (it
// decodes MIME, base64 and zip itself), and not the last.
func VirusMessages() []VirusMessage {
	return []VirusMessage{
		{"eicar-plain", MIMEAttachment("7bit", "eicar.com", EICAR), true},
		{"eicar-base64", MIMEAttachment("base64", "eicar.com", Base64Lines([]byte(EICAR))), true},
		{"eicar-zip", MIMEAttachment("base64", "docs.zip", Base64Lines(eicarZip())), true},
		{"clean", MIMEAttachment("base64", "notes.txt", Base64Lines([]byte("nothing to see here\r\n"))), false},
	}
}

// MIMEAttachment is a multipart/mixed message with a text part and one
// attachment whose body (already encoded as cte says) is given.
func MIMEAttachment(cte, name, body string) []byte {
	return []byte(fmt.Sprintf("From: a@example.com\r\nTo: b@example.org\r\nSubject: test %s\r\n"+
		"Message-ID: <%s@example.com>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"+
		"--b1\r\nContent-Type: application/octet-stream; name=%q\r\nContent-Disposition: attachment; filename=%q\r\n"+
		"Content-Transfer-Encoding: %s\r\n\r\n%s\r\n--b1--\r\n", name, strings.ReplaceAll(name, ".", "-"), name, name, cte, body))
}

// Base64Lines is b in base64, in lines of 76 characters.
func Base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s)
	return out.String()
}

func eicarZip() []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("docs/readme.com")
	w.Write([]byte(EICAR))
	zw.Close()
	return buf.Bytes()
}
