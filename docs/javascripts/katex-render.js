// Renders the math of pymdownx.arithmatex (generic mode: \(...\) inline, \[...\] display) with the
// KaTeX copy vendored in javascripts/katex/ (no network needed). Material's document$ fires on
// every page load, including instant navigation.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true }
    ],
    throwOnError: false
  });
});
