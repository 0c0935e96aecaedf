package gavel.agent

# Paths as Claude Code sends them: absolute, with "/" separators. A path is
# normalised lexically (no file system access): empty and "." segments are
# dropped and each ".." removes the segment before it.

# normalize(p) is p with "." and ".." resolved, without a trailing slash.
normalize(p) := "/" if {
	count(kept_segments(p)) == 0
} else := concat("/", array.concat([""], kept_segments(p)))

path_segments(p) := [s | some s in split(p, "/"); not s in {"", "."}]

# A segment is kept unless a later ".." closes it: reading segments as
# brackets (a name opens, ".." closes), it is closed when the run from it to
# some later segment balances.
kept_segments(p) := [s |
	segs := path_segments(p)
	some i, s in segs
	s != ".."
	not closed(segs, i)
]

closed(segs, i) if {
	some j, _ in segs
	j > i
	balance(segs, i, j) == 0
}

balance(segs, i, j) := opens - closes if {
	opens := count([k | some k in numbers.range(i, j); segs[k] != ".."])
	closes := count([k | some k in numbers.range(i, j); segs[k] == ".."])
}

# within(p, dir): the normalised path p is dir or lies below it. A sibling
# sharing a prefix (/work/proj2 against /work/proj) is not within.
within(p, dir) if p == dir

within(_, "/")

within(p, dir) if startswith(p, concat("", [dir, "/"]))

basename(p) := regex.replace(p, `^.*/`, "")

# The project root: Claude Code's CLAUDE_PROJECT_DIR as the forwarder sends
# it, else the hook's cwd. Absent when unknown.
project_dir := normalize(d) if {
	d := input.session.project_dir
	is_string(d)
	startswith(d, "/")
}

# The directory relative paths in a shell command start from.
cwd := normalize(d) if {
	d := input.hook.cwd
	is_string(d)
	startswith(d, "/")
} else := project_dir

# The user's home directory, when the project or cwd lies inside one.
home_dir := home_of(project_dir) if {
	home_of(project_dir)
} else := home_of(cwd)

home_of(d) := trim_suffix(regex.find_n(`^(?:/(?:home|Users)/[^/]+|/root)(?:/|$)`, d, 1)[0], "/")

home_path(p) if regex.match(`^/(?:home|Users)/[^/]+$`, p)

home_path("/root")
