# METADATA
# title: Default agent policy
# description: |
#   gavel's default policy for coding agents (Claude Code hooks).
#
#   Input, built by gavel's hooks endpoint:
#     agent      "claude-code"
#     event      the hook event name (PreToolUse, PermissionRequest,
#                UserPromptSubmit, PostToolUse, ...)
#     hook       the hook JSON exactly as Claude Code sent it: tool_name,
#                tool_input, tool_response, prompt, cwd, ...
#     principal  {"sub", "roles"}: who runs the agent
#     session    {"id", "prompt_id", "agent_id", "cwd", "project_dir",
#                "permission_mode"}; project_dir is the absolute project
#                root (CLAUDE_PROJECT_DIR, else the hook's cwd)
#
#   Configuration lives in data.gavel.agent.config; the validation rules
#   run on written code are data.gavel.validate.
package gavel.agent

# METADATA
# title: Agent decision
# description: |
#   The decision for one hook event: {"decision": allow|deny|ask|no_opinion,
#   "reason", "agent_reason"?, "rule_ids", "additional_context"?,
#   "updated_tool_output"?}.
#
#   Every matching rule is a hit with an effect; the strongest effect wins
#   (deny > ask > allow), and the decision names every rule of that effect
#   with all their reasons. gavel's own MCP tools are allowed whatever else
#   matches. On PermissionRequest an ask is no opinion (the dialog is the
#   ask). With no hit the policy has no opinion, so the agent's own
#   permission flow goes on: an allow would replace the permission prompt.
#
#   Redaction is an obligation: when a tool's output holds a secret,
#   updated_tool_output is the output with the secrets redacted, whatever
#   the decision.
#
#   The decision reads only the cache_key paths below, so it is cached.
# scope: document
# entrypoint: true
# custom:
#   gavel:
#     cache_key:
#       - input.event
#       - input.hook.tool_name
#       - input.hook.tool_input
#       - input.hook.tool_response
#       - input.hook.prompt
#       - input.hook.cwd
#       - input.session.project_dir
#     cache_ttl: 5m
#     sensitive:
#       - input.hook.prompt
#       - input.hook.tool_response
#       - input.hook.tool_input.content
default decision := {"decision": "no_opinion", "reason": "no rule applies", "rule_ids": []}

decision := object.union_n([
	{
		"decision": winning,
		"reason": concat("\n", sort({reason_text(h) | some h in winners})),
		"rule_ids": sort({h.id | some h in winners}),
	},
	optional_fields,
]) if winning

effect_rank := {"allow": 1, "ask": 2, "deny": 3}

# The hits that take part in the decision.
effective_hits contains h if {
	not own_tool
	some h in hits
	not dropped(h)
}

effective_hits contains h if {
	own_tool
	some h in hits
	h.id == "gavel.mcp-tools"
}

dropped(h) if {
	input.event == "PermissionRequest"
	h.effect == "ask"
}

winning := effect if {
	top := max({effect_rank[h.effect] | some h in effective_hits})
	some effect, rank in effect_rank
	rank == top
}

winners := {h | some h in effective_hits; h.effect == winning}

reason_text(h) := sprintf("[%s] %s", [h.id, h.reason])

optional_fields := object.union_n([agent_reason_field, context_field, redaction_field])

# agent_reason is present when a winning rule has words for the agent; rules
# without them contribute their reason.
default agent_reason_field := {}

agent_reason_field := {"agent_reason": concat("\n", sort({object.get(h, "agent_reason", reason_text(h)) | some h in winners}))} if {
	some h in winners
	h.agent_reason
}

default context_field := {}

context_field := {"additional_context": concat("\n", sort({h.additional_context | some h in winners; h.additional_context}))} if {
	some h in winners
	h.additional_context
}

default redaction_field := {}

redaction_field := {"updated_tool_output": redaction.output}

# METADATA
# title: Agent rules
# description: |
#   Every rule of the default agent policy: its id, what it does, its effect
#   and the hook events it applies to. The MCP tool get_policy lists it.
# entrypoint: true
# custom:
#   gavel:
#     cache_key: []
rules := [
	{
		"id": "shell.rm-root",
		"summary": "Recursive delete of / or a system directory (/usr, /etc, ...), or rm --no-preserve-root",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "shell.rm-home",
		"summary": "Recursive delete of a home directory (~, $HOME, /home/<user>, /Users/<user>, /root)",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "shell.rm-project",
		"summary": "Recursive delete of the project root, or of a directory that holds it ($CLAUDE_PROJECT_DIR, . at the root, ..)",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "shell.mkfs",
		"summary": "Formatting a file system (mkfs, mkfs.*, mke2fs)",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "shell.disk-overwrite",
		"summary": "Writing raw bytes to a disk device (dd of=/dev/sd*, nvme*, disk*, or > /dev/sd*)",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "shell.fork-bomb",
		"summary": "A fork bomb such as :(){ :|:& };:",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "shell.pipe-to-shell",
		"summary": "Running a downloaded script: curl or wget piped into a shell, bash <(curl ...), sh -c \"$(curl ...)\"",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "shell.chmod-root",
		"summary": "Recursive chmod, chown or chgrp of / or a system directory",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "git.force-push-protected",
		"summary": "Force push (--force, -f, --force-with-lease, +refspec) to a protected branch, or with no explicit branch",
		"effect": "ask",
		"events": ["PreToolUse"],
	},
	{
		"id": "publish.package",
		"summary": "Publishing a package, image or release (npm publish, cargo publish, twine upload, docker push, gh release create, ...)",
		"effect": "ask",
		"events": ["PreToolUse"],
	},
	{
		"id": "secrets.file-read",
		"summary": "Reading a secret file (.env, private keys, *.pem, cloud credentials) with Read or Grep, or from the shell",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "secrets.file-write",
		"summary": "Writing a secret file (.env, private keys, *.pem, cloud credentials)",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "files.outside-project",
		"summary": "Writing a file outside the project directory",
		"effect": "deny",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "gavel.mcp-tools",
		"summary": "gavel's own MCP tools (mcp__gavel__*) are always allowed",
		"effect": "allow",
		"events": ["PreToolUse", "PermissionRequest"],
	},
	{
		"id": "prompt.secret",
		"summary": "A prompt that contains a secret (cloud keys, tokens, private keys) is blocked",
		"effect": "deny",
		"events": ["UserPromptSubmit"],
	},
	{
		"id": "output.secret-redacted",
		"summary": "Secrets in a tool's output are replaced by [REDACTED:<kind>] before the model sees them",
		"effect": "allow",
		"events": ["PostToolUse"],
	},
	{
		"id": "validate.findings",
		"summary": "Code just written (Write, Edit, MultiEdit) with validation errors is blocked with the findings, so the agent fixes it",
		"effect": "deny",
		"events": ["PostToolUse"],
	},
	{
		"id": "validate.warnings",
		"summary": "Validation warnings on code just written are passed to the agent as context",
		"effect": "allow",
		"events": ["PostToolUse"],
	},
]
