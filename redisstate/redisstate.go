// Package redisstate keeps rate() counts and greylisting triples in Redis,
// so that every mailgate sharing the Redis agrees on them (two MX hosts, a
// pool behind a load balancer): config `state: {redis: URL}`,
// docs/DESIGN.md "Wave 2 contract". Without it, rules.State, the
// in-process LRU, is used.
//
// Each operation is one Lua script, atomic on the server whatever the
// number of instances: rate() counts in a small hash of time buckets, the
// same buckets as rules.State (rules.RateBuckets), so Redis and the
// in-process LRU give the same counts; a greylisting triple is first seen
// with SET NX and a TTL. Time is the Redis
// server's (TIME), so instances with skewed clocks still agree. Keys are
// "mailgate:" plus a hash of what the policy built them from (an attacker
// chooses those strings: the hash keeps them short, printable and unable
// to collide with other keys), and every key has a TTL.
//
// When Redis cannot answer, the operations fail with an error wrapping
// rules.ErrState: the rules that read the state tempfail, never pass, and
// Errors counts the failures. go-redis reconnects by itself, so the next
// operation after Redis is back works, without a restart.
package redisstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"mailgate/rules"
)

// Bounds and lifetimes of what is kept in Redis.
const (
	// KeyPrefix starts every key mailgate writes.
	KeyPrefix = "mailgate:"
	// GreylistPendingTTL is how long a deferred triple waits for its retry
	// (a retry later than this is a first attempt again).
	GreylistPendingTTL = 48 * time.Hour
	// GreylistPassedTTL is how long a triple that passed is remembered
	// (refreshed at each message), as rules.State does.
	GreylistPassedTTL = 36 * 24 * time.Hour
	// DefaultTimeout bounds one operation (dial, command, reply) when the
	// URL does not set dial_timeout, read_timeout or write_timeout.
	DefaultTimeout = time.Second
)

// rateScriptSrc counts one hit of KEYS[1], a hash from bucket number (time
// in µs divided by the bucket width, ARGV[1], rules.RateBucketWidth) to
// hits, and returns the hits of the current bucket and the
// rules.RateBuckets-1 before it, as rules.State does. Fields outside those
// buckets are deleted (older ones no longer count; newer ones only exist if
// the server's clock went back), so the hash holds at most
// rules.RateBuckets fields; the key expires ARGV[2] ms after its last hit.
// NOW is replaced by the time source: the server's clock (TIME), or the
// tests' (ARGV[3]). Numbers are formatted with %d: Lua's tostring would
// round a time in µs to 14 digits.
const rateScriptSrc = `
if redis.replicate_commands then redis.replicate_commands() end
local now = NOW
local cur = math.floor(now / tonumber(ARGV[1]))
local oldest = cur - (BUCKETS - 1)
local n = 0
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  local b = tonumber(h[i])
  if b == nil or b < oldest or b > cur then
    redis.call('HDEL', KEYS[1], h[i])
  elseif b ~= cur then
    n = n + tonumber(h[i + 1])
  end
end
n = n + redis.call('HINCRBY', KEYS[1], string.format('%d', cur), 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
`

var rateScript = newRateScript(`(function() local t = redis.call('TIME') return tonumber(t[1]) * 1000000 + tonumber(t[2]) end)()`)

func newRateScript(now string) *redis.Script {
	return redis.NewScript(strings.NewReplacer("NOW", now, "BUCKETS", strconv.Itoa(rules.RateBuckets)).Replace(rateScriptSrc))
}

// greyScript: KEYS[1] the triple; ARGV delay, pending TTL, passed TTL (ms).
// The value is the first attempt's time (ms) or "pass". Returns 1 to defer.
var greyScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local delay, pending, passed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('SET', KEYS[1], now, 'NX', 'PX', pending) then
  return 1
end
local v = redis.call('GET', KEYS[1])
if v == 'pass' then
  redis.call('PEXPIRE', KEYS[1], passed)
  return 0
end
local first = tonumber(v)
if not first then
  redis.call('SET', KEYS[1], now, 'PX', pending)
  return 1
