package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// eventRow is what tables show of an event.
type eventRow struct {
	ID         string    `json:"id"`
	TriggerRef string    `json:"trigger_ref"`
	Source     string    `json:"source"`
	ReceivedAt time.Time `json:"received_at"`
	Metadata   struct {
		DeliveryID string `json:"delivery_id"`
	} `json:"metadata"`
}

func (ev eventRow) cells() []string {
	return []string{ev.ID, ev.TriggerRef, when(&ev.ReceivedAt), ev.Source, ev.Metadata.DeliveryID}
}

var eventHeader = []string{"ID", "TRIGGER", "RECEIVED", "SOURCE", "DELIVERY ID"}

// Polling of 'events -follow': how often, and how late after its
// received_at an event may still become visible (the receiver answers
// within its write timeout, 30s by default) and be printed.
const (
	followInterval = time.Second
	followLag      = time.Minute
	followPage     = 200
)

func eventsCmd(ctx context.Context, args []string, e env) error {
	var ref string
	var limit int
	var follow bool
	c, _, err := e.connect(remoteCmd{
		name: "events", synopsis: "inlet events [-trigger REF] [-limit N] [-follow] [-json]",
		about: "Lists stored events, newest first: id, trigger, when received, source (webhook\n" +
			"or replay) and the sender's delivery id. -json prints the API's list, payloads\n" +
			"included.\n\n" +
			"-follow prints the latest -limit events oldest first, then asks inlet every\n" +
			"second for new ones and prints them as they arrive, until interrupted\n" +
			"(Ctrl-C; the exit status is then 0). With -json it prints one event a line.\n" +
			"While inlet cannot be reached it says so on stderr and keeps asking.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ref, "trigger", "", "only the events of the trigger with this `ref`")
			fs.IntVar(&limit, "limit", 20, "how many events, 1 to 1000")
			fs.BoolVar(&follow, "follow", false, "then print new events as they arrive, until interrupted")
		},
	}, args)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 1000 {
		return usagef("-limit must be between 1 and 1000, got %d", limit)
	}
	if follow {
		return c.followEvents(ctx, ref, limit)
	}
	a, err := c.do(ctx, "GET", eventsPath(ref, limit, ""), nil)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(a.Data)
	}
	var evs []eventRow
	if err := decode(a, &evs); err != nil {
		return err
	}
	tw := newTable(c.stdout)
	row(tw, eventHeader...)
	for _, ev := range evs {
		row(tw, ev.cells()...)
	}
	return tw.Flush()
}

