package proxy

import (
	"crypto/tls"
	"net"
)

// maxSASLResponse bounds one SASL response line, the initial response of
// AUTH included (RFC 4954 §4: 12288 octets).
const maxSASLResponse = 12288

var (
	replyAuthBadResponse = r(501, 5, 5, 2, "Error: malformed authentication response")
	replyAuthUnsafe      = r(454, 4, 7, 0, "Error: authentication temporarily unavailable")
)

// validSASL reports whether a client's SASL response may be relayed: "*"
// (cancel, RFC 4954 §4), or base64 (RFC 4648 §4 alphabet, "=" only as
// final padding), at most maxSASLResponse bytes. Anything else, a bare CR
// or NUL above all, could end a line early at a lenient upstream and
// smuggle commands past the policies; it is never relayed. An empty line
// is an empty response. initial is the AUTH argument, where "=" is an
// empty response (RFC 4954 §4) and "*" means nothing.
func validSASL(s string, initial bool) bool {
	if len(s) > maxSASLResponse {
		return false
	}
	if s == "*" {
		return !initial
	}
	if s == "=" {
		return initial
	}
	pad := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=':
			pad++
		case pad > 0: // data after padding
			return false
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
		default:
			return false
		}
	}
	return pad <= 2
}

// credentialsSafe reports whether this upstream session may carry SASL
// credentials: the upstream is on the loopback interface (configured as a
// loopback address or "localhost", as starttls treats it), or the
// connection is TLS with a certificate verified against the upstream's
// name. Anything else is clear text a man in the middle can read (a
// STARTTLS stripped from the upstream's EHLO, or refused) or TLS to an
// unknown party.
func (c *smtpConn) credentialsSafe() bool {
	host, _, _ := splitHostPort(c.u.addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		return true
	}
	tc, ok := c.c.(*tls.Conn)
	return ok && len(tc.ConnectionState().VerifiedChains) > 0
}
