package proxy

import (
	"strings"
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

// knownVerbs are the command verbs a refused line may be logged by: SMTP's
// and its extensions', and what other protocols send to port 25. Nothing
// else of a refused line is ever logged.
var knownVerbs = map[string]bool{
	"EHLO": true, "HELO": true, "MAIL": true, "RCPT": true, "DATA": true, "RSET": true, "NOOP": true,
	"QUIT": true, "HELP": true, "VRFY": true, "EXPN": true, "STARTTLS": true, "AUTH": true, "BDAT": true,
	"XFORWARD": true, "XCLIENT": true, "TURN": true, "ETRN": true, "ATRN": true, "BURL": true,
	"SEND": true, "SOML": true, "SAML": true, "VERB": true, "LHLO": true, "GET": true, "POST": true,
	"HEAD": true, "PUT": true, "CONNECT": true, "USER": true, "PASS": true,
}

// logVerb names a refused command line for the log: its verb when it is a
// known one, else "<redacted>". The text after a refused AUTH is the
// client's credentials in base64, and a verb-shaped word ("Ym9i" is "bob")
// can be one too; only a closed list is safe to log.
func logVerb(line string) string {
	verb, _, _ := strings.Cut(line, " ")
	if v := strings.ToUpper(verb); knownVerbs[v] {
		return v
	}
	return "<redacted>"
}
