package facts

import (
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"

	"mailgate/rules"
)

// TestAuthenticationResults: the field carries every check that is on,
// parses back, and a field claiming our authserv-id is recognised.
func TestAuthenticationResults(t *testing.T) {
	a := rules.Auth{SPF: "pass", DKIM: []rules.DKIMResult{{Domain: "example.org", Selector: "s1", Result: "pass"}, {Domain: "x.example", Selector: "k", Result: "fail"}},
		DMARC: "pass", DMARCPolicy: "reject", ARC: "none"}
	v := AuthenticationResults("mx.example.net", a, AuthInputs{MailFrom: "alice@example.org", FromDomain: "example.org", SPF: true, DKIM: true, DMARC: true, ARC: true})
	for _, want := range []string{"mx.example.net; spf=pass smtp.mailfrom=alice@example.org", "dkim=pass header.d=example.org header.s=s1",
		"dkim=fail header.d=x.example header.s=k", "dmarc=pass header.from=example.org", "arc=none"} {
		if !strings.Contains(v, want) {
			t.Errorf("%q lacks %q", v, want)
		}
	}
	id, res, err := authres.Parse(v)
	if err != nil || id != "mx.example.net" || len(res) != 5 {
		t.Errorf("does not parse back: %q %d %v", id, len(res), err)
	}
	if v := AuthenticationResults("mx.example.net", rules.Auth{SPF: "none"}, AuthInputs{HELO: "h.example", SPF: true}); v != "mx.example.net; spf=none smtp.helo=h.example" {
		t.Errorf("null sender: %q", v)
	}
	for in, want := range map[string]bool{
		" MX.example.net; spf=pass smtp.mailfrom=a@b":      true,
		"mx.example.net 1; dkim=pass header.d=example.org": true,
		"mx.example.net.; none":                            true,
		"relay.example; spf=pass":                          false,
		"mx.example.net.evil; spf=pass":                    false,
		"mx.example.net;;; garbage ((":                     true,
	} {
		if got := ClaimsAuthservID(in, "mx.example.net"); got != want {
			t.Errorf("%q: %v", in, got)
		}
	}
}
