"""The user docs: they build with warnings as errors, every reference into them resolves, the
section numbering of docs/math.md is the one the code cites, and their examples run."""
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from ._extras import EXTRA_OF, need

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MATH = DOCS / "math.md"

# docs/<page>.md, optionally followed by a section "§3", "§2.1", "§7b" or a range "§5-6", "§2.2-2.3"
_SECTION = r"\d+[a-z]?(?:\.\d+)?"
REFERENCE = re.compile(rf"docs/([A-Za-z0-9_-]+\.md)(?:[ \t]+§({_SECTION})(?:[ \t]*-[ \t]*({_SECTION}))?)?")
# The sections MATH.md numbers and the code cites (docs/math.md mirrors them).
MATH_SECTIONS = {"0", "1", "2", "2.1", "2.2", "2.3", "3", "4", "5", "6", "6.1", "7", "7b", "8", "9", "10"}


def _shipped_text_files():
    """Files whose comments and docstrings may cite the docs (the vendored Eigen excluded)."""
    for pattern in ("python/**/*.py", "python/**/*.pyi", "cpp/*.cpp", "cpp/include/**/*.hpp", "cpp/src/**/*.cpp",
                    "bench/*.py", "tests/*.py", "docs/*.md", "README.md", "CHANGELOG.md", "CONTRIBUTING.md",
                    "CMakeLists.txt"):
        yield from ROOT.glob(pattern)


