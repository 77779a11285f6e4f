package rules

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Auth is what the authentication lookups found (docs/policy.md "Auth"):
// SPF from the mail stage on, the rest at the data stage.
type Auth struct {
	SPF         string // pass, fail, softfail, neutral, none, temperror, permerror
	DKIM        []DKIMResult
	DMARC       string // pass, fail, none, temperror, permerror
	DMARCPolicy string // none, quarantine, reject; "" without a record
	ARC         string // pass, fail, none
}

// DKIMResult is one DKIM signature of the message.
type DKIMResult struct {
	Domain   string
	Selector string
	Result   string // pass, fail, temperror, permerror, neutral
	Aligned  bool   // Domain is aligned with the From domain (relaxed)
}

// Values of the lookups' results.
const (
	ResultPass      = "pass"
	ResultFail      = "fail"
	ResultSoftfail  = "softfail"
	ResultNeutral   = "neutral"
	ResultNone      = "none"
	ResultTemperror = "temperror"
	ResultPermerror = "permerror"
)

// FactSources says which configuration sections feed the lookup facts:
// a policy that reads a fact no section feeds is a load error for serve,
// check -c and lint -c (its rule would only ever see the zero value).
// lint -p and test -p set All.
type FactSources struct {
	All   bool     // accept every fact and any DNSBL name (no config file)
	DNS   bool     // dns: Client.PTR, Client.FCrDNS
	DNSBL []string // dnsbl: the configured NAMEs (DNSBL.NAME, Client.Blocklisted)
	SPF   bool     // auth_checks.spf: Auth.SPF
	DKIM  bool     // auth_checks.dkim: Auth.DKIM
	DMARC bool     // auth_checks.dmarc: Auth.DMARC, Auth.DMARCPolicy
	ARC   bool     // auth_checks.arc: Auth.ARC
}

// lookupFact describes one fact the lookups give: the stage it exists
// from and the configuration that feeds it.
type lookupFact struct {
	from    Stage
	section string
	fed     func(FactSources) bool
}

var lookupMemberFacts = map[string]lookupFact{
	"Client.PTR":         {StageConnect, "dns:", func(s FactSources) bool { return s.DNS }},
	"Client.FCrDNS":      {StageConnect, "dns:", func(s FactSources) bool { return s.DNS }},
	"Client.Blocklisted": {StageConnect, "dnsbl:", func(s FactSources) bool { return len(s.DNSBL) > 0 }},
	"Auth.SPF":           {StageMail, "auth_checks: {spf: true}", func(s FactSources) bool { return s.SPF }},
	"Auth.DKIM":          {StageData, "auth_checks: {dkim: true}", func(s FactSources) bool { return s.DKIM }},
	"Auth.DMARC":         {StageData, "auth_checks: {dmarc: true}", func(s FactSources) bool { return s.DMARC }},
	"Auth.DMARCPolicy":   {StageData, "auth_checks: {dmarc: true}", func(s FactSources) bool { return s.DMARC }},
	"Auth.ARC":           {StageData, "auth_checks: {arc: true}", func(s FactSources) bool { return s.ARC }},
}

// checkLookupFact reports what is wrong with reading the member fact
// name (e.g. "Auth.SPF", "DNSBL.spamhaus") at stage, "" when nothing.
func (s *Set) checkLookupFact(name string, stage Stage) string {
	src := s.cfg.Facts
	if zone, ok := strings.CutPrefix(name, "DNSBL."); ok {
		switch {
		case src.All:
			return ""
		case len(src.DNSBL) == 0:
			return fmt.Sprintf("%s needs the dnsbl: section of the configuration (no blocklist is configured)", name)
		case !slices.Contains(src.DNSBL, zone):
			return fmt.Sprintf("DNSBL %s is not configured (config dnsbl:)%s", zone, DidYouMean(zone, src.DNSBL))
		}
		return ""
	}
	lf, ok := lookupMemberFacts[name]
	if !ok {
		return ""
	}
	if stage < lf.from {
		return fmt.Sprintf("%s is only known from stage %s on (this rule runs at stage %s)", name, lf.from, stage)
	}
	if !src.All && !lf.fed(src) {
		return fmt.Sprintf("%s needs %s in the configuration (nothing computes it otherwise)", name, lf.section)
	}
	return ""
}

