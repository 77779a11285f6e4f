package facts

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"mailgate/mimeparse"
	"mailgate/rules"
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

// TestSignDeliveredRewritten: a message that the rules rewrote (subject
// prefix, added field, through the real splicer) and whose From is ours
// is re-signed, and python3-dkim verifies the result; an unmodified
// message and third-party mail are not signed.
func TestSignDeliveredRewritten(t *testing.T) {
	k := newTestKey(t, false)
	s, err := LoadSigner("example.org", "mg1", k.pem)
	if err != nil {
		t.Fatal(err)
	}
	raw := crlf(testMsg)
	msg, err := mimeparse.Parse(bytes.NewReader(raw), mimeparse.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	edits := &rules.Edits{SubjectPrefix: "[EXT] ", Headers: []rules.HeaderEdit{{Op: "add", Name: "X-Mailgate", Value: "checked"}}}
	var out bytes.Buffer
	if _, err := rules.Rewrite(&out, bytes.NewReader(raw), msg, edits); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte("Subject: [EXT] hello")) {
		t.Fatalf("not rewritten:\n%s", out.Bytes())
	}
	sig, err := s.SignDelivered(bytes.NewReader(out.Bytes()), "example.org", edits)
	if err != nil || sig == "" {
		t.Fatalf("not signed: %q %v", sig, err)
	}
	delivered := append([]byte(sig), out.Bytes()...)
	if _, err := pydkim(t, delivered, "verify", dnsJSON(t, map[string]string{"mg1._domainkey.example.org": k.record})); err != nil {
		t.Errorf("python3-dkim does not verify the re-signed rewritten message: %v", err)
	}
	if sig, _ := s.SignDelivered(bytes.NewReader(raw), "example.org", &rules.Edits{}); sig != "" {
		t.Error("an unmodified message was re-signed")
	}
	if sig, _ := s.SignDelivered(bytes.NewReader(out.Bytes()), "example.com", edits); sig != "" {
		t.Error("third-party mail was signed")
	}
}
