package proxy

import (
	"mailgate/internal/smtpline"
	"mailgate/upstream"
	"reflect"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		arg, prefix string
		addr        string
		params      []param
		bad         bool
	}{
		{arg: "FROM:<a@example.org>", prefix: "FROM:", addr: "a@example.org"},
		{arg: "from: <a@example.org> SIZE=10 body=8bitmime", prefix: "FROM:", addr: "a@example.org",
			params: []param{{Key: "SIZE", Value: "10"}, {Key: "BODY", Value: "8bitmime"}}},
		{arg: "FROM:<>", prefix: "FROM:", addr: ""},
		{arg: "TO:<@relay.example:b@example.net>", prefix: "TO:", addr: "b@example.net"},
		{arg: `TO:<"x y>z"@example.net>`, prefix: "TO:", addr: `"x y>z"@example.net`},
		{arg: "TO:<postmaster>", prefix: "TO:", addr: "postmaster"},
		{arg: "FROM:a@example.org", prefix: "FROM:", bad: true},
		{arg: "FROM:<a@example.org", prefix: "FROM:", bad: true},
		{arg: "FROM:<a b@example.org>", prefix: "FROM:", bad: true},
		{arg: "FROM:<a@example.org>SIZE=1", prefix: "FROM:", bad: true},
		{arg: "FROM:<a@example.org> SIZE=", prefix: "FROM:", bad: true},
		{arg: "TO:<b@example.net>", prefix: "FROM:", bad: true},
		{arg: "FROM:<@example.org>", prefix: "FROM:", bad: true},
	}
	for _, tc := range tests {
		pa, bad := parsePath(tc.arg, tc.prefix)
		if (bad != nil) != tc.bad {
			t.Errorf("parsePath(%q): bad=%v, want %v", tc.arg, bad, tc.bad)
			continue
		}
		if tc.bad {
			continue
		}
		if pa.Addr != tc.addr || !reflect.DeepEqual(pa.Params, tc.params) {
			t.Errorf("parsePath(%q) = %q %v, want %q %v", tc.arg, pa.Addr, pa.Params, tc.addr, tc.params)
		}
	}
}

func TestParseReplyLines(t *testing.T) {
	rp, err := upstream.ParseReply([]string{"550-5.1.1 first", "550 5.1.1 second"})
	if err != nil || rp.Code != 550 || rp.Enhanced != [3]int{5, 1, 1} || rp.Text != "first\nsecond" {
		t.Fatalf("got %+v %v", rp, err)
	}
	got := string(formatReply(nil, rp))
	if got != "550-5.1.1 first\r\n550 5.1.1 second\r\n" {
		t.Errorf("formatReply = %q", got)
	}
	rp, _ = upstream.ParseReply([]string{"250 Ok"})
	if rp.Enhanced != [3]int{} || rp.Text != "Ok" {
		t.Errorf("no enhanced code: %+v", rp)
	}
	if _, err := upstream.ParseReply([]string{"25"}); err == nil {
		t.Error("short line accepted")
	}
	if got := string(formatReply(nil, Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "a\rb\x00c"})); got != "550 5.7.1 a b c\r\n" {
		t.Errorf("control characters in reply text: %q", got)
	}
}

func TestXtext(t *testing.T) {
	for _, s := range []string{"plain", "a+b=c", "sp ace", "ünï"} {
		d, ok := smtpline.XtextDecode(smtpline.XtextEncode(s))
		if !ok || d != s {
			t.Errorf("xtext round trip %q → %q → %q", s, smtpline.XtextEncode(s), d)
		}
	}
}

// FuzzCommand checks the command-line parser: never a panic; a parsed verb
// is 4–10 ASCII letters in upper case; a parsed path holds no line break, NUL
// or unquoted space, and formatting it back parses to the same result.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{"MAIL FROM:<a@example.org> SIZE=10", "RCPT TO:<b@example.net> NOTIFY=NEVER",
		"EHLO x", "mail from: <>", `RCPT TO:<"a b"@x>`, "XFORWARD ADDR=1.2.3.4 NAME=x+20y", "DATA", "QUIT \t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, ok := parseCommand(line)
		if !ok {
			return
		}
		if len(cmd.verb) < 4 || len(cmd.verb) > 10 || strings.ToUpper(cmd.verb) != cmd.verb {
			t.Fatalf("verb %q", cmd.verb)
		}
		for _, prefix := range []string{"FROM:", "TO:"} {
			pa, bad := parsePath(cmd.arg, prefix)
			if bad != nil {
				continue
			}
			if strings.ContainsAny(pa.Addr, "\r\n\x00") {
				t.Fatalf("address %q", pa.Addr)
			}
			again, bad := parsePath(prefix+"<"+pa.Addr+">"+upstream.JoinParams(pa.Params), prefix)
			if bad != nil || again.Addr != pa.Addr || !reflect.DeepEqual(again.Params, pa.Params) {
				t.Fatalf("round trip of %q: %+v vs %+v (%v)", cmd.arg, pa, again, bad)
			}
			checkMailParams(pa.Params)
			checkRcptParams(pa.Params)
		}
		xforwardAttrs(cmd.arg)
	})
}
