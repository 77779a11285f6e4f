package facts

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestSignVerifiedByPythonDKIM: mailgate's re-signature (RSA and
// Ed25519) verifies with python3-dkim and with our own verifier; mail of
// another domain is never signed.
func TestSignVerifiedByPythonDKIM(t *testing.T) {
	for _, ed := range []bool{false, true} {
		k := newTestKey(t, ed)
		s, err := LoadSigner("example.org", "mg1", k.pem)
		if err != nil {
			t.Fatal(err)
		}
		if s.PublicRecord() != k.record {
			t.Errorf("record %q, want %q", s.PublicRecord(), k.record)
		}
		// A rewritten message: a subject prefix and an added field.
		msg := crlf(strings.Replace(testMsg, "Subject: hello", "X-Mailgate: tagged\nSubject: [SPAM] hello", 1))
		signed, err := s.SignBytes(msg, "Example.ORG")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pydkim(t, signed, "verify", dnsJSON(t, map[string]string{"mg1._domainkey.example.org": k.record})); err != nil {
			t.Errorf("ed25519=%v: python3-dkim does not verify mailgate's signature: %v\n%s", ed, err, signed)
		}
		bad := []byte(strings.Replace(string(signed), "this is the body", "this is the b0dy", 1))
		if _, err := pydkim(t, bad, "verify", dnsJSON(t, map[string]string{"mg1._domainkey.example.org": k.record})); err == nil {
			t.Errorf("python3-dkim verifies an altered message: the check cannot fail")
		}
		d := newTestDNS(t, txtRR("mg1._domainkey.example.org", k.record))
		res := feed(NewMessageChecker(context.Background(), d.resolver(t), true, false), signed)
		if len(res.DKIM) != 1 || res.DKIM[0].Result != "pass" || res.DKIM[0].Selector != "mg1" {
			t.Errorf("ed25519=%v: own verifier: %+v", ed, res)
		}
		if _, err := s.SignBytes(msg, "example.com"); !errors.Is(err, ErrNotOurs) {
			t.Errorf("third-party mail signed: %v", err)
		}
	}
}
