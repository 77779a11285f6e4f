package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// checkJSON is one line of `check --json`, exactly as docs/DESIGN.md shows.
type checkJSON struct {
	File         string            `json:"file"`
	Verdict      string            `json:"verdict"`
	Reply        string            `json:"reply"`
	Rules        []string          `json:"rules"`
	Score        float64           `json:"score"`
	Tags         []string          `json:"tags"`
	Stripped     []string          `json:"stripped"`
	HeadersAdded map[string]string `json:"headers_added"`
	Monitor      []string          `json:"monitor"`
	Defects      []string          `json:"defects"`
	Parts        []chkPartJSON     `json:"parts"`
	MessageID    string            `json:"message_id"`
	Explain      string            `json:"explain,omitempty"` // --explain: the text it prints without --json
}

type chkPartJSON struct {
	Path         string           `json:"path"`
	ContentType  string           `json:"content_type"`
	Filename     string           `json:"filename"`
	Ext          string           `json:"ext"`
	DetectedType string           `json:"detected_type"`
	Size         int64            `json:"size"`
	SHA256       string           `json:"sha256"`
	IsAttachment bool             `json:"is_attachment"`
	Executable   bool             `json:"executable"`
	Active       []string         `json:"active"`
	Archive      []chkArchiveJSON `json:"archive"`
	Defects      []string         `json:"defects"`
	// Reading names the alternative reading the part exists in; omitted
	// for the primary reading (mimeparse/readings.go).
	Reading string `json:"reading,omitempty"`
}

type chkArchiveJSON struct {
	Name         string   `json:"name"`
	Ext          string   `json:"ext"`
	Size         int64    `json:"size"`
	DetectedType string   `json:"detected_type"`
	Executable   bool     `json:"executable"`
	Encrypted    bool     `json:"encrypted"`
	Macros       bool     `json:"macros"`
	Depth        int      `json:"depth"`
	Active       []string `json:"active,omitempty"`
}

func chkNonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// chkLeaves are the parts `check --json` lists: every part but containers.
func chkLeaves(msg *mimeparse.Message) []*mimeparse.Part {
	var out []*mimeparse.Part
	for _, p := range msg.Parts {
		if p.IsMultipart || p.ContentType == "message/rfc822" || p.ContentType == "message/global" {
			continue
		}
		out = append(out, p)
	}
	return out
}

func chkNewCheckJSON(name string, msg *mimeparse.Message, res *chkResult) checkJSON {
	j := checkJSON{
		File: name, Verdict: string(res.verdict), Rules: chkNonNil(res.rules), Score: res.score,
		Tags: chkNonNil(res.tags), Stripped: []string{}, HeadersAdded: map[string]string{},
		Monitor: chkNonNil(res.monitor), Defects: chkNonNil(msg.Defects), Parts: []chkPartJSON{},
	}
	if res.verdict == rules.ActionReject || res.verdict == rules.ActionTempfail {
		j.Reply = res.reply.String()
	}
	for _, s := range res.edits.Strip {
		j.Stripped = chkAppendNew(j.Stripped, s.Path)
	}
	for _, h := range res.edits.Headers {
		switch h.Op {
		case "add", "set":
			j.HeadersAdded[h.Name] = h.Value
		case "remove":
			delete(j.HeadersAdded, h.Name)
		}
	}
	for _, p := range chkLeaves(msg) {
		j.Parts = append(j.Parts, chkPart(p))
	}
	return j
}

// chkPart is a part as `check --json` prints it; `parse --json` prints the
// same fields and more (docs/DESIGN.md).
func chkPart(p *mimeparse.Part) chkPartJSON {
	pj := chkPartJSON{
		Path: p.Path, ContentType: p.ContentType, Filename: p.Filename, Ext: p.Ext,
		DetectedType: p.DetectedType, Size: p.Size, SHA256: p.SHA256, IsAttachment: p.IsAttachment,
		Executable: p.Executable, Active: chkNonNil(p.Active), Archive: []chkArchiveJSON{}, Defects: chkNonNil(p.Defects), Reading: p.Reading,
	}
	for _, a := range p.Archive {
		pj.Archive = append(pj.Archive, chkArchiveJSON(a))
	}
	return pj
}

