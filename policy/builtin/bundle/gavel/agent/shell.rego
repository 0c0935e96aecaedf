package gavel.agent

# Shell commands (the Bash tool) are read the way a reviewer skims them: the
# command is cut into simple commands at control operators (&& || ; | & and
# newlines), subshells, command substitutions and `sh -c` / `eval`; each
# simple command is cut into words with quotes removed; wrappers such as
# sudo, env and timeout are skipped to find the command word. This is not a
# shell parser: it errs towards recognising a dangerous command, and it reads
# only literal text (a path built at run time is not seen).

cfg := data.gavel.agent.config

# Events on which tool calls are gated.
tool_gate if input.event in {"PreToolUse", "PermissionRequest"}

command := input.hook.tool_input.command if {
	tool_gate
	input.hook.tool_name == "Bash"
	is_string(input.hook.tool_input.command)
}

# Control operators, subshells, substitutions, and the start of a nested
# command string (`bash -c '...'`, `eval "..."`).
separators := "&&|\\|\\||[;|&\\n()`]|\\$\\(|\\b(?:ba|z|da|k)?sh\\s+-c\\s+|\\beval\\s+"

segments := [s |
	some raw in regex.split(separators, command)
	s := trim_space(raw)
	s != ""
]

unquote(w) := strings.replace_n({"\"": "", "'": ""}, w)

words(seg) := [w |
	some raw in regex.split(`\s+`, seg)
	w := unquote(raw)
	w != ""
]

# Words before the command word: wrappers, their options and values,
# variable assignments, and shell keywords.
prefix_word(ws, i) if ws[i] in cfg.command_wrappers

prefix_word(ws, i) if startswith(ws[i], "-")

prefix_word(ws, i) if regex.match(`^[A-Za-z_][A-Za-z0-9_]*=`, ws[i])

prefix_word(ws, i) if regex.match(`^[0-9]+(?:\.[0-9]+)?[smhd]?$`, ws[i])

prefix_word(ws, i) if follows(ws, i, {"-u", "-g", "-U", "-C", "-n", "-s", "-k", "-p"})

# follows(ws, i, options): the word before ws[i] is one of options, so ws[i]
# is that option's value.
follows(ws, i, options) if ws[i - 1] in options

command_index(ws) := min({i | some i, _ in ws; not prefix_word(ws, i)})

command_name(w) := trim_prefix(basename(w), "\\")

# Every simple command, as its command word (without directory), its
# arguments, and the index of its segment.
calls contains {"cmd": command_name(ws[i]), "args": array.slice(ws, i + 1, count(ws)), "at": k} if {
	some k, seg in segments
	ws := words(seg)
	i := command_index(ws)
}

# Directory changes in the command, as [segment index, target].
dir_changes := [[k, cd_target(ws, i)] |
	some k, seg in segments
	ws := words(seg)
	i := command_index(ws)
	command_name(ws[i]) in {"cd", "pushd"}
]

cd_target(ws, i) := ws[i + 1] if {
	ws[i + 1]
} else := "~"

# The directory relative paths start from in segment k: cwd, or where the
# last cd before it went. "" when that is not known (cd to a relative path
# after another cd).
base_dir(k) := dir if {
	before := [t | some [j, t] in dir_changes; j < k]
	dir := base_after(before)
} else := ""

default known_cwd := ""

known_cwd := cwd

base_after(changes) := known_cwd if count(changes) == 0

base_after(changes) := resolve_from(t, known_cwd) if {
	t := changes[count(changes) - 1]
	count(changes) == 1
}

base_after(changes) := resolve_from(t, "") if {
	t := changes[count(changes) - 1]
	count(changes) > 1
}

operands(args) := [a | some a in args; not startswith(a, "-")]

short_flag(args, letters) if {
	some a in args
	regex.match(sprintf(`^-[A-Za-z]*[%s]`, [letters]), a)
	not startswith(a, "--")
}

# A target as a path: a trailing glob stands for the directory it expands
# in; ~, $HOME, $CLAUDE_PROJECT_DIR and $PWD are expanded when known;
# relative paths start at cwd. Undefined when it cannot be known.
glob_dir("*") := "."

glob_dir(t) := regex.replace(t, `/\*$`, "/") if t != "*"

resolve_from(t, _) := normalize(g) if {
	g := glob_dir(t)
	startswith(g, "/")
}

