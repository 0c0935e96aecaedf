package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gavel-dev/gavel/api/internal/reply"
	"github.com/gavel-dev/gavel/xds/ports"
)

// maxPortsBody bounds a port discovery request body.
const maxPortsBody = 64 << 10

// instanceJSON is an instance as the port discovery API shows it.
type instanceJSON struct {
	Service   string            `json:"service"`
	ID        string            `json:"id"`
	Address   string            `json:"address"`
	Port      int               `json:"port"`
	Labels    map[string]string `json:"labels,omitempty"`
	TTL       string            `json:"ttl"`
	ExpiresAt time.Time         `json:"expires_at"`
}

type serviceJSON struct {
	Name      string         `json:"name"`
	Instances []instanceJSON `json:"instances"`
}

type registerBody struct {
	Address string            `json:"address"`
	Port    int               `json:"port"`
	Labels  map[string]string `json:"labels"`
	TTL     string            `json:"ttl"`
}

type renewBody struct {
	TTL string `json:"ttl"`
}

func toJSON(in ports.Instance) instanceJSON {
	return instanceJSON{Service: in.Service, ID: in.ID, Address: in.Address, Port: in.Port,
		Labels: in.Labels, TTL: in.TTL.String(), ExpiresAt: in.Expires.UTC()}
}

// mountPorts mounts the port discovery REST API on mux.
func mountPorts(mux *http.ServeMux, log *slog.Logger, reg ports.Registry) {
	mux.Handle("POST /v1/services/{name}/instances", handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var body registerBody
		if err := decodeBody(w, r, &body); err != nil {
			return err
		}
		ttl, err := parseTTL(body.TTL)
		if err != nil {
			return err
		}
		inst, err := reg.Register(r.Context(), ports.Request{Service: r.PathValue("name"), Address: body.Address,
			Port: body.Port, Labels: body.Labels, TTL: ttl})
		if err != nil {
			return portsError(err)
		}
		reply.JSON(w, http.StatusCreated, toJSON(inst))
		return nil
	}))
	mux.Handle("PUT /v1/services/{name}/instances/{id}", handle(log, func(w http.ResponseWriter, r *http.Request) error {
		var body renewBody
		if err := decodeBody(w, r, &body); err != nil {
			return err
		}
		ttl, err := parseTTL(body.TTL)
		if err != nil {
			return err
		}
		inst, err := reg.Renew(r.Context(), r.PathValue("name"), r.PathValue("id"), ttl)
		if err != nil {
			return portsError(err)
		}
		reply.JSON(w, http.StatusOK, toJSON(inst))
		return nil
	}))
	mux.Handle("DELETE /v1/services/{name}/instances/{id}", handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if err := reg.Release(r.Context(), r.PathValue("name"), r.PathValue("id")); err != nil {
			return portsError(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("GET /v1/services", handle(log, func(w http.ResponseWriter, r *http.Request) error {
		svcs, err := listServices(r, reg)
		if err != nil {
			return err
		}
		reply.JSON(w, http.StatusOK, map[string][]serviceJSON{"services": svcs})
		return nil
	}))
	mux.Handle("GET /v1/services/{name}", handle(log, func(w http.ResponseWriter, r *http.Request) error {
		svcs, err := listServices(r, reg)
		if err != nil {
			return err
		}
		name := r.PathValue("name")
		for _, s := range svcs {
			if s.Name == name {
				reply.JSON(w, http.StatusOK, s)
				return nil
			}
		}
		return &Error{Code: http.StatusNotFound, Message: fmt.Sprintf("service %q has no live instances", name)}
	}))
}

// listServices groups the registry's instances (sorted by service) by
// service.
func listServices(r *http.Request, reg ports.Registry) ([]serviceJSON, error) {
	list, err := reg.List(r.Context())
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	svcs := []serviceJSON{}
	for _, in := range list {
		if n := len(svcs); n == 0 || svcs[n-1].Name != in.Service {
			svcs = append(svcs, serviceJSON{Name: in.Service})
		}
		s := &svcs[len(svcs)-1]
		s.Instances = append(s.Instances, toJSON(in))
	}
	return svcs, nil
}

// decodeBody reads one JSON object of at most maxPortsBody bytes into v,
// rejecting unknown fields. An empty body leaves v as it is.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPortsBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return &Error{Code: http.StatusBadRequest, Message: "request body: more than one JSON value"}
		}
		if _, err = dec.Token(); err != io.EOF {
			return &Error{Code: http.StatusBadRequest, Message: "request body: more than one JSON value"}
		}
		return nil
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &tooBig):
		return &Error{Code: http.StatusBadRequest, Message: fmt.Sprintf("request body is over %d KiB", maxPortsBody>>10)}
	}
	return &Error{Code: http.StatusBadRequest, Message: "request body is not valid JSON: " + jsonProblem(err)}
}

// jsonProblem says what was wrong with a JSON body without Go type names.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a %s", te.Field, jsonKind(te.Type.Kind().String()))
	case errors.As(err, &se):
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return err.Error() // "json: unknown field \"x\""
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64":
		return "number"
	case "map", "struct":
		return "object"
	}
	return k
}

func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, &Error{Code: http.StatusBadRequest, Message: fmt.Sprintf("ttl %q: want a positive duration such as \"30s\" or \"5m\"", s)}
	}
	return d, nil
}

// portsError maps a registry error to its status code. The registry's
// messages name the service, port or lease and nothing internal.
func portsError(err error) error {
	code := 0
	switch {
	case errors.Is(err, ports.ErrBadService), errors.Is(err, ports.ErrBadPort),
		errors.Is(err, ports.ErrBadAddress), errors.Is(err, ports.ErrBadTTL):
		code = http.StatusBadRequest
	case errors.Is(err, ports.ErrPortTaken):
		code = http.StatusConflict
	case errors.Is(err, ports.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ports.ErrNoFreePort):
		return &Error{Code: http.StatusServiceUnavailable, Message: err.Error(), Err: err}
	default:
		return err
	}
	return &Error{Code: code, Message: err.Error()}
}
