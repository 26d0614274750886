package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// benchPayload and benchMetadata are the sizes the receiver stores for a
// mapped 1 KB deployment webhook.
var (
	benchPayload  = json.RawMessage(`{"commit":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","environment":"production","pipeline":"https://ci.example.com/pipelines/bench-000-000000001","service":"checkout","status":"succeeded","version":"2.14.0"}`)
	benchMetadata = json.RawMessage(`{"source":"webhook","webhook_key_prefix":"wh_AbCdE","received_at":"2026-11-22T12:00:00.123456Z","source_ip":"127.0.0.1","user_agent":"inlet-bench/1","delivery_id":"bench-000-000000001","headers":{"Content-Type":"application/json","X-Webhook-ID":"bench-000-000000001"}}`)
)

var benchSeq atomic.Int64

func benchRecord(triggerID int64) *store.Record {
	now := event.Time(time.Now())
	ref := "myapp.deployment_complete"
	did := fmt.Sprintf("bench-%d", benchSeq.Add(1))
	ev := &event.Event{
		ID: event.MustNewID(now), TriggerID: triggerID, TriggerRef: ref, Source: event.Source,
		Payload: benchPayload, Metadata: benchMetadata, ReceivedAt: now, DeliveryID: &did,
	}
	return &store.Record{Event: ev, Audit: store.Audit{
		ReceivedAt: now, TriggerID: &triggerID, TriggerRef: &ref, KeyPrefix: "wh_AbCdE",
		SourceIP: "127.0.0.1", UserAgent: "inlet-bench/1", Status: 200, Outcome: "accepted",
		BodySize: 1024, DurationMS: 1.25,
	}}
}

// BenchmarkWriteBatch measures one transaction of n accepted requests:
// events and audit rows. rows/s is events per second.
func BenchmarkWriteBatch(b *testing.B) {
	s := store.New(storetest.New(b), storetest.Keyring())
	ctx := context.Background()
	for _, n := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			recs := make([]*store.Record, n)
			for b.Loop() {
				for i := range recs {
					recs[i] = benchRecord(1)
				}
				if _, err := s.WriteBatch(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkWriter measures the group-commit writer under concurrent
// submitters, as the receiver drives it: each submitter waits for its
// commit before sending the next record.
func BenchmarkWriter(b *testing.B) {
	s := store.New(storetest.New(b), storetest.Keyring())
	for _, submitters := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("submitters=%d", submitters), func(b *testing.B) {
			w := store.NewWriter(s, store.WriterOptions{}, slog.New(slog.DiscardHandler))
			defer w.Close()
			ctx := context.Background()
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range submitters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := w.Submit(ctx, benchRecord(1)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