// Blocklisted lists, sorted, the names whose answers list the client.
func Blocklisted(dnsbl map[string][]string) []string {
	var out []string
	for name, answers := range dnsbl {
		if len(answers) > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func orNone(s string) string {
	if s == "" {
		return ResultNone
	}
	return s
}

// Vocabularies of the facts: key of policy tests (and of the lookups).
var (
	spfResults   = []string{ResultPass, ResultFail, ResultSoftfail, ResultNeutral, ResultNone, ResultTemperror, ResultPermerror}
	dkimResults  = []string{ResultPass, ResultFail, ResultTemperror, ResultPermerror, ResultNeutral}
	dmarcResults = []string{ResultPass, ResultFail, ResultNone, ResultTemperror, ResultPermerror}
	dmarcPolicys = []string{"", "none", "quarantine", "reject"}
	arcResults   = []string{ResultPass, ResultFail, ResultNone}
)

// checkFacts validates a test's facts: at load time.
func (c *compiler) checkFacts(fy *factsYAML) {
	oneOf := func(field string, s scalar, valid []string) {
		if v, ok := c.str("", "tests: facts: "+field, s); ok && !slices.Contains(valid, v) {
			var names []string
			for _, n := range valid {
				if n != "" {
					names = append(names, n)
				}
			}
			c.atScalar(s, "tests: facts: %s: %q is not one of %s%s", field, v, strings.Join(names, ", "), DidYouMean(v, names))
		}
	}
	boolean := func(field string, s scalar) {
		if v, ok := c.str("", "tests: facts: "+field, s); ok && v != "true" && v != "false" {
			c.atScalar(s, "tests: facts: %s: %q is not true or false", field, v)
		}
	}
	if cl := fy.Client; cl != nil {
		boolean("client: pregreet", cl.Pregreet)
		boolean("client: fcrdns", cl.FCrDNS)
		c.str("", "tests: facts: client: ptr", cl.PTR)
	}
	if a := fy.Auth; a != nil {
		oneOf("auth: spf", a.SPF, spfResults)
		oneOf("auth: dmarc", a.DMARC, dmarcResults)
		oneOf("auth: dmarc_policy", a.DMARCPolicy, dmarcPolicys)
		oneOf("auth: arc", a.ARC, arcResults)
		for _, d := range a.DKIM {
			c.str("", "tests: facts: auth: dkim: domain", d.Domain)
			c.str("", "tests: facts: auth: dkim: selector", d.Selector)
			oneOf("auth: dkim: result", d.Result, dkimResults)
			boolean("auth: dkim: aligned", d.Aligned)
		}
	}
	for name, answers := range fy.DNSBL {
		for _, a := range answers {
			c.str("", "tests: facts: dnsbl: "+name, a)
		}
	}
}

// staticFacts turns a test's facts: into the lookups' results.
func staticFacts(fy *factsYAML) *StaticFacts {
	sf := &StaticFacts{}
	if cl := fy.Client; cl != nil {
		sf.PTR, sf.FCrDNS = cl.PTR.Value, cl.FCrDNS.Value == "true"
	}
	if a := fy.Auth; a != nil {
		sf.Auth = Auth{SPF: a.SPF.Value, DMARC: a.DMARC.Value, DMARCPolicy: a.DMARCPolicy.Value, ARC: a.ARC.Value}
		for _, d := range a.DKIM {
			sf.Auth.DKIM = append(sf.Auth.DKIM, DKIMResult{Domain: d.Domain.Value, Selector: d.Selector.Value, Result: orNone(d.Result.Value), Aligned: d.Aligned.Value == "true"})
		}
	}
	if len(fy.DNSBL) > 0 {
		sf.DNSBL = map[string][]string{}
		for name, answers := range fy.DNSBL {
			var out []string
			for _, a := range answers {
				out = append(out, a.Value)
			}
			sf.DNSBL[name] = out
		}
	}
	return sf
}
