# METADATA
# title: Validation rules
# description: |
#   Checks on file contents: secrets, forbidden patterns per language,
#   licence headers and file size. Configuration is
#   data.gavel.validate.config:
#     max_file_bytes        files larger than this are an error (1 MiB)
#     license_headers       file extension (".go") to an RE2 pattern that
#                           one of the first license_header_lines lines
#                           must match; none by default
#     languages             language to file extensions
#     forbidden_patterns    {rule, language, severity, pattern, unless?,
#                           message}: a line matching pattern (and not
#                           unless) is a finding
#     disabled_rules        rule ids never reported
#     severity_overrides    rule id to the severity to report instead
#   Secrets use the patterns of data.gavel.agent.config.secret_patterns.
package gavel.validate

import data.gavel.agent.secrets

settings := data.gavel.validate.config

default files := []

files := input.files

# METADATA
# title: Validation findings
# description: |
#   Input: {"files": [{"path", "size"?, "whole"?, "lines": [{"line",
#   "text"}]}]}, where whole is true when lines hold the whole file (else
#   they are, say, the added lines of a diff) and size is in bytes.
#   Output: the findings, sorted by path, line and rule: {"rule",
#   "severity": error|warning|info, "path", "line", "message"}; line 0
#   means the whole file. A message never repeats a secret.
# entrypoint: true
# custom:
#   gavel:
#     cache_key:
#       - input.files
findings := findings_for(files)

# findings_for(fs) is the findings for the files fs; the agent policy calls
# it on code the agent has just written.
findings_for(fs) := [{"path": t[0], "line": t[1], "rule": t[2], "severity": t[3], "message": t[4]} |
	some t in sort({[path, line, rule, severity(rule, sev), msg] |
		some [path, line, rule, sev, msg] in raw_findings(fs)
		not rule in settings.disabled_rules
	})
]

severity(rule, _) := settings.severity_overrides[rule]

severity(rule, sev) := sev if not settings.severity_overrides[rule]

raw_findings(fs) := ((secret_findings(fs, texts) | pattern_findings(fs, texts)) | license_findings(fs)) | size_findings(fs) if {
	texts := [file_text(f) | some f in fs]
}

# Lines are only scanned for a pattern that matches somewhere in the file,
# so a clean file costs one pass per pattern. The file-wide check is in
# multi-line mode, so ^ and $ still match at each line.
file_text(f) := concat("\n", [l.text | some l in f.lines])

in_file(pattern, text) if regex.match(concat("", ["(?m)", pattern]), text)

secret_findings(fs, texts) := {[f.path, l.line, concat(".", ["secret", p.kind]), "error", msg] |
	some i, f in fs
	text := texts[i]
	some p in secrets.candidates(text)
	in_file(p.pattern, text)
	some l in f.lines
	count(secrets.found_by(p, l.text)) > 0
	msg := sprintf("possible %s; keep secrets out of files (use an environment variable or a secret store) and rotate it if it is real", [p.description])
}

extension(path) := lower(regex.find_n(`\.[^./]+$`, path, 1)[0])

language(path) := lang if {
	ext := extension(path)
	some lang, exts in settings.languages
	ext in exts
}

pattern_findings(fs, texts) := {[f.path, l.line, p.rule, p.severity, p.message] |
	some i, f in fs
	lang := language(f.path)
	text := texts[i]
	in_file(language_pattern[lang], text)
	some p in settings.forbidden_patterns
	p.language == lang
	in_file(p.pattern, text)
	some l in f.lines
	regex.match(p.pattern, l.text)
	not excused(p, l.text)
}

# The forbidden patterns of each language as one.
language_pattern[lang] := concat("|", [sprintf("(?:%s)", [p.pattern]) | some p in settings.forbidden_patterns; p.language == lang]) if {
	some lang, _ in settings.languages
}

excused(p, text) if regex.match(p.unless, text)

license_findings(fs) := {[f.path, 1, "license.header", "error", msg] |
	some f in fs
	f.whole == true
	pattern := settings.license_headers[extension(f.path)]
	not has_header(f, pattern)
	msg := sprintf("missing licence header: one of the first %d lines must match %s", [settings.license_header_lines, pattern])
}

has_header(f, pattern) if {
	some l in f.lines
	l.line <= settings.license_header_lines
	regex.match(pattern, l.text)
}

size_findings(fs) := {[f.path, 0, "size.limit", "error", msg] |
	some f in fs
	size := file_size(f)
	size > settings.max_file_bytes
	msg := sprintf("the file is %d bytes, over the limit of %d bytes", [size, settings.max_file_bytes])
}

file_size(f) := f.size if {
	is_number(f.size)
} else := size if {
	f.whole == true
	size := sum([n | some l in f.lines; n := (count(hex.encode(l.text)) / 2) + 1]) - 1
}
