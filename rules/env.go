package rules

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	"mailgate/mimeparse"
)

// Env is the expression environment of docs/DESIGN.md. One Env is built per Eval
// call and shared by every rule of the stage. Collections hold pointers and
// the per-message helpers are func-typed fields (docs/DEVELOPING.md §3.2, §3.3).
//
// Expressions are compiled against Env as a value and run with the Env
// boxed once per Eval (re-boxed only when Score or Tags changed and the
// next rule reads them). This departs from docs/DEVELOPING.md §3.2's "pass
// a pointer" on
// purpose: expr reads fields through reflect, and a field of an addressable
// struct (behind a pointer) is copied to the heap on every read, while a
// field of the boxed value is not. Measured with BenchmarkEval (50 rules):
// 238 → 190 allocations and about 8% less CPU per Eval. Fields of parts
// (behind []*Part) would allocate on each read the same way; compiled
// programs read them through PartAny and partBool instead (partfields.go).
type Env struct {
	Client   Client
	Envelope Envelope
	Rcpt     string // rcpt stage only

	Header    func(name string) string   // first decoded value of a top-level field
	HeaderAll func(name string) []string // every decoded value
	HasHeader func(name string) bool

	Subject    string
	From       string   // address of the From: header
	FromDomain string   // its domain, lower case
	To         []string // addresses of To:
	Cc         []string // addresses of Cc:
	MessageID  string

	Size        int
	Parts       []*mimeparse.Part
	Attachments []*mimeparse.Part
	Text        string
	Defects     []string

	Score float64
	Tags  []string

	// Virus is clamd's verdict (stage data; zero before).
	Virus Virus

	Lists map[string]map[string]struct{}

	// DNSBL maps each configured blocklist NAME to its answers for the
	// client (empty: not listed); Auth holds SPF, DKIM, DMARC and ARC.
	DNSBL map[string][]string
	Auth  Auth

	// Rate is rate(key, window): how many times key was seen within window
	// (a Go duration such as "1m"), this time included. Each call counts
	// one hit. Counts are kept in window/16 buckets in the State's bounded
	// cache, so a hit leaves the count at most window/16 late.
	Rate func(key, window string) int `expr:"rate"`

	// Internal: how the patched programs read part fields (partfields.go).
	// The names are not identifiers, so no policy can write them.
	PartAny func(part, field any) any `expr:"mailgate part any"`
	RateAny func(key, window any) any `expr:"mailgate rate"`
}

// Identifiers that only exist once the message has been read (data stage).
var bodyFacts = map[string]bool{
	"Parts": true, "Attachments": true, "Text": true, "Defects": true, "Size": true,
}

var headerFacts = map[string]bool{
	"Header": true, "HeaderAll": true, "HasHeader": true, "Subject": true, "From": true,
	"FromDomain": true, "To": true, "Cc": true, "MessageID": true,
}

// lookupFacts are top-level facts that a lookup outside the message
// computes, known only from a stage on (docs/DESIGN.md "Wave 2 contract").
var lookupFacts = map[string]Stage{
	"Virus": StageData,
}

// memberFacts are fields known only from a stage on (docs/policy.md,
// "Stages"): reading one at an earlier stage is a load error.
var memberFacts = map[string]Stage{
	"Client.Pregreet": StageHelo,
}

// memberName is "Client.Pregreet" for the member node Client.Pregreet (or
// Client["Pregreet"]), "" for any other shape.
func memberName(id *ast.IdentifierNode, prop *ast.StringNode) string {
	if id == nil || prop == nil {
		return ""
	}
	return id.Value + "." + prop.Value
}

// funcNames are the functions mailgate adds to expr's builtins.
var funcNames = []string{"cidr", "domain", "lower", "rate", "subdomain"}

// envNames lists the top-level names of Env (for suggestions).
func envNames() []string {
	t := reflect.TypeOf(Env{})
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := f.Tag.Get("expr"); tag != "" {
			continue
		}
		out = append(out, f.Name)
	}
	return append(out, funcNames...)
}

