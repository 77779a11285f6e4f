package rules

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"mailgate/mimeparse"
)

func tcheck(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func tcompare(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %#v, want %#v", what, got, want)
	}
}

// loadSrc loads one policy given as YAML text, named p.yaml, with lists
// written to a temporary directory.
func loadSrc(t testing.TB, src string, lists map[string]string, st Store) (*Set, error) {
	t.Helper()
	cfg := Config{Policies: []string{"p.yaml"}}
	if len(lists) > 0 {
		dir := t.TempDir()
		cfg.Lists = map[string]string{}
		for name, body := range lists {
			tcheck(t, os.WriteFile(filepath.Join(dir, name+".txt"), []byte(body), 0o644), "writing list")
			cfg.Lists[name] = name + ".txt"
		}
		cfg.BaseDir = dir
	}
	return LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(src)}}, cfg, st)
}

func mustLoad(t *testing.T, src string, lists map[string]string, st Store) *Set {
	t.Helper()
	s, err := loadSrc(t, src, lists, st)
	tcheck(t, err, "loading policy")
	return s
}

// problems returns the problem lines (without snippets) of a load error.
func problems(err error) []string {
	var le *LoadError
	if !errors.As(err, &le) {
		if err == nil {
			return nil
		}
		return []string{"not a LoadError: " + err.Error()}
	}
	var out []string
	for _, p := range le.Problems {
		out = append(out, p.String())
	}
	return out
}

// clock is an injectable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// testMessage is a typical parsed message, built by hand so the tests do
// not depend on the parser: a text body, an executable, a macro document,
// a zip holding a script, and a few defects.
func testMessage() *mimeparse.Message {
	f := func(name, value string) mimeparse.Field { return mimeparse.Field{Name: name, Value: value} }
	parts := []*mimeparse.Part{
		{Path: "0", ContentType: "multipart/mixed", IsMultipart: true},
		{Path: "1", Depth: 1, ContentType: "multipart/alternative", IsMultipart: true},
		{Path: "1.1", Depth: 2, ContentType: "text/plain", Charset: "utf-8", Size: 120, SHA256: strings.Repeat("1", 64)},
		{Path: "1.2", Depth: 2, ContentType: "text/html", Charset: "utf-8", Size: 300, SHA256: strings.Repeat("2", 64)},
		{Path: "2", Depth: 1, ContentType: "application/octet-stream", Disposition: "attachment",
			Filename: "invoice.pdf.exe", Ext: "exe", IsAttachment: true, Size: 1024, SHA256: strings.Repeat("a", 64),
			DetectedType: "application/vnd.microsoft.portable-executable", Executable: true,
			Fields: []mimeparse.Field{f("Content-Type", "application/octet-stream; name=invoice.pdf.exe"), f("X-Part-Note", "exe")}},
		{Path: "3", Depth: 1, ContentType: "application/vnd.ms-word.document.macroenabled.12", Disposition: "attachment",
			Filename: "report.docm", Ext: "docm", IsAttachment: true, Size: 2048, SHA256: strings.Repeat("b", 64),
			DetectedType: "application/vnd.openxmlformats-officedocument.wordprocessingml.document", Macros: true},
		{Path: "4", Depth: 1, ContentType: "application/zip", Disposition: "attachment",
			Filename: "photos.zip", Names: []string{"photos.zip", "photos.js.zip"}, Ext: "zip", IsAttachment: true, Size: 4096,
			SHA256: strings.Repeat("c", 64), DetectedType: "application/zip",
			Archive: []mimeparse.ArchiveEntry{
				{Name: "a.jpg", Ext: "jpg", Size: 100, DetectedType: "image/jpeg", Depth: 1},
				{Name: "run.js", Ext: "js", Size: 50, DetectedType: "text/plain", Depth: 1},
			}, Defects: []string{"zip-name-mismatch"}},
	}
	return &mimeparse.Message{
		Fields: []mimeparse.Field{
			f("Received", "from a by b"),
			f("Received", "from c by d"),
			f("From", `"Alice Example" <Alice@Example.COM>`),
			f("To", "bob@example.org, \"Carol, C.\" <carol@example.net>"),
			f("Cc", "dave@example.org"),
			f("Subject", "Invoice 42"),
			f("Message-ID", " <42@example.com> "),
			f("X-Mailer", "Outlook 16"),
		},
		Parts:   parts,
		Defects: []string{"missing-final-boundary", "zip-name-mismatch"},
		Size:    9000,
		Text:    "Please find the invoice attached.",
	}
}

func testFacts() *Facts {
	return &Facts{
		Client:   Client{IP: "192.0.2.7", Port: 40000, HELO: "mx.example.com", TLS: true, AuthUser: "", Listener: "127.0.0.1:2525"},
		Envelope: Envelope{From: "alice@Example.com", Rcpts: []string{"bob@example.org", "carol@example.net"}, Size: 9000, SMTPUTF8: true},
		Msg:      testMessage(),
	}
}
