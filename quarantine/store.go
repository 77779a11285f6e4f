package quarantine

import (
	"encoding/json"
	"errors"
	"fmt"
	"mailgate/internal/fsync"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Event is one quarantine event record as stored, with its file name.
type Event struct {
	Record
	File string `json:"file"` // <sha256>.<unix-nanoseconds>.json
}

// Release is the record of one `mailgate quarantine release`.
type Release struct {
	Time     time.Time `json:"time"`
	SHA256   string    `json:"sha256"`
	From     string    `json:"from"`
	Rcpts    []string  `json:"rcpts"`
	Upstream string    `json:"upstream"`
	Reply    string    `json:"reply"`
}

// Message is one held message: its content file and every record naming
// it.
type Message struct {
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size"`
	Events   []Event   `json:"events"`
	Releases []Release `json:"releases,omitempty"`
}

// Last returns the newest event (the envelope release uses).
func (m *Message) Last() *Event {
	if len(m.Events) == 0 {
		return nil
	}
	return &m.Events[len(m.Events)-1]
}

// Path returns the file holding the message's bytes.
func Path(dir, sum string) string { return filepath.Join(dir, sum+".eml") }

// isHash reports whether s is 64 lower-case hex digits.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	return isHex(s)
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// List reads the store: every message with its events, oldest event
// first, messages ordered by their newest event. Files that are not the
// store's (temp files, other names) are ignored; an unreadable record is
// an error naming it.
func List(dir string) ([]*Message, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	by := map[string]*Message{}
	get := func(sum string) *Message {
		m := by[sum]
		if m == nil {
			m = &Message{SHA256: sum}
			by[sum] = m
		}
		return m
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		sum, rest, ok := strings.Cut(name, ".")
		if !ok || !isHash(sum) {
			continue
		}
		switch {
		case rest == "eml":
			m := get(sum)
			if fi, err := e.Info(); err == nil {
				m.Size = fi.Size()
			}
		case strings.HasSuffix(rest, ".release.json"):
			var rel Release
			if err := readJSON(filepath.Join(dir, name), &rel); err != nil {
				errs = append(errs, err)
				continue
			}
			m := get(sum)
			m.Releases = append(m.Releases, rel)
		case strings.HasSuffix(rest, ".json"):
			if _, err := strconv.ParseInt(strings.TrimSuffix(rest, ".json"), 10, 64); err != nil {
				continue
			}
			var ev Event
			if err := readJSON(filepath.Join(dir, name), &ev.Record); err != nil {
				errs = append(errs, err)
				continue
			}
			ev.File = name
			m := get(sum)
			m.Events = append(m.Events, ev)
		}
	}
	out := make([]*Message, 0, len(by))
	for _, m := range by {
		sort.Slice(m.Events, func(i, j int) bool { return m.Events[i].File < m.Events[j].File })
		sort.Slice(m.Releases, func(i, j int) bool { return m.Releases[i].Time.Before(m.Releases[j].Time) })
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		ti, tj := out[i].newest(), out[j].newest()
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return out[i].SHA256 < out[j].SHA256
	})
	return out, errors.Join(errs...)
}

func (m *Message) newest() time.Time {
	if e := m.Last(); e != nil {
		return e.Time
	}
	return time.Time{}
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("quarantine: %s: %w", path, err)
	}
	return nil
}

// MinPrefix is the shortest hash prefix Find accepts.
const MinPrefix = 8

// Find returns the message whose hash is id, or starts with id when id is
// a prefix of at least MinPrefix hex digits that names exactly one
// message. Anything else is refused with an error saying why.
func Find(dir, id string) (*Message, error) {
	id = strings.ToLower(id)
	if !isHex(id) || len(id) > 64 {
		return nil, fmt.Errorf("quarantine: %q is not a SHA-256 hash or a prefix of one (hex digits)", id)
	}
	if len(id) < MinPrefix {
		return nil, fmt.Errorf("quarantine: %q is too short: give the full hash or at least %d hex digits", id, MinPrefix)
	}
	msgs, err := List(dir)
	if err != nil && msgs == nil {
		return nil, err
	}
	var found []*Message
	for _, m := range msgs {
		if strings.HasPrefix(m.SHA256, id) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("quarantine: no message %s in %s", id, dir)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("quarantine: prefix %s names %d messages: give more digits", id, len(found))
}

// Delete removes the message and every record naming it, content last,
// so that an interrupted delete leaves no record without its message.
func Delete(dir string, m *Message) error {
	var errs []error
	for _, e := range m.Events {
		if err := os.Remove(filepath.Join(dir, e.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), m.SHA256+".") && strings.HasSuffix(e.Name(), ".release.json") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(Path(dir, m.SHA256)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := fsync.Dir(dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("quarantine: deleting %s: %w", m.SHA256, err)
	}
	return nil
}

// Expire deletes the messages whose newest event is older than now-age
// and returns them.
func Expire(dir string, age time.Duration, now time.Time) ([]*Message, error) {
	msgs, err := List(dir)
	if err != nil {
		return nil, err
	}
	var gone []*Message
	var errs []error
	for _, m := range msgs {
		if len(m.Events) == 0 || !m.newest().Before(now.Add(-age)) {
			continue
		}
		if err := Delete(dir, m); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, m)
	}
	return gone, errors.Join(errs...)
}

// RecordRelease stores the record of a release beside the message's
// events, as DIR/<sha256>.<unix-nanoseconds>.release.json.
func RecordRelease(dir string, rel Release) error {
	js, err := json.MarshalIndent(rel, "", "  ")
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	name := filepath.Join(dir, fmt.Sprintf("%s.%d.release.json", rel.SHA256, rel.Time.UnixNano()))
	if err := writeSynced(name, strings.NewReader(string(js)+"\n")); err != nil {
		return err
	}
	if err := fsync.Dir(dir); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	return nil
}
