package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"mailgate/mimeparse"
)

func runParse(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("parse", "[--json] FILE.eml", stderr)
	asJSON := fs.Bool("json", false, "print one JSON object (headers, defects, parts) instead of the tree")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "mailgate parse: want exactly one FILE\n")
		fs.Usage()
		return 2
	}
	name := fs.Arg(0)
	f, err := os.Open(name)
	if err != nil {
		fmt.Fprintf(stderr, "mailgate parse: %v\n", err)
		return 1
	}
	defer f.Close()
	msg, err := mimeparse.Parse(f, mimeparse.DefaultLimits())
	if err != nil {
		fmt.Fprintf(stderr, "mailgate parse: reading %s: %v\n", name, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(parseJSON(msg)); err != nil {
			fmt.Fprintf(stderr, "mailgate parse: %v\n", err)
			return 1
		}
		return 0
	}
	printTree(stdout, msg)
	return 0
}

type jsonHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Raw   string `json:"raw"`
}

// jsonPart is a part as `check --json` prints it plus the tree fields
// docs/DESIGN.md lists for `parse --json`.
type jsonPart struct {
	chkPartJSON
	IsMultipart      bool     `json:"is_multipart"`
	Charset          string   `json:"charset"`
	TransferEncoding string   `json:"transfer_encoding"`
	Disposition      string   `json:"disposition"`
	Names            []string `json:"names"`
	HeaderOffset     int64    `json:"header_offset"`
	BodyOffset       int64    `json:"body_offset"`
	EndOffset        int64    `json:"end_offset"`
}

type jsonMessage struct {
	Headers []jsonHeader `json:"headers"`
	Defects []string     `json:"defects"`
	Parts   []jsonPart   `json:"parts"`
}

func parseJSON(m *mimeparse.Message) jsonMessage {
	out := jsonMessage{Headers: []jsonHeader{}, Defects: chkNonNil(m.Defects), Parts: []jsonPart{}}
	for _, f := range m.Fields {
		out.Headers = append(out.Headers, jsonHeader{Name: f.Name, Value: f.Value, Raw: f.Raw})
	}
	for _, p := range m.Parts {
		out.Parts = append(out.Parts, jsonPart{
			chkPartJSON: chkPart(p),
			IsMultipart: p.IsMultipart, Charset: p.Charset, TransferEncoding: p.TransferEncoding,
			Disposition: p.Disposition, Names: chkNonNil(p.Names),
			HeaderOffset: p.HeaderOffset, BodyOffset: p.BodyOffset, EndOffset: p.EndOffset,
		})
	}
	return out
}

// printTree prints one line per part, indented by depth.
func printTree(w io.Writer, m *mimeparse.Message) {
	for _, f := range m.Fields {
		switch strings.ToLower(f.Name) {
		case "from", "to", "subject", "date", "message-id":
			fmt.Fprintf(w, "%s: %s\n", f.Name, f.Value)
		}
	}
	fmt.Fprintf(w, "size %d, %d parts\n", m.Size, len(m.Parts))
	for _, p := range m.Parts {
		fmt.Fprintf(w, "%s%-6s %s", strings.Repeat("  ", p.Depth), p.Path, p.ContentType)
		if p.Filename != "" {
			fmt.Fprintf(w, " %q", p.Filename)
		}
		if p.Reading != "" {
			fmt.Fprintf(w, " [reading %s]", p.Reading)
		}
		if !p.IsMultipart && p.ContentType != "message/rfc822" && p.ContentType != "message/global" || p.SHA256 != "" {
			fmt.Fprintf(w, " %d bytes", p.Size)
			if p.DetectedType != "" && p.DetectedType != p.ContentType {
				fmt.Fprintf(w, " (is %s)", p.DetectedType)
			}
		}
		if p.IsAttachment {
			fmt.Fprint(w, " attachment")
		}
		if p.Executable {
			fmt.Fprint(w, " EXECUTABLE")
		}
		if p.Macros {
			fmt.Fprint(w, " MACROS")
		}
		if p.Encrypted {
			fmt.Fprint(w, " encrypted")
		}
		if len(p.Active) > 0 {
			fmt.Fprintf(w, " active=%s", strings.Join(p.Active, ","))
		}
		if len(p.Names) > 0 {
			fmt.Fprintf(w, " names=%q", p.Names)
		}
		if len(p.Defects) > 0 {
			fmt.Fprintf(w, " defects=%s", strings.Join(p.Defects, ","))
		}
		fmt.Fprintln(w)
		for _, a := range p.Archive {
			act := ""
			if len(a.Active) > 0 {
				act = " active=" + strings.Join(a.Active, ",")
			}
			fmt.Fprintf(w, "%s  - %s %d bytes %s%s\n", strings.Repeat("  ", p.Depth+a.Depth), a.Name, a.Size, a.DetectedType, act)
		}
	}
	if len(m.Defects) > 0 {
		fmt.Fprintf(w, "defects: %s\n", strings.Join(m.Defects, ", "))
	}
}