func chkWriteJSON(w io.Writer, name string, msg *mimeparse.Message, res *chkResult, explain string) {
	j := chkNewCheckJSON(name, msg, res)
	j.MessageID = strings.TrimSpace(msg.Header("Message-ID"))
	j.Explain = explain
	data, err := json.Marshal(j)
	if err != nil {
		panic(err) // only plain types above: cannot fail
	}
	w.Write(append(data, '\n'))
}

// chkWriteLine is the text report of one message.
func chkWriteLine(w io.Writer, name string, res *chkResult) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", name, res.verdict)
	if len(res.rules) > 0 {
		fmt.Fprintf(&b, " [%s]", strings.Join(res.rules, ", "))
	}
	if res.verdict == rules.ActionReject || res.verdict == rules.ActionTempfail {
		fmt.Fprintf(&b, " %s", res.reply)
	}
	if res.score != 0 {
		fmt.Fprintf(&b, " score=%g", res.score)
	}
	if len(res.tags) > 0 {
		fmt.Fprintf(&b, " tags=%s", strings.Join(res.tags, ","))
	}
	if res.verdict == rules.ActionAccept {
		for _, s := range res.edits.Strip {
			fmt.Fprintf(&b, " strip=%s", s.Path)
		}
		for _, h := range res.edits.Headers {
			sign := map[string]string{"add": "+", "set": "=", "remove": "-"}[h.Op]
			fmt.Fprintf(&b, " %s%s", sign, h.Name)
		}
		if res.edits.SubjectPrefix != "" {
			fmt.Fprintf(&b, " subject-prefix=%q", res.edits.SubjectPrefix)
		}
	}
	if len(res.monitor) > 0 {
		fmt.Fprintf(&b, " monitor=%s", strings.Join(res.monitor, ","))
	}
	fmt.Fprintln(w, b.String())
}

// writeTable prints the per-rule hit table and the verdict totals.
func (c *checker) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "rule\thits\tmonitor\t\n")
	for _, r := range c.set.RuleNames() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", r, c.hits[r], c.monitorHits[r])
	}
	tw.Flush()
	var parts []string
	for _, v := range chkSortedKeys(c.verdicts) {
		parts = append(parts, fmt.Sprintf("%s %d", v, c.verdicts[v]))
	}
	fmt.Fprintf(w, "%s: %s\n", plural(c.n, "message"), strings.Join(parts, ", "))
}

// chkRuleSource is what --explain shows of a rule: where it is and its
// expressions, read from the policy files themselves.
type chkRuleSource struct {
	file, stage, when, strip, action, score string
	tags                                    []string
	line                                    int
}

type chkRuleSources map[string]chkRuleSource

// chkReadRuleSources reads the rules' expressions from the policy files
// (from fsys when not nil). It is best effort: the Set already validated
// them, and --explain without sources still shows results.
func chkReadRuleSources(fsys fs.FS, paths []string) chkRuleSources {
	out := chkRuleSources{}
	for _, p := range paths {
		var data []byte
		var err error
		if fsys != nil {
			data, err = fs.ReadFile(fsys, p)
		} else {
			data, err = os.ReadFile(p)
		}
		if err != nil {
			continue
		}
		var doc struct {
			Rules []struct {
				Name   yaml.Node `yaml:"name"`
				Stage  string    `yaml:"stage"`
				When   string    `yaml:"when"`
				Strip  string    `yaml:"strip"`
				Action string    `yaml:"action"`
				Score  string    `yaml:"score"`
				Tags   []string  `yaml:"tags"`
			} `yaml:"rules"`
		}
		if yaml.Unmarshal(data, &doc) != nil {
			continue
		}
		for _, r := range doc.Rules {
			st := r.Stage
			if st == "" {
				st = "data"
			}
			act := r.Action
			if act == "" {
				act = "continue"
			}
			out[r.Name.Value] = chkRuleSource{file: p, line: r.Name.Line, stage: st, when: r.When, strip: r.Strip,
				action: act, score: r.Score, tags: r.Tags}
		}
	}
	return out
}

