package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Postfix is a private Postfix instance on a loopback port, built under a
// temporary directory (docs/DEVELOPING.md, "Real Postfix"). It accepts mail for
// bob@example.net (delivered into the Maildir Inbox) and refuses other
// recipients with its own replies; Postfix's default smtpd_relay_restrictions
// apply to clients outside its mynetworks (127.0.0.1/32), as on a stock
// Postfix: no smtpd_recipient_restrictions, so whoever Postfix takes for
// the client decides whether it relays.
type Postfix struct {
	Addr  string // 127.0.0.1:PORT
	Base  string // everything lives under here
	Inbox string // the Maildir bob@example.net delivers into
	t     testing.TB
}

// Client addresses the private Postfix treats differently. Only 127.0.0.1
// (mailgate) is in its mynetworks and may send XCLIENT and XFORWARD, as in
// README "Set-up 1"; a test client binding OutsideClient or BlockedClient
// plays a remote client. Postfix refuses to relay for OutsideClient, and
// refuses BlockedClient by check_client_access.
const (
	OutsideClient = "127.0.0.9"
	BlockedClient = "127.0.0.10"
)

// StartPostfix builds and starts a private Postfix, waits for its banner and
// registers its stop. It needs root (Postfix's master runs as root and
// drops to the postfix user), as in CI.
func StartPostfix(t testing.TB) *Postfix {
	t.Helper()
	postfix := RequireTool(t, "postfix")
	if os.Geteuid() != 0 {
		Missing(t, "a private Postfix needs root")
	}
	if _, err := user.Lookup("postfix"); err != nil {
		Missing(t, "the postfix user does not exist (is Postfix installed?)")
	}
	base, err := os.MkdirTemp("", "mailgate-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	// The postfix user must traverse base to reach data/ and the queue.
	must(t, os.Chmod(base, 0o755))
	for _, d := range []string{"etc", "queue", "data", "mail"} {
		must(t, os.MkdirAll(filepath.Join(base, d), 0o755))
	}
	pu, _ := user.Lookup("postfix")
	uid, _ := strconv.Atoi(pu.Uid)
	must(t, os.Chown(filepath.Join(base, "data"), uid, -1))
	must(t, os.Chown(filepath.Join(base, "mail"), 65534, 65534))

	port := FreePort(t)
	pf := &Postfix{
		Addr:  fmt.Sprintf("127.0.0.1:%d", port),
		Base:  base,
		Inbox: filepath.Join(base, "mail", "inbox"),
		t:     t,
	}
	mainCf := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = upstream.test
mydestination =
mynetworks = 127.0.0.1/32
smtpd_authorized_xforward_hosts = 127.0.0.1/32
smtpd_authorized_xclient_hosts = 127.0.0.1/32
smtpd_client_restrictions = check_client_access cidr:%[1]s/etc/clients
virtual_mailbox_domains = example.net
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = texthash:%[1]s/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
smtpd_forbid_bare_newline = normalize
smtpd_forbid_bare_newline_exclusions =
message_size_limit = 104857600
virtual_mailbox_limit = 209715200
alias_maps =
alias_database =
smtputf8_enable = yes
`, base)
	must(t, os.WriteFile(filepath.Join(base, "etc", "main.cf"), []byte(mainCf), 0o644))
	// BlockedClient is refused by Postfix's own check_client_access, which
	// it only sees through mailgate's XCLIENT.
	must(t, os.WriteFile(filepath.Join(base, "etc", "clients"), []byte(BlockedClient+" REJECT\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(base, "etc", "vmailbox"), []byte("bob@example.net inbox/\nalice@example.net alice/\n"), 0o644))
	master, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		Missing(t, "/etc/postfix/master.cf: %v", err)
	}
	var out []string
	for _, line := range strings.Split(string(master), "\n") {
		if strings.HasPrefix(line, "smtp ") && strings.Contains(line, " inet ") {
			line = fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd", port)
		}
		out = append(out, line)
	}
	must(t, os.WriteFile(filepath.Join(base, "etc", "master.cf"), []byte(strings.Join(out, "\n")), 0o644))

	t.Cleanup(pf.stop)
	cmd := exec.Command(postfix, "-c", filepath.Join(base, "etc"), "start")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s\nmaillog:\n%s", err, b, pf.Maillog())
	}
	WaitBanner(t, nil, pf.Addr, 20*time.Second)
	return pf
}

func (pf *Postfix) stop() {
	etc := filepath.Join(pf.Base, "etc")
	exec.Command("postfix", "-c", etc, "stop").Run()
	pidFile := filepath.Join(pf.Base, "queue", "pid", "master.pid")
	if b, err := os.ReadFile(pidFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if pf.t.Failed() {
		pf.t.Logf("postfix maillog:\n%s", tail(pf.Maillog(), 4000))
	}
	os.RemoveAll(pf.Base)
}

// Maillog returns Postfix's own log.
func (pf *Postfix) Maillog() string {
	b, _ := os.ReadFile(filepath.Join(pf.Base, "maillog"))
	return string(b)
}

// Delivered returns the messages delivered into a mailbox ("inbox" for
// bob@example.net, "alice" for alice@example.net), oldest first.
func (pf *Postfix) Delivered(mailbox string) []Delivery {
	return ReadMaildir(filepath.Join(pf.Base, "mail", mailbox))
}

// WaitDelivered waits until mailbox holds at least n messages or timeout
// passes, and returns what it holds.
func (pf *Postfix) WaitDelivered(mailbox string, n int, timeout time.Duration) []Delivery {
	deadline := time.Now().Add(timeout)
	for {
		d := pf.Delivered(mailbox)
		if len(d) >= n || time.Now().After(deadline) {
			return d
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Delivery is one message found in a Maildir.
type Delivery struct {
	Path string
	Data []byte
}

// ReadMaildir returns the messages in dir/new and dir/cur, by modification
// time.
func ReadMaildir(dir string) []Delivery {
	type f struct {
		path string
		mod  time.Time
	}
	var files []f
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
				files = append(files, f{filepath.Join(dir, sub, e.Name()), info.ModTime()})
			}
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	var out []Delivery
	for _, x := range files {
		if b, err := os.ReadFile(x.path); err == nil {
			out = append(out, Delivery{x.path, b})
		}
	}
	return out
}

// Sink is Postfix's smtp-sink on a loopback port, dumping every message
// it accepts into Dir (one file per transaction).
type Sink struct {
	Addr string
	Dir  string
	Proc *Process
}

// StartSink starts smtp-sink. With dump, each accepted transaction is
// written to a file under Dir.
func StartSink(t testing.TB, dump bool) *Sink {
	t.Helper()
	bin := RequireTool(t, "smtp-sink")
	dir, err := os.MkdirTemp("", "mailgate-sink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o777))
	s := &Sink{Addr: FreeAddr(t), Dir: dir}
	args := []string{"-c", "-u", "nobody"}
	if dump {
		args = append(args, "-d", filepath.Join(dir, "%Y%m%d%H%M%S."))
	}
	args = append(args, s.Addr, "256")
	s.Proc = Start(t, dir, nil, bin, args...)
	WaitBanner(t, s.Proc, s.Addr, 10*time.Second)
	return s
}

// Messages returns the dumped transactions.
func (s *Sink) Messages() []Delivery {
	ents, _ := os.ReadDir(s.Dir)
	var out []Delivery
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(s.Dir, e.Name())); err == nil {
			out = append(out, Delivery{filepath.Join(s.Dir, e.Name()), b})
		}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
