package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NewLogger builds the process logger: log/slog, JSON or text. Every
// string value is escaped (escapeLog), so nothing a client sends can forge
// a log line (issue 7: no CR/LF/control injection).
func NewLogger(w io.Writer, format, level string) *slog.Logger {
	lv := new(slog.LevelVar)
	lv.Set(ParseLevel(level))
	return NewLoggerLevel(w, format, lv)
}

// NewLoggerLevel is NewLogger with a level that can change while it runs
// (Options.LogLevel: a reload applies log.level).
func NewLoggerLevel(w io.Writer, format string, lv *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: escapeAttr}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ParseLevel reads log.level (debug, info, warn, error; default info).
func ParseLevel(level string) slog.Level {
	switch level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func escapeAttr(groups []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); needsEscape(s) {
			return slog.String(a.Key, escapeLog(s))
		}
	case slog.KindAny:
		if ss, ok := a.Value.Any().([]string); ok {
			out := make([]string, len(ss))
			for i, s := range ss {
				out[i] = escapeLog(s)
			}
			return slog.Any(a.Key, out)
		}
	}
	return a
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			return true
		}
	}
	return false
}

// escapeLog replaces control characters (C0, DEL, C1, and invalid UTF-8)
// with \xNN or \u{NNNN} escapes; other printable text, UTF-8 included,
// stays as it is.
func escapeLog(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case !unicode.IsPrint(r) && r != ' ':
			fmt.Fprintf(&b, `\u{%x}`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
