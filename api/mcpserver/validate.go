package mcpserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gavel-dev/gavel/api/validate"
	"github.com/gavel-dev/gavel/policy"
)

// ValidateInput is validate_code's arguments.
type ValidateInput struct {
	Files []validate.File `json:"files,omitempty" jsonschema:"whole files to check, each with its path and content"`
	Diff  string          `json:"diff,omitempty" jsonschema:"a unified diff (git diff output); only its added lines are checked"`
}

func (t *tools) validateCode(ctx context.Context, _ *mcp.CallToolRequest, in ValidateInput) (*mcp.CallToolResult, validate.Result, error) {
	res, err := t.opts.Validate.Validate(ctx, t.principal(ctx), validate.Request{Files: in.Files, Diff: in.Diff})
	switch {
	case errors.Is(err, validate.ErrBadRequest):
		return nil, validate.Result{}, err
	case err != nil:
		code := policy.ReasonCode(err)
		t.opts.Logger.Error("validate_code failed", "reason", code, "err", err)
		return nil, validate.Result{}, fmt.Errorf("governance error (%s): the validation rules could not be evaluated", code)
	}
	if res.Findings == nil {
		res.Findings = []validate.Finding{}
	}
	return nil, res, nil
}
