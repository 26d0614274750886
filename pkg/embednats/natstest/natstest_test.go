package natstest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestNew(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var first Env
	t.Run("use", func(t *testing.T) {
		env := New(t)
		first = env
		other := New(t)
		if env.Stream == other.Stream || env.SubjectPrefix == other.SubjectPrefix {
			t.Errorf("two Envs share names: %+v and %+v", env, other)
		}
		js := connect(t, env.URL)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name:     env.Stream,
			Subjects: []string{env.SubjectPrefix + ".>"},
		}); err != nil {
			t.Fatalf("CreateStream: %v", err)
		}
		for range 2 {
			if _, err := js.Publish(ctx, env.SubjectPrefix+".push", []byte("{}"), jetstream.WithMsgID("evt_1")); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		}
		st, err := js.Stream(ctx, env.Stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 1 {
			t.Errorf("stream holds %d messages, want 1", info.State.Msgs)
		}
	})
	t.Logf("NATS server: %s", first.URL)
	if sharedURL == "" {
		return // the embedded server is gone with its stream
	}
	js := connect(t, first.URL)
	if _, err := js.Stream(ctx, first.Stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream %s after cleanup: err = %v, want ErrStreamNotFound", first.Stream, err)
	}
}

func TestChooseServer(t *testing.T) {
	tests := []struct {
		name  string
		url   string
		probe string
		want  string
	}{
		{"explicit URL wins", "nats://example.invalid:4222", "nats://127.0.0.1:1", "nats://example.invalid:4222"},
		{"nothing answers", "", "nats://127.0.0.1:1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("INLET_TEST_NATS_URL", tt.url)
			t.Setenv("INLET_TEST_NATS_PROBE", tt.probe)
			if got := chooseServer(); got != tt.want {
				t.Errorf("chooseServer() = %q, want %q", got, tt.want)
			}
		})
	}
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