func eventsPath(ref string, limit int, cursor string) string {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if ref != "" {
		q.Set("trigger", ref)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return "/api/v1/events?" + q.Encode()
}

// polledEvent is an event with its JSON as the API sent it.
type polledEvent struct {
	eventRow
	raw json.RawMessage
}

// eventPage returns one page of events, newest first, and the next cursor.
func (c *client) eventPage(ctx context.Context, ref string, limit int, cursor string) ([]polledEvent, string, error) {
	a, err := c.do(ctx, "GET", eventsPath(ref, limit, cursor), nil)
	if err != nil {
		return nil, "", err
	}
	var raws []json.RawMessage
	if err := decode(a, &raws); err != nil {
		return nil, "", err
	}
	evs := make([]polledEvent, len(raws))
	for i, r := range raws {
		evs[i].raw = r
		if err := json.Unmarshal(r, &evs[i].eventRow); err != nil {
			return nil, "", fmt.Errorf("read the API's answer: %w", err)
		}
	}
	next := ""
	if a.NextCursor != nil {
		next = *a.NextCursor
	}
	return evs, next, nil
}

// eventFollower remembers which events 'events -follow' has handled.
// Events are listed by received_at, which is set before the event commits,
// so a new event may appear behind ones already seen: every poll reads
// back to the horizon, followLag before the newest event seen, and prints
// what it has not seen yet.
type eventFollower struct {
	c       *client
	ref     string
	seen    map[string]time.Time
	horizon time.Time // events received before it count as handled
	newest  time.Time
	width   int // of the trigger column
}

// poll reads events newest first back to the horizon and returns those
// not seen before, oldest first. The first poll sets the horizon from the
// newest event and returns only the newest limit events.
func (f *eventFollower) poll(ctx context.Context, limit int, first bool) ([]polledEvent, error) {
	var fresh []polledEvent
	cursor := ""
	size := followPage
	if first {
		size = limit
	}
	for {
		evs, next, err := f.c.eventPage(ctx, f.ref, size, cursor)
		if err != nil {
			return nil, err
		}
		if first && len(evs) > 0 && f.newest.IsZero() {
			f.horizon = evs[0].ReceivedAt.Add(-followLag)
		}
		done := next == ""
		for _, ev := range evs {
			if ev.ReceivedAt.Before(f.horizon) {
				done = true
				break
			}
			if _, ok := f.seen[ev.ID]; ok {
				continue
			}
			f.seen[ev.ID] = ev.ReceivedAt
			if ev.ReceivedAt.After(f.newest) {
				f.newest = ev.ReceivedAt
			}
			if !first || len(fresh) < limit {
				fresh = append(fresh, ev)
			}
		}
		if done {
			break
		}
		cursor, size = next, followPage
	}
	if h := f.newest.Add(-followLag); h.After(f.horizon) {
		f.horizon = h
	}
	for id, at := range f.seen {
		if at.Before(f.horizon) {
			delete(f.seen, id)
		}
	}
	slices.SortFunc(fresh, func(a, b polledEvent) int {
		return cmp.Or(a.ReceivedAt.Compare(b.ReceivedAt), cmp.Compare(a.ID, b.ID))
	})
	return fresh, nil
}

// print writes events as JSON lines or as rows under the header.
func (f *eventFollower) print(evs []polledEvent) error {
	for _, ev := range evs {
		var err error
		if f.c.asJSON {
			_, err = fmt.Fprintf(f.c.stdout, "%s\n", ev.raw)
		} else {
			f.width = max(f.width, len(ev.TriggerRef))
			err = f.line(ev.cells())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// line writes one row with fixed column widths, since rows come one by one.
func (f *eventFollower) line(cells []string) error {
	for i := range cells {
		cells[i] = cell(cells[i])
	}
	_, err := fmt.Fprintf(f.c.stdout, "%-30s  %-*s  %-20s  %-7s  %s\n", cells[0], f.width, cells[1], cells[2], cells[3], cells[4])
	return err
}

// followEvents is 'events -follow': it returns nil when ctx is cancelled,
// an error when inlet refuses (4xx) or is not reached at the first poll.
func (c *client) followEvents(ctx context.Context, ref string, limit int) error {
	f := &eventFollower{c: c, ref: ref, seen: map[string]time.Time{}, width: max(26, len(ref))}
	evs, err := f.poll(ctx, limit, true)
	if err != nil {
		return err
	}
	if !c.asJSON {
		for _, ev := range evs {
			f.width = max(f.width, len(ev.TriggerRef))
		}
		if err := f.line(slices.Clone(eventHeader)); err != nil {
			return err
		}
	}
	if err := f.print(evs); err != nil {
		return err
	}
	lost := false
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		evs, err := f.poll(ctx, limit, false)
		var ue *unreachableError
		var ae *apiError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ue) || (errors.As(err, &ae) && ae.Status >= 500):
			if !lost {
				fmt.Fprintf(c.stderr, "%v; asking again every %v\n", err, followInterval)
				lost = true
			}
			continue
		case err != nil:
			return err
		}
		if lost {
			fmt.Fprintf(c.stderr, "reached inlet at %s again\n", c.base.Redacted())
			lost = false
		}
		if err := f.print(evs); err != nil {
			return err
		}
	}
}

func replayCmd(ctx context.Context, args []string, e env) error {
	var ref, since, until string
	var limit int
	const synopsis = "inlet replay EVENT_ID | inlet replay -trigger REF -since T [-until T] [-limit N]"
	c, ops, err := e.connect(remoteCmd{
		name: "replay", synopsis: synopsis + " [-json]",
		about: "Stores an event again as a new event (source replay, metadata.replay_of the\n" +
			"original), published and delivered like any other. With EVENT_ID it replays\n" +
			"that event and prints the new event's id on stdout. With -trigger and -since it\n" +
			"replays the trigger's events received in [since, until), oldest first, and prints\n" +
			"the new ids, one a line. T is an RFC 3339 time (2026-11-28T10:00:00Z) or a\n" +
			"duration ago (90m, 2h, 1d).",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ref, "trigger", "", "replay the events of the trigger with this `ref`")
			fs.StringVar(&since, "since", "", "the first `time` to replay (RFC 3339, or a duration ago)")
			fs.StringVar(&until, "until", "", "replay events received before this `time` (default: now, on inlet's clock)")
			fs.IntVar(&limit, "limit", 0, "replay at most `N` events (default the API's, 1000)")
		},
		maxArgs: 1,
	}, args)
	if err != nil {
		return err
	}
	if len(ops) == 1 {
		if ref != "" || since != "" || until != "" || limit != 0 {
			return usagef("give an EVENT_ID or -trigger with -since, not both; usage: %s", synopsis)
		}
		a, err := c.do(ctx, "POST", "/api/v1/events/"+url.PathEscape(ops[0])+"/replay", nil)
		if err != nil {
			return err
		}
		if c.asJSON {
			return c.printJSON(a.Data)
		}
		var ev eventRow
		if err := decode(a, &ev); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "replayed %s as a new event of %s:\n", ops[0], ev.TriggerRef)
		fmt.Fprintln(c.stdout, ev.ID)
		return nil
	}
	if ref == "" || since == "" {
		return usagef("replay needs an EVENT_ID, or -trigger and -since; usage: %s", synopsis)
	}
	now := time.Now()
	from, err := parseTime(since, now)
	if err != nil {
		return usagef("-since: %v", err)
	}
	if limit < 0 {
		return usagef("-limit must be positive, got %d", limit)
	}
	body := map[string]any{"trigger": ref, "since": from.UTC().Format(time.RFC3339Nano)}
	span := "since " + when(&from)
	if until != "" {
		to, err := parseTime(until, now)
		if err != nil {
			return usagef("-until: %v", err)
		}
		body["until"] = to.UTC().Format(time.RFC3339Nano)
		span = "from " + when(&from) + " to " + when(&to)
	}
	if limit > 0 {
		body["limit"] = limit
	}
	a, err := c.do(ctx, "POST", "/api/v1/events/replay", body)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(a.Data)
	}
	var r struct {
		Replayed int      `json:"replayed"`
		EventIDs []string `json:"event_ids"`
	}
	if err := decode(a, &r); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "replayed %d events of %s received %s; the new ids:\n", r.Replayed, ref, span)
	for _, id := range r.EventIDs {
		fmt.Fprintln(c.stdout, id)
	}
	return nil
}

