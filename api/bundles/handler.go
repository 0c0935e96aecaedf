package bundles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/api/internal/reply"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// DefaultMaxUpload bounds an uploaded tarball (compressed).
const DefaultMaxUpload = 32 << 20

// Options configure [Handler].
type Options struct {
	Store store.Bundles
	Check CheckOptions
	// MaxUpload defaults to DefaultMaxUpload.
	MaxUpload int64
	// Events, when set, receives an activation event.
	Events  store.Bus
	Replica string
	Logger  *slog.Logger
}

// Handler serves the bundle lifecycle below /v1/bundles. It expects an
// authenticator in front (uploads and activations record the principal).
//
//	POST /v1/bundles                        upload a .tar.gz (checked, then stored)
//	GET  /v1/bundles                        history, newest first, and the active revision
//	GET  /v1/bundles/{revision}             one bundle: metadata and files
//	POST /v1/bundles/{revision}/activate    make it the active revision on every replica
//	POST /v1/bundles/rollback               activate the revision active before the current one
//	GET  /v1/bundles/{a}/diff/{b}           unified diff of two revisions
//
// A revision may be given by a unique prefix of at least 6 hex digits.
func Handler(opts Options) http.Handler {
	if opts.MaxUpload <= 0 {
		opts.MaxUpload = DefaultMaxUpload
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &handler{opts}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/bundles", h.upload)
	mux.HandleFunc("GET /v1/bundles", h.list)
	mux.HandleFunc("POST /v1/bundles/rollback", h.rollback)
	mux.HandleFunc("GET /v1/bundles/{revision}", h.get)
	mux.HandleFunc("POST /v1/bundles/{revision}/activate", h.activate)
	mux.HandleFunc("GET /v1/bundles/{a}/diff/{b}", h.diff)
	return mux
}

type handler struct{ opts Options }

// UploadResult answers an upload.
type UploadResult struct {
	Revision string `json:"revision"`
	Created  bool   `json:"created"`
	Tests    int    `json:"tests"`
	Signed   bool   `json:"signed"`
	Files    int    `json:"files"`
}

func (h *handler) upload(w http.ResponseWriter, r *http.Request) {
	source := r.URL.Query().Get("source")
	if source == "" {
		source = "upload"
	}
	body := http.MaxBytesReader(w, r.Body, h.opts.MaxUpload)
	c, err := Check(r.Context(), source, body, h.opts.Check)
	var rej *Rejected
	switch {
	case errors.As(err, &rej):
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) || strings.Contains(err.Error(), "request body too large") {
			reply.JSON(w, http.StatusRequestEntityTooLarge, map[string]any{
				"error": fmt.Sprintf("bundle is over the upload limit of %d bytes", h.opts.MaxUpload)})
			return
		}
		reply.JSON(w, http.StatusUnprocessableEntity, map[string]any{"error": rej.Error(), "problems": rej.Problems})
		return
	case err != nil:
		writeError(w, h.opts.Logger, err)
		return
	}
	var buf bytes.Buffer
	if err := c.Bundle.WriteTarGz(&buf); err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	p, _ := auth.FromContext(r.Context())
	created, err := h.opts.Store.PutBundle(r.Context(), store.Bundle{
		Revision: c.Bundle.Revision, Source: source, Size: buf.Len(), UploadedBy: p.Name,
		UploadedAt: time.Now().UTC(), Signed: c.Signed, Tests: c.Tests, Tarball: buf.Bytes(),
	})
	if err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
		h.opts.Logger.Info("bundle stored", "revision", c.Bundle.Revision, "by", p.Name, "tests", c.Tests, "signed", c.Signed)
	}
	reply.JSON(w, code, UploadResult{Revision: c.Bundle.Revision, Created: created, Tests: c.Tests, Signed: c.Signed, Files: len(c.Bundle.Files)})
}

// List answers GET /v1/bundles.
type List struct {
	Bundles []store.Bundle    `json:"bundles"`
	Active  *store.Activation `json:"active,omitempty"`
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	bs, err := h.opts.Store.ListBundles(r.Context())
	if err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	out := List{Bundles: bs}
	if out.Bundles == nil {
		out.Bundles = []store.Bundle{}
	}
	if a, err := h.opts.Store.Active(r.Context()); err == nil {
		out.Active = &a
	} else if !errors.Is(err, store.ErrNotFound) {
		writeError(w, h.opts.Logger, err)
		return
	}
	reply.JSON(w, http.StatusOK, out)
}

// Detail answers GET /v1/bundles/{revision}.
type Detail struct {
	store.Bundle
	Files []string `json:"files"`
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	b, pb, err := h.load(r.Context(), r.PathValue("revision"))
	if err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	files := make([]string, 0, len(pb.Files))
	for p := range pb.Files {
		files = append(files, p)
	}
	slices.Sort(files)
	reply.JSON(w, http.StatusOK, Detail{Bundle: b, Files: files})
}