end
if now - first >= delay then
  redis.call('SET', KEYS[1], 'pass', 'PX', passed)
  return 0
end
return 1
`)

// Store is a rules.Store in Redis. It is safe for concurrent use.
type Store struct {
	c       *redis.Client
	timeout time.Duration
	errs    atomic.Int64

	// The tests' clock (export_test.go): rate() then counts at now()
	// instead of the server's TIME.
	rate *redis.Script
	now  func() time.Time
}

var _ rules.Store = (*Store)(nil)

// New connects lazily to the Redis of rawURL (redis://[user:pass@]host:port/db,
// rediss:// for TLS, unix:///path?db=N; go-redis query options such as
// dial_timeout, read_timeout, pool_size apply).
func New(rawURL string) (*Store, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("state.redis: %v", err)
	}
	q := url.Values{}
	if u, err := url.Parse(rawURL); err == nil {
		q = u.Query()
	}
	// Fail fast: a Redis that does not answer must not hold a session for
	// go-redis's default 5 s dial and 3 retries.
	if !q.Has("dial_timeout") {
		opts.DialTimeout = DefaultTimeout
	}
	if !q.Has("read_timeout") {
		opts.ReadTimeout = DefaultTimeout
	}
	if !q.Has("write_timeout") {
		opts.WriteTimeout = DefaultTimeout
	}
	if !q.Has("max_retries") {
		opts.MaxRetries = 1
	}
	return &Store{
		c:       redis.NewClient(opts),
		timeout: 2*opts.DialTimeout + opts.ReadTimeout + opts.WriteTimeout,
		rate:    rateScript,
	}, nil
}

// Key returns the Redis key of a policy-built string in a namespace
// ("r" rate, "g" greylist): the prefix and 128 bits of its SHA-256.
func Key(ns, s string) string {
	h := sha256.Sum256([]byte(s))
	return KeyPrefix + ns + ":" + hex.EncodeToString(h[:16])
}

// Rate implements rules.Store.
func (s *Store) Rate(key string, window time.Duration) (int, error) {
	if window <= 0 {
		return 1, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	args := []any{rules.RateBucketWidth(window), window.Milliseconds() + 1000}
	if s.now != nil {
		args = append(args, s.now().UnixMicro())
	}
	n, err := s.rate.Run(ctx, s.c, []string{Key("r", window.String()+"\x00"+key)}, args...).Int()
	if err != nil {
		return 0, s.fail("rate", err)
	}
	return n, nil
}

// Greylist implements rules.Store; key is rules.GreylistKey's.
func (s *Store) Greylist(key string, delay time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	n, err := greyScript.Run(ctx, s.c, []string{Key("g", key)},
		delay.Milliseconds(), GreylistPendingTTL.Milliseconds(), GreylistPassedTTL.Milliseconds()).Int()
	if err != nil {
		return false, s.fail("greylist", err)
	}
	return n == 1, nil
}

func (s *Store) fail(op string, err error) error {
	s.errs.Add(1)
	return fmt.Errorf("%w: redis %s: %v", rules.ErrState, op, err)
}

// Errors returns how many operations failed since New (the proxy's
// mailgate_state_errors_total).
func (s *Store) Errors() int64 { return s.errs.Load() }

// Ping checks that Redis answers (serve logs it at start; a Redis down at
// start is not fatal: the rules that read the state tempfail until it is
// back).
func (s *Store) Ping(ctx context.Context) error {
	return s.c.Ping(ctx).Err()
}

// Close closes the connections.
func (s *Store) Close() error { return s.c.Close() }

// CheckURL reports whether rawURL is a Redis URL New accepts (config
// validation; nothing is dialled).
func CheckURL(rawURL string) error {
	if _, err := redis.ParseURL(rawURL); err != nil {
		return err
	}
	return nil
}

// LogTo sends go-redis's own messages (reconnects, pool failures) to l at
// warning level instead of the standard logger. go-redis has one logger
// per process: serve calls this once.
func LogTo(l *slog.Logger) { redis.SetLogger(slogAdapter{l}) }

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(ctx context.Context, format string, v ...any) {
	a.l.WarnContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
