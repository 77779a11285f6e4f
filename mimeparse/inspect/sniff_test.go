package inspect

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/gabriel-vasile/mimetype"
)

// sniffSeeds are text heads where a check of mimetype looks past the first
// lines: each must take sniffType's long way or agree on the short one.
func sniffSeeds() []string {
	prose := strings.Repeat("the quarterly report is attached as agreed\r\n", 20)
	return []string{
		prose,
		"hello there\n" + strings.Repeat("a,b,c\n", 100),
		"a,b,c\n" + strings.Repeat("1,2,3\n", 200),
		"a\tb\n" + strings.Repeat("1\t2\n", 300),
		"\"quoted, header\nline\"\n" + prose,
		"Subject: hi\n" + prose + "From: x\n",
		"note\n" + prose + "%PDF-1.7\n",
		strings.Repeat("x", 400) + "\n%PDF-1.4\n" + prose,
		"1\n00:00:01,000 --> 00:00:02,000\nhi\n\n" + prose,
		"0 HEAD\n" + prose + "1 GEDC\n",
		"1\n2\n3\n" + prose + "{\"a\":1}\n",
		"true\n" + prose,
		"#!/bin/sh\n" + prose,
		"\xef\xbb\xbfplain with bom\n" + prose,
		"plain\n" + prose + "\xff\xfb\x90\x00",
		"<html><body>" + prose,
		"{\"a\": \"" + prose + "\"}",
		strings.Repeat("y", 600) + "\n" + prose,
		"From someone\n" + prose,
		"Forward to nobody\n" + prose,
		"<!DOCTYPE html>\n<html><body>" + prose + "</body></html>",
		"<HTML>" + prose + "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
		"<!doctype html>" + strings.Repeat("<p>x</p>", 100) + "%PDF-1.3",
		"<!-- " + prose + " -->\n<svg xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>",
		"<html>" + prose + "\xff\xfb\x90\x00",
	}
}

// FuzzSniffType: the short way of sniffType gives what mimetype gives for
// the whole head.
func FuzzSniffType(f *testing.F) {
	for _, s := range sniffSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		head = head[:min(len(head), headMax)]
		want := baseType(mimetype.Detect(head).String())
		if got := sniffType(head, "text/plain"); got != want {
			t.Fatalf("%q: sniffType %q, mimetype %q", head, got, want)
		}
	})
}

// TestSniffTypeAgrees: the seeds, and random texts built from lines that
// come close to mimetype's text checks, sniff as mimetype sniffs them.
func TestSniffTypeAgrees(t *testing.T) {
	lines := []string{"the report is attached", "a,b,c", "1,2,3", "x\ty", "Subject: hello", "From: a@b", "Subject: ", "To: ", "x:y",
		"\"quoted", "end\"", "{\"k\": 1}", "[1,2]", "1", "00:00:01,000 --> 00:00:02,000", "0 HEAD", "1 GEDC",
		"%PDF-1.5", "<svg>", "<!DOCTYPE html>", "<html>", "<!-- c -->", "<?xml version=\"1.0\"?>",
		"<svg xmlns=\"http://www.w3.org/2000/svg\">", "<p>some <b>bold</b> text</p>", "BEGIN:VCARD", "WEBVTT", "", "   ", "true", "null", "#!/usr/bin/env python", "Message-ID: <a@b>"}
	short, n := 0, 0
	check := func(c string) {
		n++
		head := []byte(c)[:min(len(c), headMax)]
		want := baseType(mimetype.Detect(head).String())
		if got := sniffType(head, "text/plain"); got != want {
			t.Fatalf("%q: sniffType %q, mimetype %q", head, got, want)
		}
		if _, e := textPrefix(head, "text/plain"); e != "" {
			short++
		}
	}
	for _, c := range sniffSeeds() {
		check(c)
	}
	// One text at a time: TestZipManyEntries's child starts with this
	// process's resident memory counted in its peak.
	r := rand.New(rand.NewSource(1))
	var b strings.Builder
	for i := 0; i < 20000; i++ {
		b.Reset()
		switch i % 3 {
		case 0:
			b.WriteString("the report is attached\n") // a first line that leaves the short way open
		case 1:
			b.WriteString([]string{"<!DOCTYPE html>", "<html>", "<HTML lang=en>"}[r.Intn(3)])
		}
		for b.Len() < 600+r.Intn(2500) {
			b.WriteString(lines[r.Intn(len(lines))])
			if r.Intn(4) == 0 {
				b.WriteString(" and more words to make the line longer")
			}
			b.WriteString([]string{"\n", "\r\n"}[r.Intn(2)])
		}
		check(b.String())
	}
	if _, e := textPrefix([]byte(sniffSeeds()[0]), "text/plain"); e != "text/plain" {
		t.Error("plain prose does not take the short way")
	}
	if _, e := textPrefix([]byte(sniffSeeds()[0]), "application/octet-stream"); e != "" {
		t.Error("a part not declared text/* takes the short way")
	}
	t.Logf("%d texts, %d took the short way", n, short)
}

// TestHasNotPlainByte: the word-at-a-time test finds each byte the table
// names, at every offset, and nothing else.
func TestHasNotPlainByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		for off := 0; off < 20; off++ {
			b := []byte(strings.Repeat("a\r\n\tb", 4))
			b[off] = byte(c)
			if got := hasNotPlainByte(b); got != notPlainByte[c] {
				t.Fatalf("byte %#x at %d: %v, want %v", c, off, got, notPlainByte[c])
			}
		}
	}
}
