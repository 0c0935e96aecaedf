package gavel.agent

import data.gavel.agent.secrets
import data.gavel.validate

# Prompts that carry a secret are blocked before the model sees them.
hits contains {
	"id": "prompt.secret",
	"effect": "deny",
	"reason": sprintf("the prompt contains what looks like a secret (%s): remove it, and rotate the credential if it is real", [concat(", ", sort(kinds))]),
} if {
	input.event == "UserPromptSubmit"
	is_string(input.hook.prompt)
	kinds := secrets.kinds(input.hook.prompt)
	count(kinds) > 0
}

# Secrets in a tool's output are redacted before the model sees them. The
# redacted output has the shape of the original (for Bash: stdout, stderr,
# interrupted, isImage).
redaction := {"kinds": kinds, "output": secrets.redact_value(response)} if {
	input.event == "PostToolUse"
	response := input.hook.tool_response
	kinds := secrets.kinds_in(response)
	count(kinds) > 0
}

hits contains {
	"id": "output.secret-redacted",
	"effect": "allow",
	"reason": sprintf("redacted %s from the output of %s", [concat(", ", sort(redaction.kinds)), input.hook.tool_name]),
} if redaction

# Code the agent has just written is checked with the validation rules
# (data.gavel.validate); errors block, so the agent fixes them at once, and
# warnings are passed on as context.
written_files := [{
	"path": input.hook.tool_input.file_path,
	"whole": true,
	"size": byte_length(content),
	"lines": numbered(content),
}] if {
	input.hook.tool_name == "Write"
	content := input.hook.tool_input.content
	is_string(content)
}

written_files := [{"path": input.hook.tool_input.file_path, "whole": false, "lines": patch_lines(patch)}] if {
	input.hook.tool_name in {"Edit", "MultiEdit"}
	patch := input.hook.tool_response.structuredPatch
	is_array(patch)
	count(patch) > 0
}

written_files := [{"path": input.hook.tool_input.file_path, "whole": false, "lines": numbered(input.hook.tool_input.new_string)}] if {
	input.hook.tool_name == "Edit"
	not has_patch
	is_string(input.hook.tool_input.new_string)
}

written_files := [{"path": input.hook.tool_input.file_path, "whole": false, "lines": lines}] if {
	input.hook.tool_name == "MultiEdit"
	not has_patch
	lines := [l |
		some e in input.hook.tool_input.edits
		some l in numbered(e.new_string)
	]
}

has_patch if count(input.hook.tool_response.structuredPatch) > 0

numbered(s) := [{"line": i + 1, "text": t} | some i, t in split(s, "\n")]

byte_length(s) := count(hex.encode(s)) / 2

# The added lines of a structured patch, numbered in the new file: a hunk's
# lines are "+" added, "-" removed, " " kept; added and kept lines count.
patch_lines(patch) := [{"line": hunk.newStart + before, "text": substring(l, 1, -1)} |
	some hunk in patch
	some k, l in hunk.lines
	startswith(l, "+")
	before := count([x | some m, x in hunk.lines; m < k; not regex.match(`^[-\\]`, x)])
]

validation := validate.findings_for(written_files) if {
	input.event == "PostToolUse"
	input.hook.tool_name in write_tools
}

finding_errors := [f | some f in validation; f.severity == "error"]

finding_warnings := [f | some f in validation; f.severity == "warning"]

finding_line(f) := sprintf("%s:%d %s: %s", [display_path(f.path), f.line, f.rule, f.message]) if {
	f.line > 0
} else := sprintf("%s %s: %s", [display_path(f.path), f.rule, f.message])

display_path(p) := trim_prefix(p, concat("", [project_dir, "/"])) if {
	project_dir != "/"
	startswith(p, concat("", [project_dir, "/"]))
} else := p

hits contains {
	"id": "validate.findings",
	"effect": "deny",
	"reason": sprintf("%d problem(s) in the code just written:\n%s", [count(finding_errors), listing]),
	"agent_reason": sprintf("[validate.findings] The code you just wrote breaks the validation rules. Fix these now:\n%s", [listing]),
} if {
	count(finding_errors) > 0
	listing := concat("\n", [finding_line(f) | some f in finding_errors])
}

hits contains {
	"id": "validate.warnings",
	"effect": "allow",
	"reason": sprintf("%d warning(s) in the code just written", [count(finding_warnings)]),
	"additional_context": sprintf("gavel validation warnings for the code just written:\n%s", [concat("\n", [finding_line(f) | some f in finding_warnings])]),
} if {
	count(finding_errors) == 0
	count(finding_warnings) > 0
}