def _math_sections():
    return {m.group(1) for m in re.finditer(rf"^#+ §({_SECTION}) ", MATH.read_text(), re.M)}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The docs built once for this module with warnings as errors (fails if mkdocs is missing:
    .[test] installs it; the docs are built in CI)."""
    need("mkdocs")
    out_dir = tmp_path_factory.mktemp("docs") / "site"
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(out_dir)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))   # cwd: mkdocstrings' extension path
    assert out.returncode == 0, out.stdout + out.stderr
    return out_dir


def _page_html(site, page):
    return (site / ("" if page.stem == "index" else page.stem) / "index.html").read_text()


def _article(html):
    return html[html.find("<article"):html.find("</article>")]


@pytest.mark.slow
def test_mkdocs_build_strict(site):
    assert (site / "api" / "index.html").exists()
    api = (site / "api" / "index.html").read_text()
    for name in ("memsgd.loss_curve", "memsgd.Spectrum", "memsgd.stability", "memsgd.torch.AM1"):
        assert f'id="{name}"' in api, name  # the reference really is generated from the docstrings
    # every formula reached the math renderer: no $ or TeX command left in the prose
    for page in DOCS.glob("*.md"):
        body = _article(_page_html(site, page))
        body = re.sub(r'<(span|div) class="arithmatex">.*?</\1>|<code>.*?</code>|<pre.*?</pre>', "", body, flags=re.S)
        prose = re.sub(r"<[^>]+>", "", body)
        stray = re.findall(r".{0,40}(?:\$|\\[a-zA-Z]+).{0,20}", prose)
        assert not stray, (page.name, stray[:3])


@pytest.mark.slow
def test_api_page_sections_open_with_a_linked_summary_table(site):
    # docs/hooks/api_summary.py: each "## section" of docs/api.md starts with a table naming every
    # object the section renders, each name a link to its entry on the page
    api = _article((site / "api" / "index.html").read_text())
    sections = re.findall(r"^## (.+)$", (DOCS / "api.md").read_text(), re.M)
    assert len(sections) >= 12
    from markdown.extensions.toc import slugify

    ids = set(re.findall(r'id="([^"]+)"', api))
    for title in sections:
        start = api.find(f'<h2 id="{slugify(title, "-")}"')
        assert start >= 0, title
        part = api[start:]
        # the table comes right after the heading, before the section's first rendered object
        assert 0 < part.find("<table>") < part.find('class="doc '), title
        table = part[:part.find("</table>")]
        links = re.findall(r'<a[^>]*href="#([^"]+)"', table)
        assert links, title
        assert all(link in ids for link in links), (title, [link for link in links if link not in ids])


@pytest.mark.slow
def test_changelog_and_contributing_pages_show_the_root_files(site):
    # one copy each: the repository's CHANGELOG.md and CONTRIBUTING.md, included by pymdownx.snippets
    for page, source in (("changelog", "CHANGELOG.md"), ("contributing", "CONTRIBUTING.md")):
        assert (DOCS / f"{page}.md").read_text().strip() == f'--8<-- "{source}"'
        text = re.sub(r"<[^>]+>", "", _article((site / page / "index.html").read_text()))
        headings = re.findall(r"^##+ (.+)$", (ROOT / source).read_text(), re.M)
        assert len(headings) >= 5
        for heading in headings:
            assert heading.replace("`", "") in text, (page, heading)


@pytest.mark.slow
def test_no_page_shows_a_literal_sphinx_role(site):
    # mkdocstrings does not render Sphinx roles (:func:`x` showed as ":func:x"): docstrings link
    # with autorefs, [x][memsgd.x], or write plain code
    role = re.compile(r":(?:func|class|attr|meth|mod|data|obj|exc|ref|py:\w+):")
    shown = {}
    for page in DOCS.glob("*.md"):
        text = re.sub(r"<[^>]+>", "", _article(_page_html(site, page)))
        found = role.findall(text)
        if found:
            shown[page.name] = len(found)
    assert not shown


@pytest.mark.slow
def test_the_built_site_loads_nothing_from_outside(site):
    # offline reading: scripts, styles and fonts (math: the vendored KaTeX) all come with the site
    outside = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="(?:https?:)?//[^"]*"')
    found = {}
    for html in site.rglob("*.html"):
        hits = [h for h in outside.findall(html.read_text()) if 'rel="canonical"' not in h]
        if hits:
            found[str(html.relative_to(site))] = hits[:2]
    assert not found
    css = (site / "javascripts" / "katex" / "katex.min.css").read_text()
    for font in re.findall(r"url\(([^)]+)\)", css):
        assert (site / "javascripts" / "katex" / font).exists(), font


@pytest.mark.slow
def test_every_formula_renders_with_the_vendored_katex(site):
    # the math the pages hand to KaTeX parses (KaTeX is stricter than MathJax about some macros)
    import html
    import json
    import shutil

    node = shutil.which("node")
    if node is None:
        pytest.skip("needs node to run KaTeX outside a browser")
    formulas = []
    for page in site.rglob("*.html"):
        for _kind, tex in re.findall(r'<(span|div) class="arithmatex">(.*?)</\1>', page.read_text(), re.S):
            tex = html.unescape(tex).strip()
            display = tex.startswith("\\[")
            formulas.append([str(page.relative_to(site)), tex[2:-2], display])
    assert len(formulas) > 500
    script = """
