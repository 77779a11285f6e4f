package proxy

import (
	"mailgate/internal/smtpline"
	"mailgate/upstream"
	"strconv"
	"strings"
)

// command is one parsed SMTP command line.
type command struct {
	verb string // upper case: "MAIL", "EHLO", ...
	arg  string // the rest, after one space
}

// parseCommand splits a command line (without its line break) into verb and
// argument (RFC 5321 §4.1.1: verb, SP, arguments). It is a pure function,
// fuzzed by FuzzCommand.
func parseCommand(line string) (command, bool) {
	if len(line) == 0 {
		return command{}, false
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return command{}, false
		}
	}
	verb, arg, _ := strings.Cut(line, " ")
	if len(verb) < 4 || len(verb) > 10 {
		return command{}, false
	}
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return command{}, false
		}
	}
	return command{verb: strings.ToUpper(verb), arg: strings.TrimRight(arg, " \t")}, true
}

// param is one ESMTP parameter of MAIL or RCPT, as the upstream takes it.
type param = upstream.Param

// pathArg is a parsed MAIL FROM or RCPT TO argument.
type pathArg struct {
	Addr   string // without angle brackets; "" is the null path
	Params []param
}

// parsePath parses `FROM:<addr> params` (prefix "FROM:") or `TO:<addr>
// params` (prefix "TO:"). QUIRK: a space after the colon is accepted, as
// Postfix and most servers do.
func parsePath(arg, prefix string) (pathArg, *Reply) {
	var pa pathArg
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return pa, &replyBadSyntax
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		return pa, &replyBadAddress
	}
	end := closingBracket(rest)
	if end < 0 {
		return pa, &replyBadAddress
	}
	pa.Addr = rest[1:end]
	if !validAddr(pa.Addr) {
		return pa, &replyBadAddress
	}
	// RFC 5321 §4.1.2: a source route is accepted and ignored.
	if strings.HasPrefix(pa.Addr, "@") {
		if i := strings.IndexByte(pa.Addr, ':'); i > 0 {
			pa.Addr = pa.Addr[i+1:]
		}
	}
	rest = rest[end+1:]
	if rest != "" && rest[0] != ' ' {
		return pa, &replyBadSyntax
	}
	for _, f := range strings.Fields(rest) {
		k, v, hasV := strings.Cut(f, "=")
		if !validParamKey(k) || hasV && !validParamValue(v) {
			return pa, &replyBadParam
		}
		pa.Params = append(pa.Params, param{Key: strings.ToUpper(k), Value: v})
	}
	return pa, nil
}

// closingBracket finds the '>' that closes the path, skipping quoted local
// parts ("a>b"@example.org).
func closingBracket(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '>' && !quoted:
			return i
		}
	}
	return -1
}

func validAddr(a string) bool {
	if len(a) > 320 {
		return false
	}
	quoted := false
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return false
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '<' || c == '>') && !quoted:
			return false
		}
	}
	if quoted {
		return false
	}
	if a == "" {
		return true
	}
	at := strings.LastIndexByte(a, '@')
	return at != 0 && at != len(a)-1 || strings.EqualFold(a, "postmaster")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func validParamKey(k string) bool {
	if k == "" || len(k) > 20 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

// validParamValue: RFC 5321 esmtp-value (%d33-60 / %d62-126), RFC 6531
// adds UTF-8.
func validParamValue(v string) bool {
	if v == "" || len(v) > 500 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 33 || c == '=' || c == 0x7f {
			return false
		}
	}
	return true
}

// mailParams are the checked parameters of MAIL FROM.
type mailParams struct {
	Size     int64
	Body     string // "", "7BIT", "8BITMIME"
	SMTPUTF8 bool
}

// checkMailParams validates MAIL parameters (RFC 1870 SIZE, RFC 6152 BODY,
// RFC 6531 SMTPUTF8, RFC 3461 RET and ENVID, RFC 4954 AUTH).
func checkMailParams(ps []param) (mailParams, *Reply) {
	var mp mailParams
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Key] {
			return mp, &replyBadParam
		}
		seen[p.Key] = true
		switch p.Key {
		case "SIZE":
			n, err := strconv.ParseInt(p.Value, 10, 64)
			if err != nil || n < 0 {
				return mp, &replyBadParam
			}
			mp.Size = n
		case "BODY":
			v := strings.ToUpper(p.Value)
			if v != "7BIT" && v != "8BITMIME" {
				return mp, &replyBadParam
			}
			mp.Body = v
		case "SMTPUTF8":
			if p.Value != "" {
				return mp, &replyBadParam
			}
			mp.SMTPUTF8 = true
		case "RET":
			v := strings.ToUpper(p.Value)
			if v != "FULL" && v != "HDRS" {
				return mp, &replyBadParam
			}
		case "ENVID", "AUTH":
			if p.Value == "" || !isASCII(p.Value) {
				return mp, &replyBadParam
			}
		default:
			return mp, &replyBadParam
		}
	}
	return mp, nil
}

// checkRcptParams validates RCPT parameters (RFC 3461 NOTIFY and ORCPT).
func checkRcptParams(ps []param) *Reply {
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Key] {
			return &replyBadParam
		}
		seen[p.Key] = true
		switch p.Key {
		case "NOTIFY":
			vs := strings.Split(strings.ToUpper(p.Value), ",")
			for _, v := range vs {
				switch v {
				case "SUCCESS", "FAILURE", "DELAY":
				case "NEVER":
					if len(vs) != 1 {
						return &replyBadParam
					}
				default:
					return &replyBadParam
				}
			}
		case "ORCPT":
			typ, addr, ok := strings.Cut(p.Value, ";")
			if !ok || typ == "" || addr == "" {
				return &replyBadParam
			}
		default:
			return &replyBadParam
		}
	}
	return nil
}

// domainOf returns the lower-cased domain of an address, "" without one.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// xforwardAttrs parses XFORWARD/XCLIENT arguments: NAME=value pairs, with
// values xtext-encoded (RFC 3461 §4; Postfix XFORWARD_README).
func xforwardAttrs(arg string) (map[string]string, bool) {
	out := map[string]string{}
	fs := strings.Fields(arg)
	if len(fs) == 0 {
		return nil, false
	}
	for _, f := range fs {
		k, v, ok := strings.Cut(f, "=")
		if !ok || !validParamKey(k) {
			return nil, false
		}
		dv, ok := smtpline.XtextDecode(v)
		if !ok {
			return nil, false
		}
		out[strings.ToUpper(k)] = dv
	}
	return out, true
}