// parseTime reads an RFC 3339 time, or a duration before now ("2h", "1d").
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := parseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time such as 2026-11-28T10:00:00Z nor a duration ago such as 2h", s)
}

func activityCmd(ctx context.Context, args []string, e env) error {
	var limit int
	c, _, err := e.connect(remoteCmd{
		name: "activity", synopsis: "inlet activity [-limit N] [-json]",
		about: "Lists the management changes, newest first: when, the name of the token that\n" +
			"made the change, the action, what it was done to, and the fields it changed\n" +
			"(never their values).",
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&limit, "limit", 20, "how many changes, 1 to 1000")
		},
	}, args)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 1000 {
		return usagef("-limit must be between 1 and 1000, got %d", limit)
	}
	a, err := c.do(ctx, "GET", "/api/v1/activity?limit="+strconv.Itoa(limit), nil)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(a.Data)
	}
	var rows []struct {
		At        time.Time `json:"at"`
		TokenName string    `json:"token_name"`
		Action    string    `json:"action"`
		Target    string    `json:"target"`
		Changes   []string  `json:"changes"`
	}
	if err := decode(a, &rows); err != nil {
		return err
	}
	tw := newTable(c.stdout)
	row(tw, "AT", "TOKEN", "ACTION", "TARGET", "CHANGES")
	for _, r := range rows {
		row(tw, when(&r.At), r.TokenName, r.Action, r.Target, strings.Join(r.Changes, ","))
	}
	return tw.Flush()
}
