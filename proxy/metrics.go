package proxy

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"mailgate/clamd"
	"mailgate/internal/buildinfo"
	"mailgate/rules"
)

// metrics are the proxy's Prometheus metrics, registered on a registry of
// its own so that several servers (tests) do not collide. Names follow
// mailgate_<subsystem>_<thing>_<unit>; labels are closed sets (docs/DEVELOPING.md
// rule 16): command verbs, reply codes, verdicts, stages, rule names of the
// loaded policies.
type metrics struct {
	reg             *prometheus.Registry
	panics          prometheus.Counter
	connections     *prometheus.CounterVec // result: accepted, refused
	sessionsActive  prometheus.Gauge
	replies         *prometheus.CounterVec // code
	commandDuration *prometheus.HistogramVec
	transactions    *prometheus.CounterVec // verdict
	ruleHits        *prometheus.CounterVec // rule, action
	ruleErrors      prometheus.Counter
	stageDuration   *prometheus.HistogramVec // stage
	messageSize     prometheus.Histogram
	upstreamErrors  prometheus.Counter
	// upstreamNoXclient counts upstream sessions opened without XCLIENT
	// although xclient is on.
	upstreamNoXclient prometheus.Counter
	reloads           *prometheus.CounterVec // result: ok, failed
	reloadOK          prometheus.Gauge
	reloadOKTime      prometheus.Gauge
	buildInfo         *prometheus.GaugeVec
	// stateErrors counts rule evaluations that failed because the shared
	// state (Redis) behind rate() or greylisting could not answer.
	stateErrors       prometheus.Counter
	virusScans        *prometheus.CounterVec // outcome: clean, found, error, too-big
	virusScanDuration prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailgate_panics_total",
		Help: "Panics recovered in sessions."})
	m.connections = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_smtp_connections_total",
		Help: "Client connections, by result (accepted, refused by the connection limit)."}, []string{"result"})
	m.sessionsActive = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mailgate_smtp_sessions_active",
		Help: "Client sessions in progress."})
	m.replies = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_smtp_replies_total",
		Help: "Replies sent to clients, by code."}, []string{"code"})
	m.commandDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailgate_smtp_command_duration_seconds",
		Help: "Time to handle a client command, upstream round trips included.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)},
		[]string{"cmd", "code", "ecode"})
	m.transactions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_smtp_transactions_total",
		Help: "Finished mail transactions, by verdict."}, []string{"verdict"})
	m.ruleHits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_rule_hits_total",
		Help: "Rules that matched, by rule and the verdict's action."}, []string{"rule", "action"})
	m.ruleErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailgate_rule_errors_total",
		Help: "Rule runtime errors (handled as rule_error says)."})
	m.stageDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailgate_policy_eval_duration_seconds",
		Help: "Policy evaluation time by stage.", Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10)}, []string{"stage"})
	m.messageSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailgate_smtp_message_size_bytes",
		Help: "Sizes of messages received.", Buckets: prometheus.ExponentialBuckets(1024, 4, 10)})
	m.upstreamErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailgate_upstream_errors_total",
		Help: "upstream.Upstream connection and protocol failures."})
	m.upstreamNoXclient = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailgate_upstream_xclient_unavailable_total",
		Help: "upstream.Upstream sessions opened without XCLIENT although xclient is on: the upstream's own checks saw mailgate's address."})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_config_reloads_total",
		Help: "Configuration reloads, by result."}, []string{"result"})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mailgate_config_last_reload_success",
		Help: "1 if the last configuration load (at start or on SIGHUP) succeeded, 0 if it failed."})
	m.reloadOKTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mailgate_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration load."})
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailgate_build_info",
		Help: "Always 1; the labels give the version of mailgate (module build information) and of Go."}, []string{"version", "goversion"})
	m.buildInfo.WithLabelValues(buildinfo.Version(), buildinfo.GoVersion()).Set(1)
	m.reg.MustRegister(m.reloadOK, m.reloadOKTime, m.buildInfo)
	m.stateErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailgate_state_errors_total",
		Help: "Rules that could not read the shared state (state.redis down or too slow): their command was tempfailed."})
	m.virusScans = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailgate_virus_scans_total",
		Help: "clamd scans, by outcome (clean, found, error, too-big: larger than clamd.max_size, not sent)."}, []string{"outcome"})
	m.virusScanDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailgate_virus_scan_duration_seconds",
		Help: "Time of one clamd scan, connect to reply.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)})
	m.reg.MustRegister(m.stateErrors, m.virusScans, m.virusScanDuration)
	m.reg.MustRegister(m.panics, m.connections, m.sessionsActive, m.replies, m.commandDuration, m.transactions,
		m.ruleHits, m.ruleErrors, m.stageDuration, m.messageSize, m.upstreamErrors, m.upstreamNoXclient, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// reloadSuccess records the outcome of a configuration load.
func (m *metrics) reloadSuccess(ok bool, now time.Time) {
	if !ok {
		m.reloadOK.Set(0)
		return
	}
	m.reloadOK.Set(1)
	m.reloadOKTime.Set(float64(now.UnixNano()) / 1e9)
}

// observeVerdict counts the rules a stage's verdict names.
func (m *metrics) observeVerdict(stage rules.Stage, v rules.Verdict, d time.Duration) {
	m.stageDuration.WithLabelValues(stage.String()).Observe(d.Seconds())
	for _, r := range v.Rules {
		action := string(rules.ActionContinue)
		if r == v.Rule {
			action = string(v.Action)
		}
		m.ruleHits.WithLabelValues(r, action).Inc()
	}
	for _, err := range v.Errors {
		if errors.Is(err, rules.ErrState) {
			m.stateErrors.Inc()
		}
	}
	for _, r := range v.Monitor {
		m.ruleHits.WithLabelValues(r, "monitor").Inc()
	}
	if len(v.Errors) > 0 {
		m.ruleErrors.Add(float64(len(v.Errors)))
	}
}

// observeScan counts one clamd scan (clamd.Enricher.Observe).
func (m *metrics) observeScan(outcome string, d time.Duration) {
	m.virusScans.WithLabelValues(outcome).Inc()
	if outcome != clamd.OutcomeTooBig && outcome != clamd.OutcomeSkipped {
		m.virusScanDuration.Observe(d.Seconds())
	}
}
