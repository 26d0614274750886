// Package metrics defines the Prometheus collectors shared by the receiver,
// the writer and the publisher. Labels carry trigger refs and outcomes only,
// never a key, secret or client address.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one registry and its collectors. Create one per gateway so that
// tests running several gateways in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry

	Requests           *prometheus.CounterVec   // trigger, outcome
	RequestDuration    *prometheus.HistogramVec // outcome
	AuditDropped       prometheus.Counter
	AuditAggregated    prometheus.Counter
	WriteQueue         prometheus.GaugeFunc
	WriteQueueCapacity prometheus.Gauge
	BatchSize          prometheus.Histogram
	BatchDuration      prometheus.Histogram
	BatchErrors        prometheus.Counter
	Published          prometheus.Counter
	PublishErrors      prometheus.Counter
	PublishLag         prometheus.Histogram
	OutboxBacklog      prometheus.Gauge
	OutboxOldest       prometheus.Gauge
	PayloadOmitted     prometheus.Counter
	SetAsideTotal      prometheus.Counter
	SetAside           prometheus.Gauge
	DependencyUp       *prometheus.GaugeVec // dependency

	DeliveryAttempts  *prometheus.CounterVec   // destination, result
	DeliveryDuration  *prometheus.HistogramVec // destination
	DeliveriesPending *prometheus.GaugeVec     // destination
	DeliveryOldest    *prometheus.GaugeVec     // destination
	DeliveriesFailed  *prometheus.CounterVec   // destination
	CircuitOpen       *prometheus.GaugeVec     // destination

	TriggerHealth *prometheus.GaugeVec // trigger, status

	RetentionDeleted *prometheus.CounterVec // table
}

// New registers the collectors, plus Go and process collectors, on a fresh
// registry. queued reports the write queue's length.
func New(queued func() float64) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inlet_webhook_requests_total",
			Help: "Requests to the webhook receiver by trigger ref (\"unknown\" for unknown keys) and outcome.",
		}, []string{"trigger", "outcome"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "inlet_webhook_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by outcome.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		AuditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inlet_audit_dropped_total",
			Help: "Audit records lost: not written and not counted in an aggregated row.",
		}),
		AuditAggregated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inlet_audit_aggregated_total",
			Help: "Requests recorded inside an aggregated audit row (count > 1) during a flood of identical rejections.",
		}),
		WriteQueueCapacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "inlet_write_queue_capacity",
			Help: "Length of the write queue; when inlet_write_queue_length reaches it, requests are shed with 503.",
		}),
		WriteQueue: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "inlet_write_queue_length",
			Help: "Records waiting for the group-commit writer.",
		}, queued),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "inlet_write_batch_size",
			Help:    "Records per group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		BatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "inlet_write_batch_duration_seconds",
			Help:    "Time to write and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		BatchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inlet_write_batch_errors_total",
			Help: "Batches whose transaction failed.",
		}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inlet_events_published_total",
			Help: "Events acknowledged by JetStream.",
		}),
		PublishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inlet_publish_errors_total",
			Help: "Publish attempts that failed and will be retried.",
		}),
		PublishLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "inlet_publish_lag_seconds",
			Help:    "Time from an event's arrival to its acknowledgement by JetStream.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 120, 600},
		}),
		OutboxBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "inlet_outbox_backlog",
			Help: "Stored events not yet published.",
		}),
		OutboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "inlet_outbox_oldest_age_seconds",
			Help: "Age of the oldest unpublished event, 0 when none.",
		}),
		PayloadOmitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inlet_events_payload_omitted_total",
			Help: "Events published with a null payload because they exceed the NATS server's max_payload.",
		}),
		SetAsideTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inlet_publish_set_aside_total",
			Help: "Events set aside because NATS refused them for a reason retrying cannot fix.",
		}),
		SetAside: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "inlet_publish_set_aside",
			Help: "Events currently set aside, waiting for an operator.",
		}),
		DependencyUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "inlet_dependency_up",
			Help: "Whether a dependency answered its last readiness check (1) or not (0).",
		}, []string{"dependency"}),
		DeliveryAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inlet_delivery_attempts_total",
			Help: "Attempts to deliver events to destinations, by destination id and result (success, failure, timeout, refused).",
		}, []string{"destination", "result"}),
		DeliveryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "inlet_delivery_attempt_duration_seconds",
			Help:    "Time an attempt took, from the request to the end of the answer read.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"destination"}),
		DeliveriesPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "inlet_deliveries_pending",
			Help: "Deliveries not yet succeeded or failed, by destination.",
		}, []string{"destination"}),
		DeliveryOldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "inlet_delivery_oldest_pending_age_seconds",
			Help: "Age of the oldest pending delivery, by destination.",
		}, []string{"destination"}),
		DeliveriesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inlet_deliveries_failed_total",
			Help: "Deliveries that failed after their last scheduled retry, by destination.",
		}, []string{"destination"}),
		CircuitOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "inlet_destination_circuit_open",
			Help: "1 while a destination's circuit breaker holds attempts.",
		}, []string{"destination"}),
		TriggerHealth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "inlet_trigger_health",
			Help: "A trigger's webhook health: 1 for its status (ok, failing, idle or disabled), 0 for the others; every instance reports the same.",
		}, []string{"trigger", "status"}),
		RetentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "inlet_retention_deleted_total",
			Help: "Rows deleted by retention on this instance, by table (events, deliveries, delivery_attempts, audit_log, usage_minutes).",
		}, []string{"table"}),
	}
	r.MustRegister(m.Requests, m.RequestDuration, m.AuditDropped, m.AuditAggregated, m.WriteQueue, m.WriteQueueCapacity, m.BatchSize, m.BatchDuration,
		m.BatchErrors, m.Published, m.PublishErrors, m.PublishLag, m.OutboxBacklog, m.OutboxOldest,
		m.PayloadOmitted, m.SetAsideTotal, m.SetAside, m.DependencyUp,
		m.DeliveryAttempts, m.DeliveryDuration, m.DeliveriesPending, m.DeliveryOldest, m.DeliveriesFailed, m.CircuitOpen,
		m.TriggerHealth, m.RetentionDeleted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
