package rules

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Store is what rate() and greylisting remember between messages. State
// (this file), the in-process LRU, is the default; package redisstate
// keeps it in Redis, shared by every mailgate of a deployment (config
// `state: {redis: URL}`, docs/DESIGN.md "Wave 2 contract"). A Store is used
// by every session at once: it must be safe for concurrent use.
//
// An error means the store could not answer (Redis down, timeout): the
// rule that read it fails, and the evaluation tempfails whatever
// rule_error says (never pass on a count or a triple nobody checked).
// Errors should wrap ErrState.
type Store interface {
	// Rate records one hit of key and returns how many hits the key had
	// within window, this one included.
	Rate(key string, window time.Duration) (int, error)
	// Greylist records an attempt of the triple key (GreylistKey) and
	// reports whether it must be deferred: first attempt, or a retry
	// before delay has passed since the first.
	Greylist(key string, delay time.Duration) (deferred bool, err error)
}

// ErrState is wrapped by the errors of a Store that could not answer.
var ErrState = errors.New("policy state unavailable")

// GreylistKey is the key of a greylisting triple: the client's network
// (clientNet), the sender and the recipient, lower case, NUL-separated.
func GreylistKey(clientIP, from, rcpt string) string {
	return clientNet(clientIP) + "\x00" + strings.ToLower(from) + "\x00" + strings.ToLower(rcpt)
}

// State holds the bounded caches behind rate() and greylist. One per
// process; it survives policy reloads. Memory is bounded by size entries per
// cache whatever the traffic (hashicorp/golang-lru/v2 expirable caches: a
// bounded LRU with a TTL is exactly what both need, and hand-written
// eviction would be the bug farm).
type State struct {
	now func() time.Time

	mu    sync.Mutex // guards the values stored in the caches
	rates *expirable.LRU[string, *rateCounter]
	grey  *expirable.LRU[string, *greyEntry]
}

// RateBuckets is the resolution of rate(): a window is counted in this many
// buckets of RateBucketWidth, so a hit stops counting between
// window-window/RateBuckets and window after it, never later.
const RateBuckets = 16

// RateBucketWidth is the width of one bucket of window, in microseconds (at
// least 1); buckets start at its multiples since the Unix epoch. The count
// at a time is the sum of the current bucket and the RateBuckets-1 before
// it. Package redisstate counts with the same buckets in Redis, so both
// stores give the same counts for the same hits at the same times.
func RateBucketWidth(window time.Duration) int64 {
	w := window.Microseconds() / RateBuckets
	if w <= 0 {
		w = 1
	}
	return w
}

// rateCounter counts hits of one key in one window, in RateBuckets buckets.
type rateCounter struct {
	start [RateBuckets]int64 // bucket start (unix microseconds, multiple of the bucket width)
	n     [RateBuckets]int32
}

// greyEntry is one client-network/sender/recipient triple.
type greyEntry struct {
	first  time.Time // first attempt
	passed bool      // a retry came after the delay
}

const (
	rateTTL     = 25 * time.Hour      // longest useful rate window, plus slack
	greylistTTL = 36 * 24 * time.Hour // how long a passed (or pending) triple is remembered
	// DefaultStateSize is the entry bound of each of State's caches when
	// NewState is given size <= 0.
	DefaultStateSize = 100000
)

// NewState returns the caches behind rate() and greylist, each bounded to
// size entries. now==nil → time.Now.
func NewState(size int, now func() time.Time) *State {
	if size <= 0 {
		size = DefaultStateSize
	}
	if now == nil {
		now = time.Now
	}
	return &State{
		now:   now,
		rates: expirable.NewLRU[string, *rateCounter](size, nil, rateTTL),
		grey:  expirable.NewLRU[string, *greyEntry](size, nil, greylistTTL),
	}
}

// Rate implements Store; the in-process State never fails.
func (s *State) Rate(key string, window time.Duration) (int, error) {
	return s.rate(key, window), nil
}

// Greylist implements Store; the in-process State never fails.
func (s *State) Greylist(key string, delay time.Duration) (bool, error) {
	return s.greylist(key, delay), nil
}

// rate records one hit of key in window and returns how many hits the key
// had within the window, this one included.
func (s *State) rate(key string, window time.Duration) int {
	if window <= 0 {
		return 1
	}
	width := RateBucketWidth(window)
	now := s.now().UnixMicro()
	cur := now - now%width
	oldest := cur - int64(RateBuckets-1)*width // buckets before this are outside the window
	ck := window.String() + "\x00" + key
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.rates.Get(ck)
	if !ok {
		c = new(rateCounter)
		s.rates.Add(ck, c)
	}
	i := (cur / width) % RateBuckets
	if c.start[i] != cur {
		c.start[i], c.n[i] = cur, 0
	}
	c.n[i]++
	total := 0
	for j := range c.start {
		if c.start[j] >= oldest && c.start[j] <= cur {
			total += int(c.n[j])
		}
	}
	return total
}

// greylist decides one triple: it returns true when the attempt must be
// deferred (first attempt, or a retry before delay has passed).
func (s *State) greylist(key string, delay time.Duration) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.grey.Get(key)
	if !ok {
		s.grey.Add(key, &greyEntry{first: now})
		return true
	}
	if e.passed {
		s.grey.Add(key, e) // refresh the TTL
		return false
	}
	if now.Sub(e.first) >= delay {
		e.passed = true
		s.grey.Add(key, e)
		return false
	}
	return true
}

// clientNet is the greylisting network of a client: its /24 (IPv4) or /64
// (IPv6), so a sender's pool of outgoing servers counts as one client.
func clientNet(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ip
	}
	return p.String()
}
