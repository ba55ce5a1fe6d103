"""mkdocs hook: a summary table (name, one-line summary) at the top of each section of the API
page, built from the section's ``:::`` directives and the objects' docstrings, so a table never
disagrees with what the section renders (scipy's and xarray's API pages have the same tables).

Docstrings are read statically with griffe (what mkdocstrings uses), nothing is imported. The
summary is the docstring's first sentence; each name links to its rendered entry (an autoref).
"""
from __future__ import annotations

import re
from pathlib import Path

_DIRECTIVE = re.compile(r"^::: (\S+)[ \t]*$")
_MEMBERS = re.compile(r"^\s+members:\s*\[(.*?)\]", re.S | re.M)
_PACKAGE = None


def _package(config):
    global _PACKAGE
    if _PACKAGE is None:
        import griffe

        root = Path(config["config_file_path"]).parent
        extension = griffe.load_extensions(str(root / "docs" / "hooks" / "griffe_assigned_docstrings.py"))
        _PACKAGE = griffe.GriffeLoader(search_paths=[str(root / "python")], extensions=extension).load("memsgd")
    return _PACKAGE


def summary(docstring: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line, safe in a table cell."""
    first = re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0]
    text = " ".join(first.split())
    # the first sentence: up to a full stop followed by a capital or the end (formulas in
    # backticks are kept whole)
    parts = re.split(r"(`[^`]*`)", text)
    out = ""
    for part in parts:
        if part.startswith("`"):
            out += part
            continue
        match = re.search(r"\.(?=\s+[A-Z(])", part)
        if match:
            out += part[:match.start() + 1]
            break
        out += part
    out = out.strip()
    out = re.sub(r"::$", ":", out)
    return out.replace("|", "\\|")


def _objects(lines):
    """``[target]`` of the directives in ``lines``, expanding ``members: [...]`` options."""
    out = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if not match:
            i += 1
            continue
        target = match.group(1)
        j = i + 1
        block = []
        while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
            if not lines[j].strip():
                if j + 1 < len(lines) and lines[j + 1].startswith("    "):
                    block.append(lines[j])
                    j += 1
                    continue
                break
            block.append(lines[j])
            j += 1
        members = _MEMBERS.search("\n".join(block))
        if members:
            out += [f"{target}.{m.strip()}" for m in members.group(1).split(",") if m.strip()]
        else:
            out.append(target)
        i = j
    return out


def table(targets, package) -> str:
    rows = ["| | |", "|---|---|"]
    for target in targets:
        obj = package[target[len("memsgd."):]]
        doc = obj.docstring.value if obj.docstring is not None else ""
        name = target.rsplit(".", 1)[-1]
        rows.append(f"| [`{name}`][{target}] | {summary(doc)} |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.src_uri != "api.md":
        return markdown
    package = _package(config)
    lines = markdown.split("\n")
    heads = [i for i, line in enumerate(lines) if line.startswith("## ")] + [len(lines)]
    out = lines[:heads[0]]
    for start, end in zip(heads, heads[1:]):
        section = lines[start:end]
        first = next((k for k, line in enumerate(section) if _DIRECTIVE.match(line)), None)
        targets = _objects(section)
        if first is None or not targets:
            out += section
            continue
        out += section[:first] + [table(targets, package), ""] + section[first:]
    return "\n".join(out)
