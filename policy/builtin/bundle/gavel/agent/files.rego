package gavel.agent

# File tools: reading or writing a file that holds secrets is denied, and so
# is writing outside the project.

read_tools := {"Read", "Grep", "NotebookRead"}

write_tools := {"Write", "Edit", "MultiEdit", "NotebookEdit"}

tool_path := input.hook.tool_input.file_path if {
	input.hook.tool_name in {"Read", "Write", "Edit", "MultiEdit"}
} else := input.hook.tool_input.notebook_path if {
	input.hook.tool_name in {"NotebookEdit", "NotebookRead"}
} else := input.hook.tool_input.path if {
	input.hook.tool_name == "Grep"
}

# secret_file(p): the path p (absolute or relative) names a file that holds
# secrets: .env files (not their templates), private keys and certificates,
# and cloud and registry credentials.
secret_file(p) if basename(p) == ".env"

secret_file(p) if {
	b := basename(p)
	startswith(b, ".env.")
	not env_template(b)
}

secret_file(p) if basename(p) in cfg.secret_files.names

secret_file(p) if {
	some ext in cfg.secret_files.extensions
	endswith(lower(basename(p)), ext)
}

secret_file(p) if {
	some pattern in cfg.secret_files.path_patterns
	regex.match(pattern, p)
}

env_template(b) if {
	some suffix in cfg.secret_files.env_allowed_suffixes
	endswith(b, concat(".", ["", suffix]))
}

secret_agent_reason := "This file holds secrets and is off limits by policy. Do not read or change it another way; ask the user for the value you need, or use a template such as .env.example."

hits contains {
	"id": "secrets.file-read",
	"effect": "deny",
	"reason": sprintf("reading %s is not allowed: it holds secrets", [tool_path]),
	"agent_reason": sprintf("[secrets.file-read] %s", [secret_agent_reason]),
} if {
	tool_gate
	input.hook.tool_name in read_tools
	secret_file(tool_path)
}

hits contains {
	"id": "secrets.file-write",
	"effect": "deny",
	"reason": sprintf("writing %s is not allowed: it holds secrets", [tool_path]),
	"agent_reason": sprintf("[secrets.file-write] %s", [secret_agent_reason]),
} if {
	tool_gate
	input.hook.tool_name in write_tools
	secret_file(tool_path)
}

# Shell commands that print, copy or search a secret file. For cp, scp and
# rsync only the sources count: copying a template over .env reads nothing.
read_operands(c) := array.slice(ops, 0, count(ops) - 1) if {
	c.cmd in cfg.copy_commands
	ops := operands(c.args)
} else := [trim_prefix(a, "@") | some a in operands(c.args)]

hits contains {
	"id": "secrets.file-read",
	"effect": "deny",
	"reason": sprintf("`%s %s` reads a file that holds secrets", [c.cmd, f]),
	"agent_reason": sprintf("[secrets.file-read] %s", [secret_agent_reason]),
} if {
	some c in calls
	c.cmd in cfg.reader_commands
	some f in read_operands(c)
	secret_file(f)
}

hits contains {
	"id": "secrets.file-read",
	"effect": "deny",
	"reason": sprintf("redirecting input from %s reads a file that holds secrets", [f]),
	"agent_reason": sprintf("[secrets.file-read] %s", [secret_agent_reason]),
} if {
	some seg in segments
	some m in regex.find_all_string_submatch_n(`(?:^|[^<0-9&>])<\s*([^\s<>|;&()]+)`, seg, -1)
	f := unquote(m[1])
	secret_file(f)
}

# Writes must stay inside the project. Paths matching write_allowed_patterns
# (Claude Code's plan files) are exempt. No opinion when the project is not
# known.
hits contains {
	"id": "files.outside-project",
	"effect": "deny",
	"reason": sprintf("writing %s is not allowed: it is outside the project %s", [p, project_dir]),
	"agent_reason": sprintf("[files.outside-project] %s is outside the project %s. Keep changes inside the project; ask the user if a file elsewhere must change.", [p, project_dir]),
} if {
	tool_gate
	input.hook.tool_name in write_tools
	project_dir
	is_string(tool_path)
	p := normalize(tool_path)
	not within(p, project_dir)
	not write_allowed(p)
}

write_allowed(p) if {
	some pattern in cfg.write_allowed_patterns
	regex.match(pattern, p)
}

# gavel's own MCP tools only read governance state: they are always allowed.
own_tool if {
	tool_gate
	some pattern in cfg.own_mcp_tools
	regex.match(pattern, input.hook.tool_name)
}

hits contains {
	"id": "gavel.mcp-tools",
	"effect": "allow",
	"reason": sprintf("%s is one of gavel's own tools", [input.hook.tool_name]),
} if own_tool