const katex = require(process.argv[1]);
const bad = [];
for (const [page, tex, display] of JSON.parse(require("fs").readFileSync(0, "utf8"))) {
  try { katex.renderToString(tex, {displayMode: display, throwOnError: true}); }
  catch (e) { bad.push([page, tex.slice(0, 80), String(e.message).slice(0, 160)]); }
}
console.log(JSON.stringify(bad));
"""
    out = subprocess.run([node, "-e", script, str(DOCS / "javascripts" / "katex" / "katex.min.js")],
                         input=json.dumps(formulas), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_math_sections_mirror_the_specification():
    assert _math_sections() == MATH_SECTIONS


def test_every_docs_reference_resolves():
    sections = _math_sections()
    missing = []
    for path in _shipped_text_files():
        for match in REFERENCE.finditer(path.read_text(errors="replace")):
            page, first, last = match.groups()
            where = f"{path.relative_to(ROOT)}: {match.group(0)}"
            if not (DOCS / page).exists():
                missing.append(f"{where} (no page)")
            elif first is not None:
                if page != "math.md":
                    missing.append(f"{where} (only docs/math.md has numbered sections)")
                for section in (first, last):
                    if section is not None and section not in sections:
                        missing.append(f"{where} (no §{section})")
    assert not missing, "\n".join(missing)


def test_reference_pattern_catches_what_it_must():
    # guards the test above against a pattern that matches nothing
    found = [m.groups() for m in REFERENCE.finditer("see docs/math.md §2.2-2.3 and docs/math.md §7b, docs/cli.md")]
    assert found == [("math.md", "2.2", "2.3"), ("math.md", "7b", None), ("cli.md", None, None)]


def test_shipped_code_cites_no_unshipped_spec():
    offenders = [str(p.relative_to(ROOT)) for p in _shipped_text_files()
                 if p.suffix in (".py", ".pyi", ".cpp", ".hpp") and "tests" not in p.parts
                 and re.search(r"\b(MATH|API|DESIGN)\.md\b", p.read_text(errors="replace"))]
    assert not offenders


def test_every_page_is_in_the_nav_and_every_figure_is_shown():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert re.search(rf"^\s*- [^#\n]*: {re.escape(page.name)}$", nav, re.M), page.name
    shown = "".join(p.read_text() for p in DOCS.glob("*.md"))
    for figure in (DOCS / "figures").glob("*.png"):
        assert f"figures/{figure.name}" in shown, f"{figure.name} is not shown on any page"


def _python_blocks(page):
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


# Each block runs in a fresh namespace (a block must not lean on another); one interpreter per
# page keeps this fast.
_RUNNER = """
import json, sys
extra_of = json.loads(sys.argv[1])   # tests/_extras.EXTRA_OF
blocks = sys.stdin.read().split("\\0")
for i, code in enumerate(blocks):
    try:
        exec(compile(code, f"block {i + 1}", "exec"), {"__name__": "__main__"})
    except ImportError as exc:   # a block that needs a missing extra: memsgd._optional names it, or
        top = (getattr(exc, "name", None) or "").split(".")[0]   # the block imports it itself
        if isinstance(exc, ModuleNotFoundError) and top in extra_of:
            exc = f"needs {top}: pip install 'memsgd[{extra_of[top]}]'"
        elif "pip install 'memsgd[" not in str(exc):
            sys.exit(f"block {i + 1} failed: {type(exc).__name__}: {exc}\\n{code}")
        print(f"skipped block {i + 1}: {exc}", file=sys.stderr)
    except BaseException as exc:
        sys.exit(f"block {i + 1} failed: {type(exc).__name__}: {exc}\\n{code}")