func (h *handler) activate(w http.ResponseWriter, r *http.Request) {
	rev, err := h.resolve(r.Context(), r.PathValue("revision"))
	if err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	h.activateRevision(w, r, rev)
}

func (h *handler) activateRevision(w http.ResponseWriter, r *http.Request, rev string) {
	p, _ := auth.FromContext(r.Context())
	a, err := h.opts.Store.Activate(r.Context(), rev, p.Name)
	if err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	h.opts.Logger.Info("bundle activated", "revision", rev, "by", p.Name, "seq", a.Seq)
	if h.opts.Events != nil {
		data, _ := json.Marshal(a)
		_ = h.opts.Events.Publish(r.Context(), store.Event{Type: store.EventActivation, Time: a.At, Replica: h.opts.Replica, Data: data})
	}
	reply.JSON(w, http.StatusOK, a)
}

// rollback activates the revision that was active before the current one.
func (h *handler) rollback(w http.ResponseWriter, r *http.Request) {
	acts, err := h.opts.Store.Activations(r.Context(), 1000)
	if err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	if len(acts) == 0 {
		writeError(w, h.opts.Logger, &apiError{http.StatusConflict, "nothing to roll back: no bundle was ever activated"})
		return
	}
	current := acts[0].Revision
	for _, a := range acts[1:] {
		if a.Revision != current {
			h.activateRevision(w, r, a.Revision)
			return
		}
	}
	writeError(w, h.opts.Logger, &apiError{http.StatusConflict, "nothing to roll back: " + short(current) + " is the only revision ever activated"})
}

func (h *handler) diff(w http.ResponseWriter, r *http.Request) {
	_, a, err := h.load(r.Context(), r.PathValue("a"))
	if err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	_, b, err := h.load(r.Context(), r.PathValue("b"))
	if err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	text, err := Diff(a, b)
	if err != nil {
		writeError(w, h.opts.Logger, err)
		return
	}
	w.Header().Set("Content-Type", "text/x-diff; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(text))
}

// Diff is a unified diff from bundle a to bundle b, file by file in path
// order, with a/ and b/ prefixes as git writes them.
func Diff(a, b *policy.Bundle) (string, error) {
	paths := map[string]bool{}
	for p := range a.Files {
		paths[p] = true
	}
	for p := range b.Files {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	slices.Sort(sorted)
	var out strings.Builder
	for _, p := range sorted {
		before, inA := a.Files[p]
		after, inB := b.Files[p]
		if inA && inB && bytes.Equal(before, after) {
			continue
		}
		from, to := "a"+p, "b"+p
		if !inA {
			from = "/dev/null"
		}
		if !inB {
			to = "/dev/null"
		}
		text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(string(before)), B: difflib.SplitLines(string(after)),
			FromFile: from, ToFile: to, Context: 3,
		})
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "diff --git a%s b%s\n%s", p, p, text)
		if !strings.HasSuffix(text, "\n") {
			out.WriteString("\n")
		}
	}
	return out.String(), nil
}

// resolve expands a revision prefix to the stored revision it names.
func (h *handler) resolve(ctx context.Context, rev string) (string, error) {
	if len(rev) == 64 {
		return rev, nil
	}
	if len(rev) < 6 || strings.Trim(rev, "0123456789abcdef") != "" {
		return "", &apiError{http.StatusBadRequest, fmt.Sprintf("revision %q: give the full sha256 or a prefix of at least 6 hex digits", rev)}
	}
	bs, err := h.opts.Store.ListBundles(ctx)
	if err != nil {
		return "", err
	}
	var match []string
	for _, b := range bs {
		if strings.HasPrefix(b.Revision, rev) {
			match = append(match, b.Revision)
		}
	}
	switch len(match) {
	case 0:
		return "", &apiError{http.StatusNotFound, "no bundle with revision " + rev}
	case 1:
		return match[0], nil
	}
	return "", &apiError{http.StatusConflict, fmt.Sprintf("revision prefix %s is ambiguous: %d bundles match", rev, len(match))}
}

func (h *handler) load(ctx context.Context, rev string) (store.Bundle, *policy.Bundle, error) {
	full, err := h.resolve(ctx, rev)
	if err != nil {
		return store.Bundle{}, nil, err
	}
	b, err := h.opts.Store.Bundle(ctx, full)
	if err != nil {
		return b, nil, err
	}
	pb, err := policy.ReadTarGz(b.Source, bytes.NewReader(b.Tarball), h.opts.Check.Limits)
	if err != nil {
		return b, nil, fmt.Errorf("stored bundle %s unreadable: %w", short(full), err)
	}
	b.Tarball = nil
	return b, pb, nil
}

func short(rev string) string { return rev[:min(12, len(rev))] }

type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		reply.JSON(w, ae.code, map[string]string{"error": ae.msg})
	case errors.Is(err, store.ErrNotFound):
		reply.JSON(w, http.StatusNotFound, map[string]string{"error": "no such bundle"})
	default:
		log.Error("bundle request failed", "err", err)
		reply.JSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
	}
}
