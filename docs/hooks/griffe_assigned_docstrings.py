"""griffe extension: a docstring assigned after the class, ``AM1.__doc__ = r'''...'''`` (torch's
convention, used by memsgd.torch), becomes the class's docstring, so mkdocstrings shows it
without importing torch. Only string literals are taken (nothing is evaluated)."""
from __future__ import annotations

import ast

import griffe


class AssignedDocstrings(griffe.Extension):
    def on_module_members(self, *, node, mod, **kwargs):
        if not isinstance(node, ast.Module):
            return
        for stmt in node.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
                continue
            target = stmt.targets[0]
            if not (isinstance(target, ast.Attribute) and target.attr == "__doc__"
                    and isinstance(target.value, ast.Name)):
                continue
            if not (isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
                continue
            member = mod.members.get(target.value.id)
            if member is None or member.is_alias:
                continue
            member.docstring = griffe.Docstring(ast.get_docstring(ast.Module([ast.Expr(stmt.value)], []),
                                                                  clean=True) or "",
                                                lineno=stmt.lineno, endlineno=stmt.end_lineno, parent=member)
