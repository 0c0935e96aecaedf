package mcpserver

import (
	"context"
	"log/slog"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// logging logs every request the server receives, at debug: the method,
// the tool for tools/call, how long it took and whether it failed.
func logging(log *slog.Logger) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			start := time.Now()
			res, err := next(ctx, method, req)
			if !log.Enabled(ctx, slog.LevelDebug) {
				return res, err
			}
			attrs := []any{"method", method, "duration", time.Since(start)}
			if p, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok && p != nil {
				attrs = append(attrs, "tool", p.Name)
			}
			if r, ok := res.(*mcp.CallToolResult); ok && r != nil && r.IsError {
				attrs = append(attrs, "tool_error", true)
			}
			if err != nil {
				attrs = append(attrs, "err", err)
			}
			log.DebugContext(ctx, "mcp request", attrs...)
			return res, err
		}
	}
}

// quieter logs through h with every record below warn demoted to debug:
// the SDK reports each stateless request's session connecting and
// disconnecting at info, which is noise at gavel's default level.
type quieter struct{ h slog.Handler }

func (q quieter) Enabled(ctx context.Context, l slog.Level) bool {
	return q.h.Enabled(ctx, demote(l))
}

func (q quieter) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return q.h.Handle(ctx, r)
}

func (q quieter) WithAttrs(as []slog.Attr) slog.Handler { return quieter{q.h.WithAttrs(as)} }
func (q quieter) WithGroup(name string) slog.Handler    { return quieter{q.h.WithGroup(name)} }

func demote(l slog.Level) slog.Level {
	if l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}
