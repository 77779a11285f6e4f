package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"mailgate"
	"mailgate/config"
	mgmilter "mailgate/milter"
	"mailgate/rules"
)

// serve runs srv on a fresh loopback port for the test's life.
func serve(t *testing.T, srv *gomilter.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(mgmilter.Listener(l))
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// TestNullNegotiatesAsMailgate: with the bench's packs, the null milter's
// option negotiation reply is mailgate's milter's, byte for byte, given
// the no-reply stages mailgate chose (what startNull does at run time).
func TestNullNegotiatesAsMailgate(t *testing.T) {
	dir := t.TempDir()
	root, _ := filepath.Abs("../..") // the root module, from bench/milter
	path := filepath.Join(dir, "mailgate.yaml")
	cfgText := "listen: [\"127.0.0.1:0\"]\nmilter_listen: [\"127.0.0.1:0\"]\nhostname: t.test\nupstream: smtp://127.0.0.1:1\n" +
		"policies: [\"" + filepath.Join(root, "policies", "default.yaml") + "\", \"" + filepath.Join(root, "policies", "dangerous-attachments.yaml") +
		"\", \"" + filepath.Join(root, "policies", "office-macros.yaml") + "\", \"" + filepath.Join(root, "policies", "compliance-headers.yaml") + "\"]\n" +
		"lists: {internal_domains: \"" + filepath.Join(root, "policies", "lists", "internal_domains.txt") + "\"}\n" +
		"spool_dir: \"" + dir + "\"\nquarantine_dir: \"" + filepath.Join(dir, "q") + "\"\n"
	if err := os.WriteFile(path, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	mg, err := mgmilter.NewServer(cfg, mgmilter.Options{LoadPolicies: func(c *config.Config) (*rules.Set, error) {
		return config.LoadPolicies(c, mailgate.Tree, nil)
	}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go mg.ServeListener(l)
	t.Cleanup(func() { mg.Close() })
	mgReply, err := probeNegotiation(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := decodeNegotiation(mgReply)
	if err != nil {
		t.Fatal(err)
	}
	nlReply, err := probeNegotiation(serve(t, nullServer(false, n.protocol&noReplyStages)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mgReply, nlReply) {
		nl, _ := decodeNegotiation(nlReply)
		t.Fatalf("null milter negotiates\n%s\nmailgate\n%s", nl, n)
	}
	t.Logf("both: %s", n)
}

// TestNullMin: the minimal null milter asks for the end of the message
// only, no actions and no macros.
func TestNullMin(t *testing.T) {
	b, err := probeNegotiation(serve(t, nullServer(true, 0)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := decodeNegotiation(b)
	if err != nil {
		t.Fatal(err)
	}
	if n.version != 6 || n.actions != 0 || n.protocol != minProtocol || len(n.macros) != 0 {
		t.Fatalf("got %s", n)
	}
}

// TestNullAccepts: a whole message through the null milter: continue at
// every event, accept at the end, no modifications.
func TestNullAccepts(t *testing.T) {
	addr := serve(t, nullServer(false, noReplyStages))
	cl := gomilter.NewClient("tcp", addr, gomilter.WithActions(nullActions))
	s, err := cl.Session(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return s.Conn("c.test", gomilter.FamilyInet, 25, "127.0.0.1") },
		func() (*gomilter.Action, error) { return s.Helo("c.test") },
		func() (*gomilter.Action, error) { return s.Mail("<a@example.org>", "") },
		func() (*gomilter.Action, error) { return s.Rcpt("<b@example.net>", "") },
		func() (*gomilter.Action, error) { return s.DataStart() },
		func() (*gomilter.Action, error) { return s.HeaderField("Subject", " hi", nil) },
		func() (*gomilter.Action, error) { return s.HeaderEnd() },
		func() (*gomilter.Action, error) { return s.BodyChunk([]byte("body\r\n")) },
	}
	for i, f := range steps {
		act, err := f()
		if err != nil || act.Type != gomilter.ActionContinue {
			t.Fatalf("step %d: %v %v", i, act, err)
		}
	}
	mods, act, err := s.End()
	if err != nil || act.Type != gomilter.ActionAccept || len(mods) != 0 {
		t.Fatalf("end: %v %v %v", mods, act, err)
	}
}
