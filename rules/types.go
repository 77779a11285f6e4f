// Package rules loads YAML policies, compiles their expr expressions against
// a typed environment, and evaluates them into verdicts. A verdict is a value
// computed without sockets; rules knows nothing of the network.
package rules

import (
	"fmt"

	"mailgate/mimeparse"
)

// Stage is the SMTP stage a rule runs at.
type Stage int

const (
	StageConnect Stage = iota
	StageHelo
	StageMail
	StageRcpt
	StageData
)

var stageNames = [...]string{"connect", "helo", "mail", "rcpt", "data"}

func (s Stage) String() string {
	if int(s) < len(stageNames) {
		return stageNames[s]
	}
	return fmt.Sprintf("stage(%d)", int(s))
}

// Action is what a rule, and finally a verdict, does with the transaction.
type Action string

const (
	ActionContinue   Action = "continue" // not terminal: edits and scores accumulate
	ActionAccept     Action = "accept"
	ActionReject     Action = "reject"
	ActionTempfail   Action = "tempfail"
	ActionDiscard    Action = "discard"
	ActionQuarantine Action = "quarantine"
)

// Reply is an SMTP reply with its enhanced status code (RFC 3463),
// e.g. Reply{550, [3]int{5, 7, 1}, "Executable attachments are not accepted"}.
type Reply struct {
	Code     int
	Enhanced [3]int
	Text     string
}

// Temporary reports whether the reply is a 4xx.
func (r Reply) Temporary() bool { return r.Code/100 == 4 }

// IsZero reports whether the reply is unset.
func (r Reply) IsZero() bool { return r.Code == 0 }

// String formats the reply as one line without CRLF: "550 5.7.1 text".
func (r Reply) String() string {
	if r.Enhanced == [3]int{} {
		return fmt.Sprintf("%d %s", r.Code, r.Text)
	}
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// Client describes the connecting client (after XFORWARD/XCLIENT from a
// trusted forwarder: the original client).
type Client struct {
	IP       string
	Port     int
	HELO     string
	TLS      bool
	AuthUser string
	Listener string
	// Pregreet: the client sent data before the greeting (the proxy's
	// timeouts.greet_delay); known from stage helo (memberFacts).
	Pregreet bool
	// PTR, FCrDNS and Blocklisted come from the DNS lookups made once the
	// original client is known (connect, or XFORWARD/XCLIENT); see
	// docs/policy.md "Client.PTR" and the facts package.
	PTR         string   // first PTR name of the client IP, "" if none
	FCrDNS      bool     // PTR resolves back to the client IP
	Blocklisted []string // configured DNSBL names that list the client
}

// Envelope is the SMTP envelope so far.
type Envelope struct {
	From        string
	FromDomain  string
	Rcpts       []string
	RcptDomains []string
	Size        int
	SMTPUTF8    bool
}

// Virus is clamd's verdict on the whole message (docs/DESIGN.md "Wave 2
// contract": Virus.Found, Virus.Names, Virus.Error), known at stage data.
// Error is non-empty when clamd could not answer (unreachable, timeout, an
// ERROR reply): the message was not scanned, and Found says nothing. A
// message larger than clamd.max_size is not sent at all: Error stays empty
// and the message gets the defect limit-virus-scan-size instead.
type Virus struct {
	Found bool
	Names []string
	Error string
}

// Facts is everything known about a transaction at a stage. Msg is nil
// before the data stage.
type Facts struct {
	Client   Client
	Envelope Envelope
	Rcpt     string // the recipient being decided (rcpt stage)
	Msg      *mimeparse.Message
	// DNSBL and Auth are what the lookups found (an Enricher fills them
	// in before each stage): NAME → answers, and SPF/DKIM/DMARC/ARC.
	DNSBL map[string][]string
	Auth  Auth
	// Score and Tags are what earlier stages of the connection and the
	// transaction accumulated; the stage's rules add to them.
	Score float64
	Tags  []string
	// Virus is filled by the front-end's clamd lookup (an Enricher) at
	// stage data, only when the set reads Virus (Set.Uses).
	Virus Virus
}

// HeaderEdit is one header change, with the rule that asked for it.
type HeaderEdit struct {
	Op    string // "add", "set", "remove", or OpRemoveToken (rewrite.go)
	Name  string
	Value string // expanded template ("" for remove)
	Rule  string
}

// Strip names a part to remove and the rule that removed it.
type Strip struct {
	Path     string
	Filename string
	Rule     string
}

// Edits is the rewriting plan a verdict carries; the rewriter turns it into
// mimeparse.Edit splices over the original bytes.
type Edits struct {
	Headers       []HeaderEdit
	SubjectPrefix string
	Strip         []Strip
	RcptAdd       []string
	RcptRemove    []string
}

// Empty reports whether the plan changes nothing in the message itself.
func (e *Edits) Empty() bool {
	return len(e.Headers) == 0 && e.SubjectPrefix == "" && len(e.Strip) == 0
}

// Verdict is the result of evaluating one stage.
type Verdict struct {
	Action  Action   // terminal action, or ActionContinue when none fired
	Reply   Reply    // for reject/tempfail (and a custom 250 text, if any)
	Rule    string   // the rule that decided Action ("" when none)
	Rules   []string // every rule that matched, in order (monitor rules excluded)
	Monitor []string // rules in monitor mode that matched
	Score   float64
	Tags    []string
	Edits   Edits
	Errors  []error // rules' runtime errors (already handled as rule_error says)
}
