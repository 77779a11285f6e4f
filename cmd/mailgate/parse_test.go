package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runParse([]string{"--json", "../../testdata/mime/rfc822.eml"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		Headers []struct{ Name, Value, Raw string } `json:"headers"`
		Defects []string                            `json:"defects"`
		Parts   []map[string]any                    `json:"parts"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Parts) != 8 || got.Parts[0]["path"] != "0" || got.Parts[5]["filename"] != "inner.exe" ||
		got.Parts[5]["executable"] != true || got.Parts[0]["is_multipart"] != true {
		t.Errorf("parts: %v", got.Parts)
	}
	for _, k := range []string{"path", "content_type", "filename", "ext", "detected_type", "size", "sha256",
		"is_attachment", "executable", "archive", "defects", "is_multipart", "charset", "transfer_encoding",
		"disposition", "names", "header_offset", "body_offset", "end_offset"} {
		if _, ok := got.Parts[5][k]; !ok {
			t.Errorf("part lacks %q", k)
		}
	}
	if len(got.Headers) == 0 || got.Headers[0].Name != "From" || got.Headers[0].Raw != " a@example.org" {
		t.Errorf("headers: %+v", got.Headers)
	}

	out.Reset()
	if code := runParse([]string{"../../testdata/mime/names.eml"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "bidi-control-in-filename") {
		t.Errorf("tree: exit %d\n%s", code, out.String())
	}
	if code := runParse([]string{"/nonexistent.eml"}, &out, &errb); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
	if code := runParse(nil, &out, &errb); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
	if code := runParse([]string{"--bogus", "x"}, &out, &errb); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
}
