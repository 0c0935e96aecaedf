package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is an event stream on a loopback HTTP server.
type testServer struct {
	*Server
	bus     store.Bus
	metrics *Metrics
	url     string
}

func newTestServer(t *testing.T, bus store.Bus, opts Options) *testServer {
	t.Helper()
	if bus == nil {
		bus = store.NewMemoryBus(0)
	}
	opts.Bus = bus
	opts.Metrics = NewMetrics(prometheus.NewRegistry())
	srv := Handler(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return &testServer{Server: srv, bus: bus, metrics: opts.Metrics, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
}

func (s *testServer) dial(t *testing.T, query string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(t.Context(), s.url+"/?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// waitUntil polls cond, state the test cannot be told about by a channel
// (a metric, the bus's subscriber count), until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSubscribers waits until the bus has n subscribers: a client's
// stream starts when its subscription does, after the upgrade.
func (s *testServer) waitSubscribers(t *testing.T, n int) {
	t.Helper()
	mb := s.bus.(*store.MemoryBus)
	waitUntil(t, fmt.Sprintf("%d subscribers", n), func() bool { return mb.Subscribers() == n })
}

func (s *testServer) disconnects(reason string) float64 {
	return testutil.ToFloat64(s.metrics.disconnects.WithLabelValues(reason))
}

func readEvent(t *testing.T, c *websocket.Conn) store.Event {
	t.Helper()
	typ, b, err := c.Read(t.Context())
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("message type %v, want text", typ)
	}
	var e store.Event
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("message %s: %v", b, err)
	}
	return e
}

// eventID is the id in an event's data.
func eventID(t *testing.T, e store.Event) string {
	t.Helper()
	var v struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatal(err)
	}
	return v.ID
}

func otherEvent(typ, id string) store.Event {
	return store.Event{Type: typ, Time: time.Now().UTC(), Replica: "r1", Data: json.RawMessage(`{"id":"` + id + `"}`)}
}

func TestEventStreamOrderAndFilters(t *testing.T) {
	rec := func(id, source, outcome string, rules ...string) store.Event {
		return decisionEvent(t, policy.Record{ID: id, Time: time.Now().UTC(), Source: source, Outcome: outcome, RuleIDs: rules, Principal: "p-" + source})
	}
	published := []store.Event{
		rec("d1", "hook", "deny", "shell.rm-home"),
		otherEvent(store.EventActivation, "a1"),
		rec("d2", "envoy", "allow"),
		otherEvent(store.EventBreaker, "b1"),
		rec("d3", "mcp", "ask", "git.force-push"),
		otherEvent(store.EventRegistration, "g1"),
		rec("d4", "hook", "allow", "shell.rm-home", "x"),
		rec("d5", "validate", "deny", "secret.private-key"),
	}
	end := rec("end", "hook", "deny", "shell.rm-home")
	for _, tc := range []struct {
		query string
		want  []string
		end   store.Event // the filter lets it through (default: end)
	}{
		{query: "", want: []string{"d1", "a1", "d2", "b1", "d3", "g1", "d4", "d5"}},
		{query: "type=decision", want: []string{"d1", "d2", "d3", "d4", "d5"}},
		{query: "type=activation,breaker", want: []string{"a1", "b1"}, end: otherEvent(store.EventBreaker, "end")},
		{query: "type=registration&type=activation", want: []string{"a1", "g1"}, end: otherEvent(store.EventActivation, "end")},
		{query: "source=hook", want: []string{"d1", "d4"}},
		{query: "outcome=deny", want: []string{"d1", "d5"}},
		{query: "outcome=allow&source=hook", want: []string{"d4"}, end: rec("end", "hook", "allow")},
		{query: "rule=shell.rm-home", want: []string{"d1", "d4"}},
		{query: "rule=git.force-push,secret.private-key", want: []string{"d3", "d5"}, end: rec("end", "hook", "deny", "git.force-push")},
		{query: "principal=p-envoy", want: []string{"d2"}, end: rec("end", "envoy", "deny")},
		{query: "type=decision,breaker&source=mcp", want: []string{"b1", "d3"}, end: rec("end", "mcp", "deny")},
	} {
		t.Run(tc.query, func(t *testing.T) {
			s := newTestServer(t, nil, Options{})
			c := s.dial(t, tc.query)
			s.waitSubscribers(t, 1)
			if tc.end.Type == "" {
				tc.end = end
			}
			for _, e := range append(published, tc.end) {
				if err := s.bus.Publish(t.Context(), e); err != nil {
					t.Fatal(err)
				}
			}
			// The last event passes the filter: what the client read
			// before it is everything it was sent.
			var got []string
			for {
				e := readEvent(t, c)
				if e.Replica != "r1" || e.Time.IsZero() {
					t.Fatalf("event %+v: want its replica and time", e)
				}
				id := eventID(t, e)
				if id == "end" {
					break
				}
				got = append(got, id)
				if len(got) > len(published) {
					t.Fatalf("got %v", got)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// bigEvent is a decision whose data is about 16 KiB, to fill a socket.
func bigEvent(t *testing.T, i int) store.Event {
	return decisionEvent(t, policy.Record{ID: fmt.Sprint(i), Source: "hook", Outcome: "allow", Resource: strings.Repeat("x", 16<<10)})
}

// A client that stops reading is disconnected with the lagged close
// reason once its queue overflows, while a client on the same bus that
// keeps reading receives every event.
func TestEventStreamSlowClientLagged(t *testing.T) {
	s := newTestServer(t, store.NewMemoryBus(1<<16), Options{SendBuffer: 8, WriteTimeout: time.Minute, PingInterval: time.Hour})
	slow := s.dial(t, "")
	fast := s.dial(t, "")
	s.waitSubscribers(t, 2)

	// Publish in step with the fast client, so that only the slow one can
	// fall behind, until the slow one has.
	n := 0
	for ; s.disconnects(ReasonLagged) == 0; n++ {
		if n == 20000 {
			t.Fatal("the slow client was never disconnected")
		}
		if err := s.bus.Publish(t.Context(), bigEvent(t, n)); err != nil {
			t.Fatal(err)
		}
		if id := eventID(t, readEvent(t, fast)); id != fmt.Sprint(n) {
			t.Fatalf("fast client: event %s, want %d", id, n)
		}
	}
	for i := n; i < n+10; i++ { // the fast client is unaffected
		if err := s.bus.Publish(t.Context(), bigEvent(t, i)); err != nil {
			t.Fatal(err)
		}
		if id := eventID(t, readEvent(t, fast)); id != fmt.Sprint(i) {
			t.Fatalf("fast client after the slow one lagged: event %s, want %d", id, i)
		}
	}

	// The slow client reads again: what was sent, in order, then the close.
	got := 0
	for {
		_, b, err := slow.Read(t.Context())
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != CloseLagged || ce.Reason != CloseReasonLagged {
				t.Fatalf("slow client after %d events: %v, want close %d %q", got, err, CloseLagged, CloseReasonLagged)
			}
			break
		}
		var e store.Event
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		if id := eventID(t, e); id != fmt.Sprint(got) {
			t.Fatalf("slow client: event %s, want %d", id, got)
		}
		got++
	}
	if got >= n {
		t.Fatalf("slow client read %d of %d events: it did not fall behind", got, n)
	}
	t.Logf("slow client fell behind after %d of %d events", got, n)
	waitUntil(t, "the slow connection to end", func() bool { return testutil.ToFloat64(s.metrics.connections) == 1 })
	if s.disconnects(ReasonLagged) != 1 || s.disconnects(ReasonError) != 0 {
		t.Fatalf("disconnects lagged %v error %v, want 1 and 0", s.disconnects(ReasonLagged), s.disconnects(ReasonError))
	}
}

// A write blocked longer than WriteTimeout ends the connection as lagged.
func TestEventStreamWriteTimeout(t *testing.T) {
	s := newTestServer(t, store.NewMemoryBus(1<<16), Options{SendBuffer: 1 << 16, WriteTimeout: 100 * time.Millisecond, PingInterval: time.Hour})
	_ = s.dial(t, "") // never reads
	s.waitSubscribers(t, 1)
	for n := 0; s.disconnects(ReasonLagged) == 0; n++ {
		if n == 1<<16 {
			t.Fatal("the connection was never disconnected")
		}
		if err := s.bus.Publish(t.Context(), bigEvent(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the connection to end", func() bool { return testutil.ToFloat64(s.metrics.connections) == 0 })
}

// fakeBus hands out subscriptions the test ends.
type fakeBus struct{ subs chan *fakeSub }

func (b *fakeBus) Publish(context.Context, store.Event) error { return nil }

func (b *fakeBus) Subscribe(context.Context) store.Subscription {
	s := &fakeSub{ch: make(chan store.Event, 1)}
	b.subs <- s
	return s
}

type fakeSub struct {
	ch   chan store.Event
	mu   sync.Mutex
	err  error
	once sync.Once
}

func (s *fakeSub) Events() <-chan store.Event { return s.ch }

func (s *fakeSub) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *fakeSub) Close() { s.fail(nil) }

func (s *fakeSub) fail(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.ch)
	})
}

// A subscription the bus ends is told to the client: lagged (1008) when
// the bus dropped it, try again later (1013) when the bus failed.
func TestEventStreamBusEndsSubscription(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   websocket.StatusCode
		reason string
		metric string
	}{
		{store.ErrLagged, CloseLagged, CloseReasonLagged, ReasonLagged},
		{errors.New("redis: connection refused"), CloseBusError, CloseReasonBusError, ReasonError},
	} {
		t.Run(tc.metric, func(t *testing.T) {
			bus := &fakeBus{subs: make(chan *fakeSub, 1)}
			s := newTestServer(t, bus, Options{})
			c := s.dial(t, "")
			sub := <-bus.subs
			sub.ch <- otherEvent(store.EventBreaker, "b1")
			if id := eventID(t, readEvent(t, c)); id != "b1" {
				t.Fatalf("event %s", id)
			}
			sub.fail(tc.err)
			_, _, err := c.Read(t.Context())
			if got := websocket.CloseStatus(err); got != tc.code || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("read: %v (status %d), want close %d %q", err, got, tc.code, tc.reason)
			}
			waitUntil(t, "the connection to end", func() bool { return testutil.ToFloat64(s.metrics.connections) == 0 })
			if s.disconnects(tc.metric) != 1 {
				t.Fatalf("disconnects{%s} = %v, want 1", tc.metric, s.disconnects(tc.metric))
			}
		})
	}
}

// Bad filters are refused before the upgrade, with 400 naming the
// parameter.
func TestEventStreamBadFilter(t *testing.T) {
	s := newTestServer(t, nil, Options{})
	for _, tc := range []struct{ query, param string }{
		{"type=decisions", "type"},
		{"source=nginx", "source"},
		{"outcome=yes", "outcome"},
		{"rule=", "rule"},
		{"principal=a&&principal=", "principal"},
		{"entry=", "entry"},
		{"verbose=1", "verbose"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, resp, err := websocket.Dial(t.Context(), s.url+"/?"+tc.query, nil)
			if err == nil || resp == nil {
				t.Fatalf("dial: %v, want a refusal", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.param) {
				t.Fatalf("%d %s, want 400 naming %s", resp.StatusCode, body, tc.param)
			}
		})
	}
	if testutil.ToFloat64(s.metrics.connections) != 0 {
		t.Fatal("a refused request was counted as a connection")
	}
}

// The connection gauge follows clients in and out; clients that close
// are counted as such.
func TestEventStreamConnectionGauge(t *testing.T) {
	s := newTestServer(t, nil, Options{})
	var conns []*websocket.Conn
	for i := 1; i <= 3; i++ {
		conns = append(conns, s.dial(t, ""))
		waitUntil(t, fmt.Sprintf("the gauge to reach %d", i), func() bool { return testutil.ToFloat64(s.metrics.connections) == float64(i) })
	}
	for _, c := range conns {
		if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the gauge to fall to 0", func() bool { return testutil.ToFloat64(s.metrics.connections) == 0 })
	s.waitSubscribers(t, 0)
	if s.disconnects(ReasonClient) != 3 {
		t.Fatalf("disconnects{client} = %v, want 3", s.disconnects(ReasonClient))
	}
}

// Pings keep a reading client connected and end one whose peer no longer
// answers (this client never reads, so it never answers a ping).
func TestEventStreamPingDetectsDeadPeer(t *testing.T) {
	s := newTestServer(t, nil, Options{PingInterval: 50 * time.Millisecond})
	live := s.dial(t, "")
	s.waitSubscribers(t, 1)
	_ = s.dial(t, "") // dead
	s.waitSubscribers(t, 2)
	got := make(chan store.Event, 1)
	go func() {
		_, b, err := live.Read(context.Background())
		var e store.Event
		if err == nil {
			_ = json.Unmarshal(b, &e)
		}
		got <- e
	}()
	waitUntil(t, "the dead peer to be dropped", func() bool { return s.disconnects(ReasonError) == 1 })
	waitUntil(t, "the gauge to fall to 1", func() bool { return testutil.ToFloat64(s.metrics.connections) == 1 })
	if err := s.bus.Publish(t.Context(), otherEvent(store.EventBreaker, "b1")); err != nil {
		t.Fatal(err)
	}
	if e := <-got; e.Type != store.EventBreaker {
		t.Fatalf("live client: %+v, want the event after several pings", e)
	}
}

// Shutdown closes every connection with 1001 and refuses new ones.
func TestEventStreamShutdown(t *testing.T) {
	s := newTestServer(t, nil, Options{})
	a, b := s.dial(t, "type=decision"), s.dial(t, "")
	s.waitSubscribers(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	for _, c := range []*websocket.Conn{a, b} {
		_, _, err := c.Read(t.Context())
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != CloseReasonShutdown {
			t.Fatalf("read: %v, want close 1001 %q", err, CloseReasonShutdown)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if s.disconnects(ReasonShutdown) != 2 || testutil.ToFloat64(s.metrics.connections) != 0 {
		t.Fatalf("disconnects{shutdown} %v, gauge %v", s.disconnects(ReasonShutdown), testutil.ToFloat64(s.metrics.connections))
	}
	_, resp, err := websocket.Dial(t.Context(), s.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after shutdown: %v %v, want 503", resp, err)
	}
	resp.Body.Close()
}