// writeExplain shows, stage by stage, every rule's result and why: the
// expression it evaluated and, at data, the facts it looked at.
func (c *checker) writeExplain(w io.Writer, msg *mimeparse.Message, res *chkResult) {
	for _, sr := range res.stages {
		if !c.set.HasStage(sr.stage) {
			continue
		}
		label := sr.stage.String()
		if sr.rcpt != "" {
			label += " " + sr.rcpt
		}
		fmt.Fprintf(w, "  stage %s: %s\n", label, sr.v.Action)
		stopped := ""
		for _, name := range c.set.RuleNames() {
			src, ok := c.src[name]
			if ok && src.stage != sr.stage.String() {
				continue
			}
			if !ok && !chkContains(sr.v.Rules, name) && !chkContains(sr.v.Monitor, name) {
				continue
			}
			var status string
			switch {
			case stopped != "":
				status = "not reached (" + stopped + " decided)"
			case name == sr.v.Rule && sr.v.Action != rules.ActionContinue:
				status = "MATCH → " + string(sr.v.Action)
				if !sr.v.Reply.IsZero() {
					status += " " + sr.v.Reply.String()
				}
				stopped = name
			case chkContains(sr.v.Monitor, name):
				status = "match (monitor mode: no effect)"
			case chkContains(sr.v.Rules, name):
				status = "match → " + src.action
				if src.score != "" {
					status += ", score +" + src.score
				}
				if len(src.tags) > 0 {
					status += ", tags " + strings.Join(src.tags, " ")
				}
			default:
				status = "no match"
			}
			fmt.Fprintf(w, "    %-28s %s\n", name, status)
			if ok && stopped != name && strings.HasPrefix(status, "not reached") {
				continue
			}
			if ok && src.when != "" {
				fmt.Fprintf(w, "      when:  %s   (%s:%d)\n", chkOneLine(src.when), src.file, src.line)
			}
			if ok && src.strip != "" {
				fmt.Fprintf(w, "      strip: %s\n", chkOneLine(src.strip))
			}
		}
		for _, e := range sr.v.Errors {
			fmt.Fprintf(w, "    error: %v\n", e)
		}
		if sr.stage == rules.StageData {
			chkWriteFacts(w, msg)
		}
	}
}

// chkWriteFacts lists what the data-stage rules saw: defects and attachments.
func chkWriteFacts(w io.Writer, msg *mimeparse.Message) {
	fmt.Fprintf(w, "    facts: Defects=%v\n", chkNonNil(msg.Defects))
	for _, p := range msg.Attachments() {
		fmt.Fprintf(w, "      part %s: %s filename=%q ext=%q detected=%q executable=%v encrypted=%v macros=%v",
			p.Path, p.ContentType, p.Filename, p.Ext, p.DetectedType, p.Executable, p.Encrypted, p.Macros)
		if len(p.Names) > 0 {
			fmt.Fprintf(w, " names=%q", p.Names)
		}
		if len(p.Defects) > 0 {
			fmt.Fprintf(w, " defects=%v", p.Defects)
		}
		fmt.Fprintln(w)
		for _, a := range p.Archive {
			fmt.Fprintf(w, "        archive entry %q ext=%q detected=%q executable=%v encrypted=%v depth=%d\n",
				a.Name, a.Ext, a.DetectedType, a.Executable, a.Encrypted, a.Depth)
		}
	}
}

func chkOneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func chkContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
