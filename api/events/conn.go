package events

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/gavel-dev/gavel/store"
)

// conn is one client of the stream. Four goroutines serve it: serve
// writes, pump moves events from the bus subscription to the send queue,
// read answers control frames (pongs, close) and notices a departed
// client, ping checks that the peer is alive. Whichever learns first why
// the connection must end calls end; the first reason is the one that
// counts, and whoever closes the connection itself calls end before, so a
// read error that follows is not taken for the client leaving.
type conn struct {
	opts     *Options
	shutdown <-chan struct{}
	ws       *websocket.Conn
	filter   Filter

	once    sync.Once
	reason  string // set once, before ended is closed
	ended   chan struct{}
	writing atomic.Bool
}

// end records why the connection ends (the first call wins) and tells
// every goroutine of the connection to stop.
func (c *conn) end(reason string) {
	c.once.Do(func() {
		c.reason = reason
		label := reason
		if reason == reasonBus {
			label = ReasonError
		}
		c.opts.Metrics.disconnects.WithLabelValues(label).Inc()
		close(c.ended)
	})
}

// serve streams sub's events until the connection ends, and closes it
// with the code and reason of why it ended.
func (c *conn) serve(ctx context.Context, sub store.Subscription) {
	queue := make(chan []byte, c.opts.SendBuffer)

	var wg sync.WaitGroup
	wg.Go(func() { c.pump(sub, queue) })
	wg.Go(func() { c.read(ctx) })
	wg.Go(func() { c.ping(ctx) })
	defer wg.Wait()

	c.write(ctx, queue)
	switch c.reason {
	case ReasonLagged:
		_ = c.ws.Close(CloseLagged, CloseReasonLagged)
	case ReasonShutdown:
		_ = c.ws.Close(CloseShutdown, CloseReasonShutdown)
	case reasonBus:
		_ = c.ws.Close(CloseBusError, CloseReasonBusError)
	default:
		_ = c.ws.CloseNow()
	}
}

// reasonBus is a bus failure: counted as an error, closed with 1013.
const reasonBus = "bus"

// write sends queued events until the connection ends. A write that takes
// longer than WriteTimeout ends it as lagged.
func (c *conn) write(ctx context.Context, queue <-chan []byte) {
	for {
		select { // an ended connection sends nothing more, queued or not
		case <-c.ended:
			return
		default:
		}
		var msg []byte
		select {
		case msg = <-queue:
		case <-c.ended:
			return
		case <-c.shutdown:
			c.end(ReasonShutdown)
			return
		}
		wctx, cancel := context.WithCancel(ctx)
		t := time.AfterFunc(c.opts.WriteTimeout, func() {
			c.end(ReasonLagged)
			cancel()
		})
		c.writing.Store(true)
		err := c.ws.Write(wctx, websocket.MessageText, msg)
		c.writing.Store(false)
		t.Stop()
		cancel()
		if err != nil {
			c.end(ReasonError)
			return
		}
		c.opts.Metrics.sent.Inc()
	}
}

// pump filters the subscription's events into the send queue; a full
// queue ends the connection as lagged.
func (c *conn) pump(sub store.Subscription, queue chan<- []byte) {
	for {
		select {
		case <-c.ended:
			return
		case e, ok := <-sub.Events():
			if !ok {
				switch err := sub.Err(); {
				case errors.Is(err, store.ErrLagged):
					c.end(ReasonLagged)
				case errors.Is(err, context.Canceled):
					// the connection is ending; its reason is recorded
				default:
					c.opts.Logger.Warn("event stream subscription ended", "err", err)
					c.end(reasonBus)
				}
				return
			}
			if !c.filter.Match(e) {
				continue
			}
			msg, err := json.Marshal(e)
			if err != nil {
				c.opts.Logger.Warn("event not sent: it does not marshal", "type", e.Type, "err", err)
				continue
			}
			select {
			case queue <- msg:
			default:
				c.end(ReasonLagged)
				return
			}
		}
	}
}

// read discards what the client sends and processes control frames until
// the connection closes; a close it did not start is the client leaving.
func (c *conn) read(ctx context.Context) {
	for {
		if _, _, err := c.ws.Read(ctx); err != nil {
			c.end(ReasonClient)
			return
		}
	}
}

// ping pings the peer every PingInterval; a pong that does not come before
// the next ping is due ends the connection (as lagged when a write is
// holding the connection, else as an error: the peer is gone).
func (c *conn) ping(ctx context.Context) {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ended:
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, c.opts.PingInterval)
		err := c.ws.Ping(pctx)
		cancel()
		if err == nil {
			continue
		}
		select {
		case <-c.ended:
			return
		default:
		}
		if c.writing.Load() {
			c.end(ReasonLagged)
			return // the blocked write ends under its own timeout
		}
		c.end(ReasonError)
		_ = c.ws.CloseNow() // unblock the writer waiting on the queue
		return
	}
}