"""


@pytest.mark.slow
@pytest.mark.parametrize("page", ["getting-started.md", "exact-curves.md", "noise-floors.md",
                                  "practitioners-schedules.md"])
def test_docs_python_blocks_run(tmp_path, page):
    blocks = _python_blocks(page)
    assert blocks
    out = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(EXTRA_OF)], input="\0".join(blocks),
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, f"{page}: {out.stderr}"
    skipped = [line for line in out.stderr.splitlines() if line.startswith("skipped block")]
    if skipped:   # blocks that need an extra that is not installed (never in CI: .[test] has every extra)
        pytest.skip("; ".join(skipped))


@pytest.mark.slow
def test_cli_page_shows_real_output():
    text = (DOCS / "cli.md").read_text()
    examples = re.findall(r"```text\n\$ (memsgd [^\n]*)\n(.*?)```", text, re.S)
    assert examples
    for command, shown in examples:
        out = subprocess.run([sys.executable, "-m", *shlex.split(command)], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0 and out.stdout == shown, (command, out.stdout, out.stderr)


def test_no_docstring_uses_a_sphinx_role():
    # the same rule at the source (a role in a private module would show once it is rendered)
    role = re.compile(r":(?:func|class|attr|meth|mod|data|obj|exc):`")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "python" / "memsgd").rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1) if role.search(line)]
    assert not found


# --- numbers the docs quote, against runs --------------------------------------------------------

def _text_block_after(page, marker):
    text = (DOCS / page).read_text()
    start = text.index(marker)
    return re.search(r"```text\n(.*?)```", text[start:], re.S).group(1)


def test_sweeps_page_result_has_the_dimensions_of_its_call():
    # the dataset shown is the one the page's call returns: the grid's sizes and the number of
    # distinct log-spaced steps that record=400 keeps of 10,000 (a cheap grid of the same shape of
    # steps gives the latter)
    need("xarray")
    import numpy as np

    import memsgd

    shown = re.search(r"Dimensions:\s+\((.*?)\)", (DOCS / "sweeps.md").read_text()).group(1)
    dims = dict((k.strip(), int(v)) for k, v in (item.split(":") for item in shown.split(",")))
    call = (DOCS / "sweeps.md").read_text()
    assert 'np.geomspace(0.01, 1.0, 20)' in call and '"momentum": [0.9, 0.99]' in call
    assert '"batch_size": [1, 10, 100]' in call and "steps=10_000" in call and "record=400" in call
    ds = memsgd.sweep(memsgd.gd, {"lr": np.array([0.1, 0.2])}, memsgd.Spectrum([1.0], [1.0]), memsgd.Noise.none(),
                      steps=10_000, record=400)
    assert dims == {"lr": 20, "momentum": 2, "batch_size": 3, "step": ds.sizes["step"]}


def test_reproductions_page_quotes_the_divergence_steps_of_runs():
    import memsgd
    from memsgd.experiments import fig1, fig4

    text = (DOCS / "reproductions.md").read_text()
    cfg = fig4.Fig4Config()
    quoted = int(re.search(r"\$\\nu = 2\$, \$B = 10\$,\s+\$\\delta = 0\.9\$ at step (\d+)", text).group(1))
    curve = memsgd.loss_curve(memsgd.schedules.am1_power_law(cfg.kick, 0.9, cfg.gamma, cfg.t0),
                              memsgd.Spectrum.power_law(2.0, 1.0, head=cfg.head), memsgd.Noise.gaussian(10), cfg.steps)
    assert quoted == curve.diverged_at
    c1 = fig1.Fig1Config()
    quoted = int(re.search(r"Jacobi heavy ball doubles .*? diverges at step (\d+)", text, re.S).group(1))
    curve = memsgd.loss_curve(memsgd.schedules.jacobi_heavy_ball(c1.kappa / c1.nu),
                              memsgd.Spectrum.power_law(c1.nu, c1.kappa, head=c1.head),
                              memsgd.Noise.gaussian(c1.batch_size), c1.steps)
    assert quoted == curve.diverged_at


@pytest.mark.slow
def test_reproductions_page_figure_1_table_is_the_runs():
    from memsgd.experiments import fig1

    shown = _text_block_after("reproductions.md", "## Figure 1").strip("\n").splitlines()
    table = fig1.run(fig1.Fig1Config(), out_dir=None, simulate=False)["table"].splitlines()
    for line in shown:
        assert line in table, line


@pytest.mark.slow
def test_reproductions_page_comparison_excerpt_is_the_runs():
    from memsgd.experiments import compare

    shown = _text_block_after("reproductions.md", "## Tuned comparison").strip("\n").splitlines()
    cfg = compare.CompareConfig(problems=((2.0, 1.0),), batch_sizes=(10,))
    rows = {r["method"]: r for r in compare.run(cfg, out_dir=None)["results"]}
    for line in shown[1:]:
        method = next(m for m in sorted(rows, key=len, reverse=True) if line.strip().startswith(m))
        r = rows[method]
        assert f"{r['final_loss']:.3e}" in line and f"{r['loss_over_sgd']:.3f}" in line, (line, r)
        assert f"{r['fitted_exponent']:.3f}" in line, (line, r)
