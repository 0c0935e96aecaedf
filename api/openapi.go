package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"sigs.k8s.io/yaml"
)

// openapiYAML is the OpenAPI 3.1 description of the routes New registers,
// written by hand next to them.
//
//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI is the API description (OpenAPI 3.1) as JSON, as GET
// /openapi.json serves it.
func OpenAPI() ([]byte, error) {
	b, err := yaml.YAMLToJSON(openapiYAML)
	if err != nil {
		return nil, fmt.Errorf("convert openapi.yaml to JSON: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, fmt.Errorf("indent the OpenAPI document: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// openapiHandler serves the API description, converted once. A document
// that does not convert (the tests keep that from shipping) is answered
// 500 and logged on every request.
func openapiHandler(log *slog.Logger) http.Handler {
	doc, docErr := OpenAPI()
	return handle(log, func(w http.ResponseWriter, _ *http.Request) error {
		if docErr != nil {
			return docErr
		}
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(doc)
		return err
	})
}
