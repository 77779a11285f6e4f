package mimeparse

import (
	"strings"
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
// executable content declared as anything but a program or octet-stream, or
// a different major type where both are definite (image/png that is really
// application/zip).
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
	if sm == "text" || dm == "text" { // text sniffing is too fuzzy to contradict
		return false
	}
	return dm != sm
}
