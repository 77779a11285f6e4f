package milter

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"mailgate"
	"mailgate/config"
	"mailgate/mimeparse"
	"mailgate/rules"
)

// repo is the repository root (the package's parent).
func repo(t testing.TB) string {
	t.Helper()
	d, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testConfig is a milter-only config with the named packs of policies/
// (in order) and policies/lists/internal_domains.txt, parsed as serve
// parses mailgate.yaml; extra is appended to the YAML.
func testConfig(t testing.TB, packs []string, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	var pols []string
	for _, p := range packs {
		if !strings.Contains(p, "/") {
			p = filepath.Join(repo(t), "policies", p)
		}
		pols = append(pols, fmt.Sprintf("%q", p))
	}
	src := fmt.Sprintf(`listen: []
milter_listen: ["127.0.0.1:0"]
policies: [%s]
lists: {internal_domains: %q}
quarantine_dir: %q
spool_dir: %q
%s`, strings.Join(pols, ", "), filepath.Join(repo(t), "policies", "lists", "internal_domains.txt"),
		filepath.Join(dir, "quarantine"), dir, extra)
	path := filepath.Join(dir, "mailgate.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, src)
	}
	return cfg
}

// loader compiles a config's policies as serve does.
func loader() func(*config.Config) (*rules.Set, error) {
	st := rules.NewState(1000, nil)
	return func(c *config.Config) (*rules.Set, error) {
		if c.RunsNoPolicy() {
			return nil, nil
		}
		return config.LoadPolicies(c, mailgate.Tree, st)
	}
}

// startMilter serves cfg's milter on a loopback port.
func startMilter(t testing.TB, cfg *config.Config) (*Server, string) {
	t.Helper()
	srv, err := NewServer(cfg, Options{LoadPolicies: loader()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeListener(l)
	t.Cleanup(func() {
		srv.Close()
		l.Close()
		if n := srv.Panics(); n != 0 {
			t.Errorf("%d panics", n)
		}
	})
	return srv, l.Addr().String()
}

// result is what the MTA got back for one message.
type result struct {
	stage string // where the milter stopped the transaction ("" : end of message)
	act   *gomilter.Action
	mods  []gomilter.ModifyAction
	lead  bool // the header values were sent with their leading space
}

// sendMsg plays an MTA: one SMTP session with one message, as Postfix
// calls a milter (macros included).
func sendMsg(t testing.TB, addr, from string, rcpts []string, raw []byte) result {
	t.Helper()
	return sendMsgFrom(t, addr, "192.0.2.7", from, rcpts, raw)
}

// sendMsgFrom is sendMsg for a client at clientIP (the {client_addr}
// macro; the connect event names 192.0.2.7, as an MTA behind a proxy
// might: the macro is what counts).
func sendMsgFrom(t testing.TB, addr, clientIP, from string, rcpts []string, raw []byte) result {
	t.Helper()
	cl := gomilter.NewClient("tcp", addr, gomilter.WithReadTimeout(30*time.Second))
	mb := gomilter.NewMacroBag()
	mb.Set(gomilter.MacroClientAddr, clientIP)
	mb.Set(gomilter.MacroClientName, "client.example.com")
	mb.Set(gomilter.MacroDaemonAddr, "127.0.0.1")
	mb.Set(gomilter.MacroDaemonPort, "25")
	mb.Set(gomilter.MacroQueueId, "4ABCDEF")
	s, err := cl.Session(mb)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stop := func(stage string, act *gomilter.Action, err error) (result, bool) {
		if err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		if act.Type != gomilter.ActionContinue && act.Type != gomilter.ActionAccept {
			return result{stage: stage, act: act}, true
		}
		return result{}, false
	}
	act, err := s.Conn("client.example.com", gomilter.FamilyInet, 40000, "192.0.2.7")
	if r, ok := stop("connect", act, err); ok {
		return r
	}
	act, err = s.Helo("client.example.com")
	if r, ok := stop("helo", act, err); ok {
		return r
	}
	act, err = s.Mail(from, "")
	if r, ok := stop("mail", act, err); ok {
		return r
	}
	n := 0
	for _, rc := range rcpts {
		act, err = s.Rcpt(rc, "")
		if err != nil {
			t.Fatal(err)
		}
		if act.Type == gomilter.ActionContinue || act.Type == gomilter.ActionAccept {
			n++
		}
	}
	if n == 0 {
		return result{stage: "rcpt", act: act}
	}
	if act, err = s.DataStart(); err != nil {
		t.Fatal(err)
	}
	lead := s.ProtocolOption(gomilter.OptHeaderLeadingSpace)
	fs, body := mtaView(raw)
	for _, f := range fs {
		v := f.value
		if !lead {
			v = strings.TrimPrefix(v, " ")
		}
		if _, err := s.HeaderField(f.name, strings.ReplaceAll(v, "\r\n", "\n"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.HeaderEnd(); err != nil {
		t.Fatal(err)
	}
	mods, act, err := s.BodyReadFrom(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return result{act: act, mods: mods, lead: lead}
}

// mtaView is the message as an MTA passes it to a milter: the header
// fields as mimeparse reads them, and the body after the empty line (an
// MTA that finds no empty line starts the body where the fields end).
func mtaView(raw []byte) ([]hf, []byte) {
	var fs []hf
	var end int64
	mimeparse.ScanHeader(bytes.NewReader(raw), func(f mimeparse.Field) {
		fs = append(fs, hf{f.Name, f.Raw})
		end = f.End
	})
	body := raw[end:]
	if bytes.HasPrefix(body, []byte("\r\n")) {
		body = body[2:]
	}
	return fs, body
}

// canonical is the message as the milter rebuilds it from the MTA's
// events: each field, CRLF, the empty line, the body.
func canonical(fs []hf, body []byte) []byte {
	var b bytes.Buffer
	for _, f := range fs {
		b.WriteString(f.name + ":" + f.value + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// splitMsg splits a message as mtaView does.
func splitMsg(raw []byte) ([]byte, []byte) {
	fs, body := mtaView(raw)
	c := canonical(fs, nil)
	return c[:len(c)-2], body
}

// hf is a header field as an MTA holds it: name and the value after the
// colon, its leading space kept.
type hf struct{ name, value string }

// deliver applies the modification actions to the message as Postfix
// does (a deleted field is unlinked, so later indexes count without it;
// the MTA puts a space after the colon of a field it is given without
// one) and returns the fields and the body delivered.
func deliver(t testing.TB, raw []byte, r result) ([]hf, []byte) {
	t.Helper()
	hdr, body := splitMsg(raw)
	var fs []hf
	mimeparse.ScanHeader(bytes.NewReader(hdr), func(f mimeparse.Field) { fs = append(fs, hf{f.Name, f.Raw}) })
	val := func(v string) string {
		v = strings.ReplaceAll(v, "\n", "\r\n")
		if !r.lead {
			v = " " + v
		}
		return v
	}
	var newBody []byte
	replaced := false
	for _, m := range r.mods {
		switch m.Type {
		case gomilter.ActionChangeHeader:
			n := 0
			for i := range fs {
				if strings.EqualFold(fs[i].name, m.HeaderName) {
					n++
					if n == int(m.HeaderIndex) {
						if m.HeaderValue == "" {
							fs = append(fs[:i:i], fs[i+1:]...)
						} else {
							fs[i].value = val(m.HeaderValue)
						}
						break
					}
				}
			}
			if n < int(m.HeaderIndex) && m.HeaderValue != "" {
				fs = append(fs, hf{m.HeaderName, val(m.HeaderValue)})
			}
		case gomilter.ActionInsertHeader:
			i := min(int(m.HeaderIndex), len(fs))
			fs = append(fs[:i:i], append([]hf{{m.HeaderName, val(m.HeaderValue)}}, fs[i:]...)...)
		case gomilter.ActionAddHeader:
			fs = append(fs, hf{m.HeaderName, val(m.HeaderValue)})
		case gomilter.ActionReplaceBody:
			replaced = true
			newBody = append(newBody, m.Body...)
		}
	}
	if replaced {
		body = newBody
	}
	return fs, body
}

// fieldsOf reads a whole message's top-level fields and its body.
func fieldsOf(raw []byte) ([]hf, []byte) {
	hdr, body := splitMsg(raw)
	var fs []hf
	mimeparse.ScanHeader(bytes.NewReader(hdr), func(f mimeparse.Field) { fs = append(fs, hf{f.Name, f.Raw}) })
	return fs, body
}

func modsString(mods []gomilter.ModifyAction) string {
	var b strings.Builder
	for _, m := range mods {
		b.WriteString(m.String() + "\n")
	}
	return b.String()
}

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readAll(p string) ([]byte, error) { return os.ReadFile(p) }