resolve_from(t, _) := normalize(concat("", [base, rest])) if {
	g := glob_dir(t)
	some var, base in expansions
	m := regex.find_all_string_submatch_n(sprintf(`^%s(/.*)?$`, [var]), g, 1)[0]
	rest := m[1]
}

resolve_from(t, dir) := normalize(concat("/", [dir, g])) if {
	g := glob_dir(t)
	dir != ""
	not regex.match(`^[/~$]`, g)
}

# resolve(c, t) is the target t of the call c as a path.
resolve(c, t) := resolve_from(t, base_dir(c.at))

expansions["(?:~|\\$HOME|\\$\\{HOME\\})"] := home_dir

expansions["\\$\\{?CLAUDE_PROJECT_DIR\\}?"] := project_dir

expansions["\\$\\{?PWD\\}?"] := cwd

home_token(t) if regex.match(`^(?:~[A-Za-z0-9_.-]*|\$HOME|\$\{HOME\})/*$`, glob_dir(t))

project_token(t) if regex.match(`^\$\{?CLAUDE_PROJECT_DIR\}?/*$`, glob_dir(t))

root_path(p) if p in cfg.protected_paths

# What deleting the target t recursively would destroy, as a rule id.
delete_class(c, t) := "shell.rm-home" if {
	home_token(t)
} else := "shell.rm-project" if {
	project_token(t)
} else := "shell.rm-root" if {
	root_path(resolve(c, t))
} else := "shell.rm-home" if {
	home_path(resolve(c, t))
} else := "shell.rm-project" if {
	within(project_dir, resolve(c, t))
}

delete_message("shell.rm-root", t) := sprintf("recursive delete of %s is not allowed", [t])

delete_message("shell.rm-home", t) := sprintf("recursive delete of the home directory (%s) is not allowed", [t])

delete_message("shell.rm-project", t) := sprintf("recursive delete of %s would delete the project %s", [t, project_label])

default project_label := "$CLAUDE_PROJECT_DIR"

project_label := project_dir

shell_agent_reason := "This command is blocked by policy. Do not try to reach the same result another way; if it is really needed, ask the user to run it."

deny_shell(id, msg) := {"id": id, "effect": "deny", "reason": msg, "agent_reason": sprintf("[%s] %s. %s", [id, msg, shell_agent_reason])}

# rm -r of /, a system directory, a home directory, or the project (or a
# directory that holds it).
hits contains deny_shell(id, delete_message(id, t)) if {
	some c in calls
	c.cmd == "rm"
	recursive_rm(c.args)
	some t in operands(c.args)
	id := delete_class(c, t)
}

hits contains deny_shell("shell.rm-root", "rm --no-preserve-root is not allowed") if {
	some c in calls
	c.cmd == "rm"
	"--no-preserve-root" in c.args
}

recursive_rm(args) if "--recursive" in args

recursive_rm(args) if short_flag(args, "rR")

# Formatting a file system.
hits contains deny_shell("shell.mkfs", sprintf("formatting a file system (%s) is not allowed", [c.cmd])) if {
	some c in calls
	regex.match(`^(?:mkfs(?:\..+)?|mke2fs)$`, c.cmd)
}

disk_device := `/dev/(?:sd|hd|vd|xvd|nvme|disk|rdisk|mmcblk|dm-|md|mapper/)`

# Writing raw bytes over a disk device.
hits contains deny_shell("shell.disk-overwrite", sprintf("writing to the disk device %s is not allowed", [trim_prefix(a, "of=")])) if {
	some c in calls
	c.cmd == "dd"
	some a in c.args
	regex.match(concat("", ["^of=", disk_device]), a)
}

hits contains deny_shell("shell.disk-overwrite", "redirecting output to a disk device is not allowed") if {
	some seg in segments
	regex.match(concat("", [`>\s*`, disk_device]), seg)
}

# A function that pipes itself into itself in the background, then is
# called: :(){ :|:& };: and the same with any name or spacing.
hits contains deny_shell("shell.fork-bomb", "fork bomb") if {
	compact := regex.replace(command, `\s+`, "")
	some m in regex.find_all_string_submatch_n(`([A-Za-z_][A-Za-z0-9_]*|:)\(\)\{`, compact, -1)
	n := m[1]
	some form in ["%s(){%s|%s&};%s", "%s(){%s|%s&;};%s"]
	contains(compact, sprintf(form, [n, n, n, n]))
}

