package rules

import (
	"strings"

	"mailgate/mimeparse"
)

// The default envelope of `mailgate check` and of policy tests, for what
// neither the command line nor the test gives (docs/policy.md, "The
// default envelope"). One set, so that a message judged by check and by a
// test meets the same facts.
const (
	DefaultFrom     = "sender@example.com" // no Return-Path, no From address
	DefaultRcpt     = "rcpt@example.net"   // no Delivered-To, X-Original-To, To or Cc address
	DefaultClientIP = "192.0.2.1"          // TEST-NET-1, documentation addresses
	DefaultHelo     = "client.example"
)

// DefaultEnvelope derives a stored message's envelope from its header:
// the sender from Return-Path ("<>" is the null sender, ""), else the From
// address, else DefaultFrom; the recipients from the topmost Delivered-To,
// else X-Original-To (what the last delivery recorded), else the To and Cc
// addresses, else DefaultRcpt.
func DefaultEnvelope(m *mimeparse.Message) (from string, rcpts []string) {
	from = DefaultFrom
	if m != nil {
		if rp := m.HeaderAll("Return-Path"); len(rp) > 0 {
			if strings.TrimSpace(rp[0]) == "<>" {
				from = ""
			} else if a := firstAddr(rp[0]); a != "" {
				from = a
			}
		} else if a := firstAddr(m.Header("From")); a != "" {
			from = a
		}
		for _, name := range []string{"Delivered-To", "X-Original-To"} {
			if a := firstAddr(m.Header(name)); a != "" {
				return from, []string{a}
			}
		}
		seen := map[string]bool{}
		for _, a := range addrList(append(m.HeaderAll("To"), m.HeaderAll("Cc")...)) {
			if k := strings.ToLower(a); !seen[k] {
				seen[k] = true
				rcpts = append(rcpts, a)
			}
		}
	}
	if len(rcpts) == 0 {
		rcpts = []string{DefaultRcpt}
	}
	return from, rcpts
}
