package inspect

import (
	"archive/zip"
	"bytes"
	"io"
	"regexp"
	"strings"
)

// OOXML relationships (_rels/*.rels) with TargetMode="External" make Word,
// Excel or PowerPoint fetch something when the document opens: a remote
// template (attachedTemplate, the macro-free .docx that loads a macro
// .dotm over http or from a share), an OLE object, a frame, a
// subdocument. Hyperlinks are external too and only open on a click: they
// are not active content.

var (
	relRe      = regexp.MustCompile(`(?is)<Relationship\b[^>]*>`)
	relTypeRe  = regexp.MustCompile(`(?i)\bType\s*=\s*["']([^"']*)["']`)
	relModeRe  = regexp.MustCompile(`(?i)\bTargetMode\s*=\s*["']External["']`)
	relTargtRe = regexp.MustCompile(`(?i)\bTarget\s*=\s*["']([^"']*)["']`)
)

// ooxmlRels reads one .rels member (its first 256 KiB) and returns the
// active content its external relationships stand for.
func (w *walker) ooxmlRels(f *zip.File) []string {
	rc, err := f.Open()
	if err != nil {
		return nil
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(w.limited(rc), 256<<10))
	if !bytes.Contains(bytes.ToLower(b), []byte("external")) {
		return nil
	}
	var out carried
	for _, rel := range relRe.FindAll(b, 1000) {
		if !relModeRe.Match(rel) {
			continue
		}
		typ := ""
		if m := relTypeRe.FindSubmatch(rel); m != nil {
			typ = strings.ToLower(string(m[1]))
		}
		target := ""
		if m := relTargtRe.FindSubmatch(rel); m != nil {
			target = string(m[1])
		}
		switch {
		case strings.HasSuffix(typ, "/attachedtemplate"):
			out.add(ActiveExternalTmpl)
		case strings.HasSuffix(typ, "/hyperlink"):
		case strings.HasSuffix(typ, "/oleobject"), strings.HasSuffix(typ, "/frame"),
			strings.HasSuffix(typ, "/subdocument"), strings.HasSuffix(typ, "/package"):
			out.add(ActiveExternalObject)
		}
		urlFacts(target, &out)
	}
	return out.active
}

// urlFacts records what a URL or path would reach: a search: URI or a
// file share on another host.
func urlFacts(u string, out *carried) {
	u = strings.TrimSpace(strings.ReplaceAll(u, "&amp;", "&"))
	l := strings.ToLower(u)
	switch {
	case strings.HasPrefix(l, "search:") || strings.HasPrefix(l, "search-ms:"):
		out.add(ActiveSearchURI)
		if strings.Contains(l, "crumb=location:") && (strings.Contains(l, `location:\\`) ||
			strings.Contains(l, "location:%5c%5c") || strings.Contains(l, "location:file") ||
			strings.Contains(l, "location:http")) {
			out.add(ActiveRemoteShare)
		}
	case strings.HasPrefix(l, "file://"):
		host := l[len("file://"):]
		if i := strings.IndexAny(host, "/\\"); i >= 0 {
			host = host[:i]
		}
		if host != "" && host != "localhost" {
			out.add(ActiveRemoteShare)
		}
	case strings.HasPrefix(l, `\\`) && len(l) > 2 && l[2] != '?' && l[2] != '.':
		out.add(ActiveRemoteShare)
	}
}
