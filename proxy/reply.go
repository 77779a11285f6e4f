package proxy

import (
	"strconv"
	"strings"

	"mailgate/rules"
)

// Reply is an SMTP reply with its enhanced status code; it is rules.Reply,
// so policy replies and the proxy's own are one type. A Text with "\n"
// is sent as a multi-line reply.
type Reply = rules.Reply

func r(code, a, b, c int, text string) Reply {
	return Reply{Code: code, Enhanced: [3]int{a, b, c}, Text: text}
}

// The proxy's own replies (RFC 5321 §4.2, RFC 3463 enhanced codes).
var (
	replyOK             = r(250, 2, 0, 0, "Ok")
	replyMailOK         = r(250, 2, 1, 0, "Ok")
	replyRcptOK         = r(250, 2, 1, 5, "Ok")
	replyDataStart      = Reply{Code: 354, Text: "End data with <CR><LF>.<CR><LF>"}
	replyBye            = r(221, 2, 0, 0, "Bye")
	replyReset          = r(250, 2, 0, 0, "Ok")
	replyVRFY           = r(252, 2, 5, 0, "Cannot VRFY user, but will accept message and attempt delivery")
	replyEXPN           = r(502, 5, 5, 1, "EXPN not supported")
	replyHelp           = r(214, 2, 0, 0, "See RFC 5321")
	replyReadyTLS       = r(220, 2, 0, 0, "Ready to start TLS")
	replyBadCommand     = r(500, 5, 5, 2, "Error: command not recognized")
	replyLineTooLong    = r(500, 5, 5, 2, "Error: line too long")
	replyBadSyntax      = r(501, 5, 5, 4, "Error: syntax error in parameters")
	replyBadAddress     = r(501, 5, 1, 7, "Error: bad address syntax")
	replyBadParam       = r(555, 5, 5, 4, "Error: unsupported or bad parameter")
	replyNeedHelo       = r(503, 5, 5, 1, "Error: send HELO/EHLO first")
	replyNestedMail     = r(503, 5, 5, 1, "Error: nested MAIL command")
	replyNeedMail       = r(503, 5, 5, 1, "Error: need MAIL command")
	replyNeedRcpt       = r(503, 5, 5, 1, "Error: need RCPT command")
	replyNoTLS          = r(502, 5, 5, 1, "Error: STARTTLS not available")
	replyTLSAlready     = r(503, 5, 5, 1, "Error: TLS already active")
	replyNotTrusted     = r(550, 5, 7, 0, "Error: insufficient authorization")
	replyAuthNotAvail   = r(502, 5, 5, 1, "Error: authentication not enabled")
	replyAuthNeedTLS    = r(530, 5, 7, 0, "Must issue a STARTTLS command first")
	replyTooManyRcpts   = r(452, 4, 5, 3, "Error: too many recipients")
	replyTooBig         = r(552, 5, 3, 4, "Error: message size exceeds limit")
	replyBareNewline    = r(550, 5, 5, 2, "Error: bare <CR> or <LF> or NUL in message data; use <CR><LF> line endings")
	replyTimeout        = r(421, 4, 4, 2, "Error: timeout exceeded")
	replyTooManyConns   = r(421, 4, 7, 0, "Error: too many connections, try again later")
	replyTooManyErrors  = r(421, 4, 7, 0, "Error: too many errors")
	replyShutdown       = r(421, 4, 3, 0, "Error: service shutting down, try again later")
	replyInternal       = r(421, 4, 3, 0, "Error: internal error")
	replyLocalError     = r(451, 4, 3, 0, "Error: local error in processing")
	replyUpstreamDown   = r(451, 4, 4, 1, "Error: upstream server unavailable, try again later")
	replyUpstreamFailed = r(451, 4, 4, 2, "Error: upstream server failed, try again later")
	replyQueuedOK       = r(250, 2, 0, 0, "Ok") // a message accepted and discarded or held
	replySMTPUTF8       = r(553, 5, 6, 7, "Error: non-ASCII address needs SMTPUTF8")
)

// withEnhanced fills in an enhanced code from the reply class when it has
// none (RFC 2034 §3: once ENHANCEDSTATUSCODES is offered every reply
// carries one).
func withEnhanced(rp Reply) Reply {
	if rp.Enhanced == [3]int{} && rp.Code >= 200 && rp.Code < 600 && rp.Code != 354 && rp.Code/100 != 3 {
		rp.Enhanced = [3]int{rp.Code / 100, 0, 0}
	}
	return rp
}

// formatReply renders rp as wire lines, each ending in CRLF; a multi-line
// Text becomes "code-..." continuation lines (RFC 5321 §4.2.1).
func formatReply(dst []byte, rp Reply) []byte {
	lines := strings.Split(rp.Text, "\n")
	enh := ""
	if rp.Enhanced != [3]int{} {
		enh = strconv.Itoa(rp.Enhanced[0]) + "." + strconv.Itoa(rp.Enhanced[1]) + "." + strconv.Itoa(rp.Enhanced[2]) + " "
	}
	for i, l := range lines {
		l = strings.TrimRight(l, "\r")
		dst = strconv.AppendInt(dst, int64(rp.Code), 10)
		if i < len(lines)-1 {
			dst = append(dst, '-')
		} else {
			dst = append(dst, ' ')
		}
		dst = append(dst, enh...)
		dst = append(dst, sanitizeLine(l)...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// sanitizeLine drops control characters from a reply line, so nothing from a
// policy or an upstream can break the reply framing.
func sanitizeLine(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			b = append(b, ' ')
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}