# Running a script straight from the network.
pipe_to_shell_patterns := [
	`\b(?:curl|wget)\b[^;\n]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+)?(?:\S*/)?(?:ba|z|da|k|fi)?sh(?:\s|$|[;&|)])`,
	`\b(?:ba|z|da|k|fi)?sh\s+<\(\s*(?:curl|wget)\b`,
	`(?:^|[\s;&|])(?:source|\.)\s+<\(\s*(?:curl|wget)\b`,
	"\\b(?:(?:ba|z|da|k|fi)?sh\\s+-c|eval)\\s+[\"']?(?:\\$\\(|`)\\s*(?:curl|wget)\\b",
]

hits contains deny_shell("shell.pipe-to-shell", "running a downloaded script (curl or wget into a shell) is not allowed") if {
	some p in pipe_to_shell_patterns
	regex.match(p, command)
}

# chmod, chown or chgrp -R of / or a system directory.
hits contains deny_shell("shell.chmod-root", sprintf("recursive %s of %s is not allowed", [c.cmd, t])) if {
	some c in calls
	c.cmd in {"chmod", "chown", "chgrp"}
	recursive_chmod(c.args)
	some t in operands(c.args)
	root_path(resolve(c, t))
}

recursive_chmod(args) if "--recursive" in args

recursive_chmod(args) if short_flag(args, "R")

# Force pushes to a protected branch ask first. A force push that names no
# branch (or HEAD) asks too: the current branch is not known here.
git_push_args(c) := array.slice(c.args, i + 1, count(c.args)) if {
	c.cmd == "git"
	i := min({j |
		some j, a in c.args
		not startswith(a, "-")
		not follows(c.args, j, {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path"})
	})
	c.args[i] == "push"
}

force_flag(args) if {
	some a in args
	a in {"--force", "-f", "--force-with-lease"}
}

force_flag(args) if {
	some a in args
	startswith(a, "--force-with-lease=")
}

force_flag(args) if short_flag(args, "f")

push_operands(args) := [a |
	some j, a in args
	not startswith(a, "-")
	not follows(args, j, {"-o", "--push-option", "--repo", "--receive-pack", "--exec"})
]

refspecs(args) := array.slice(ops, 1, count(ops)) if ops := push_operands(args)

push_destination(r) := trim_prefix(trim_prefix(dst, "+"), "refs/heads/") if {
	parts := split(r, ":")
	dst := parts[count(parts) - 1]
}

protected_branch(b) if {
	some p in cfg.protected_branches
	glob.match(p, ["/"], b)
}

ask_git(msg) := {"id": "git.force-push-protected", "effect": "ask", "reason": msg}

hits contains ask_git(sprintf("force push to the protected branch %s", [b])) if {
	some c in calls
	args := git_push_args(c)
	some r in refspecs(args)
	forced_refspec(args, r)
	b := push_destination(r)
	protected_branch(b)
}

hits contains ask_git("force push of HEAD: the current branch may be protected") if {
	some c in calls
	args := git_push_args(c)
	some r in refspecs(args)
	forced_refspec(args, r)
	push_destination(r) in {"", "HEAD"}
}

hits contains ask_git("force push without an explicit branch: the current branch may be protected") if {
	some c in calls
	args := git_push_args(c)
	force_flag(args)
	count(refspecs(args)) == 0
}

hits contains ask_git("force push of every branch") if {
	some c in calls
	args := git_push_args(c)
	force_flag(args)
	some a in args
	a in {"--all", "--mirror"}
}

forced_refspec(args, _) if force_flag(args)

forced_refspec(_, r) if startswith(r, "+")

# Publishing a package, an image or a release asks first. Each entry of
# publish_commands is a command word and the subcommand words that must
# follow it, in order (options may come between them). --dry-run publishes
# nothing.
hits contains {"id": "publish.package", "effect": "ask", "reason": sprintf("`%s` publishes a package or release", [line])} if {
	some c in calls
	not "--dry-run" in c.args
	line := concat(" ", array.concat([c.cmd], c.args))
	some p in cfg.publish_commands
	regex.match(publish_pattern(p), line)
}

publish_pattern(p) := concat("", ["^", concat(`(?: \S+)*? `, [regex_quote(w) | some w in split(p, " ")]), "(?: |$)"])

regex_quote(s) := strings.replace_n(
	{
		"\\": "\\\\", ".": "\\.", "+": "\\+", "*": "\\*", "?": "\\?", "(": "\\(", ")": "\\)",
		"[": "\\[", "]": "\\]", "{": "\\{", "}": "\\}", "^": "\\^", "$": "\\$", "|": "\\|",
	},
	s,
)