// fieldNames returns the field names of the struct type named (as expr
// prints it: "mimeparse.Part", "rules.Client") plus its methods.
func fieldNames(typeName string) []string {
	var t reflect.Type
	switch typeName {
	case "mimeparse.Part", "*mimeparse.Part":
		t = reflect.TypeOf(&mimeparse.Part{})
	case "mimeparse.ArchiveEntry":
		t = reflect.TypeOf(&mimeparse.ArchiveEntry{})
	case "rules.Client", "*rules.Client":
		t = reflect.TypeOf(&Client{})
	case "rules.Auth", "*rules.Auth":
		t = reflect.TypeOf(&Auth{})
	case "rules.DKIMResult", "*rules.DKIMResult":
		t = reflect.TypeOf(&DKIMResult{})
	case "rules.Envelope", "*rules.Envelope":
		t = reflect.TypeOf(&Envelope{})
	case "rules.Virus", "*rules.Virus":
		t = reflect.TypeOf(&Virus{})
	default:
		return nil
	}
	var out []string
	for i := 0; i < t.Elem().NumField(); i++ {
		if f := t.Elem().Field(i); f.IsExported() && f.Tag.Get("expr") != "-" {
			out = append(out, f.Name)
		}
	}
	for i := 0; i < t.NumMethod(); i++ {
		out = append(out, t.Method(i).Name)
	}
	return out
}

// exprFuncs returns the pure helper functions, typed so the checker knows
// their signatures and calls avoid reflection (docs/DEVELOPING.md §3.3). prefixes maps a
// configured list (by identity) to its parsed networks, for cidr(ip, Lists.X).
func exprFuncs(prefixes map[uintptr][]netip.Prefix) []expr.Option {
	return []expr.Option{
		expr.Function("cidr", func(params ...any) (any, error) {
			ip, _ := params[0].(string)
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return false, nil // an absent or malformed address is in no network
			}
			a = a.Unmap()
			switch n := params[1].(type) {
			case string:
				p, err := parsePrefix(n)
				if err != nil {
					return false, fmt.Errorf("cidr: %v", err)
				}
				return p.Contains(a), nil
			case map[string]struct{}:
				for _, p := range prefixes[reflect.ValueOf(n).Pointer()] {
					if p.Contains(a) {
						return true, nil
					}
				}
				if _, ok := n[a.String()]; ok {
					return true, nil
				}
				return false, nil
			}
			return false, fmt.Errorf("cidr: unexpected network argument %T", params[1])
		},
			new(func(string, string) bool),
			new(func(string, map[string]struct{}) bool),
		),
		expr.Function("domain", func(params ...any) (any, error) {
			return addrDomain(params[0].(string)), nil
		}, new(func(string) string)),
		expr.Function("lower", func(params ...any) (any, error) {
			return strings.ToLower(params[0].(string)), nil
		}, new(func(string) string)),
		expr.Function("subdomain", func(params ...any) (any, error) {
			d := strings.TrimSuffix(strings.ToLower(params[0].(string)), ".")
			switch parent := params[1].(type) {
			case string:
				return isSubdomain(d, strings.TrimSuffix(strings.ToLower(parent), ".")), nil
			case map[string]struct{}:
				return inDomainList(d, parent), nil
			}
			return false, fmt.Errorf("subdomain: unexpected domain argument %T", params[1])
		},
			new(func(string, string) bool),
			new(func(string, map[string]struct{}) bool),
		),
	}
}

// isSubdomain reports whether d is parent or a subdomain of it
// (docs/policy.md "Lists": a domain list matches exactly with in, and
// domains below its entries with subdomain()).
func isSubdomain(d, parent string) bool {
	if d == "" || parent == "" {
		return false
	}
	return d == parent || strings.HasSuffix(d, "."+parent)
}

// inDomainList reports whether d or one of its parent domains is in the
// list: one lookup per label.
func inDomainList(d string, list map[string]struct{}) bool {
	for d != "" {
		if _, ok := list[d]; ok {
			return true
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return false
		}
		d = d[i+1:]
	}
	return false
}

// parsePrefix parses "10.0.0.0/8", or a bare address as a single-host prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// addrDomain returns the lower-cased domain of an address ("" without '@').
func addrDomain(addr string) string {
	addr = strings.TrimSpace(addr)
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}
