package mimeparse

import (
	"strings"

	"github.com/gabriel-vasile/mimetype"
)

// bidi control characters (Unicode UAX #9): LRE, RLE, PDF, LRO, RLO, LRI,
// RLI, FSI, PDI, LRM, RLM, ALM.
func hasBidi(s string) bool {
	for _, r := range s {
		switch {
		case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069,
			r == 0x200E, r == 0x200F, r == 0x061C:
			return true
		}
	}
	return false
}

// extOf returns the last extension of name, lower case, after dropping
// trailing dots and spaces (Windows drops them when saving: "a.exe. " is
// a.exe) and any directory part.
func extOf(name string) string {
	name = strings.TrimRight(name, ". \t")
	if i := strings.LastIndexAny(name, "/\\"); i >= 0 {
		name = name[i+1:]
	}
	i := strings.LastIndexByte(name, '.')
	if i < 0 || i == len(name)-1 {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(name[i+1:]))
}

// controlIndex returns the index of the first C0 control character or DEL
// in name, -1 if none.
func controlIndex(name string) int {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return i
		}
	}
	return -1
}

// nameDefects checks a declared file name.
func nameDefects(name string, add func(string)) {
	if hasBidi(name) {
		add(DefectBidiInFilename)
	}
	if t := strings.TrimRight(name, " \t"); t != "" && (t != name || strings.HasSuffix(t, ".")) {
		if strings.TrimRight(name, ". \t") != name {
			add(DefectTrailingDotSpace)
		}
	}
}

// genericTypes are sniffed or declared types that say nothing definite.
var genericTypes = map[string]bool{
	"":                         true,
	"application/octet-stream": true,
	"text/plain":               true,
}

// executableDeclared are declared types that admit to being programs.
func executableDeclared(ct string) bool {
	switch ct {
	case "application/x-msdownload", "application/x-dosexec", "application/x-executable",
		"application/vnd.microsoft.portable-executable", "application/x-msdos-program",
		"application/x-ms-installer", "application/x-msi", "application/x-elf",
		"application/x-mach-binary", "application/x-sharedlib", "application/octet-stream":
		return true
	}
	return false
}

// typeMismatch reports whether a declared type contradicts the sniffed one:
// executable content declared as anything but a program or octet-stream; a
// different major type where both are definite (image/png that is really
// application/zip); or, within a major type, two types mimetype knows that
// are not one a refinement of the other (application/pdf that is really
// application/zip; application/zip for a docx is fine, a docx is a zip).
// Text is never contradicted (sniffing text is too fuzzy), nor are images,
// audio or video among themselves, nor Office formats among themselves
// (xlsx sent as application/vnd.ms-excel is common).
func typeMismatch(declared, detected string, executable bool) bool {
	if executable && !executableDeclared(declared) {
		return true
	}
	if genericTypes[detected] || genericTypes[declared] {
		return false
	}
	dm, _, _ := strings.Cut(declared, "/")
	sm, _, _ := strings.Cut(detected, "/")
	if dm == "multipart" || dm == "message" {
		return false
	}
	if sm == "text" || dm == "text" {
		return false
	}
	if dm != sm {
		return true
	}
	if dm != "application" {
		return false // a gif sent as image/jpeg is shown as what it is
	}
	if isOffice(declared) && isOffice(detected) {
		return false
	}
	d, s := mimetype.Lookup(declared), mimetype.Lookup(detected)
	if d == nil || s == nil {
		return false // a type mimetype does not know: no opinion
	}
	return !refines(d, s) && !refines(s, d)
}

// refines reports whether m is anc or one of its descendants in mimetype's
// tree (docx refines zip).
func refines(m, anc *mimetype.MIME) bool {
	for x := m; x != nil; x = x.Parent() {
		if x == anc {
			return true
		}
	}
	return false
}

func isOffice(t string) bool {
	return strings.HasPrefix(t, "application/vnd.ms-") || strings.HasPrefix(t, "application/vnd.openxmlformats-") ||
		t == "application/msword" || t == "application/x-ole-storage" || t == "application/vnd.oasis.opendocument.text"
}
