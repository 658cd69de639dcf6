"""Who may import whom (docs/design.rst): the core imports no format and no tool, the facade
reaches the formats through formats/resolve.py alone, and no two modules import each other."""

from __future__ import annotations

import ast
import os
from typing import Dict, Set

import unionfs

PACKAGE = os.path.dirname(unionfs.__file__)


def _module_name(path: str) -> str:
    relative = os.path.relpath(path, os.path.dirname(PACKAGE))[: -len(".py")].replace(os.sep, ".")
    return relative[: -len(".__init__")] if relative.endswith(".__init__") else relative


def _imports() -> Dict[str, Set[str]]:
    """module -> the unionfs modules it imports (anywhere in it, lazily too)."""
    found: Dict[str, Set[str]] = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = _module_name(path)
            package = module if name == "__init__.py" else module.rsplit(".", 1)[0]
            targets: Set[str] = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                        target = ".".join(base + ([node.module] if node.module else []))
                    else:
                        target = node.module or ""
                    if target.startswith("unionfs"):
                        targets.add(target)
                        targets.update(target + "." + alias.name for alias in node.names)
                elif isinstance(node, ast.Import):
                    targets.update(alias.name for alias in node.names if alias.name.startswith("unionfs"))
            found[module] = targets
    return found


def _real(targets: Set[str], modules: Set[str]) -> Set[str]:
    return {target for target in targets if target in modules}


def test_the_core_imports_no_format_and_no_tool():
    imports = _imports()
    modules = set(imports)
    for module, targets in imports.items():
        if module.startswith("unionfs.core"):
            outside = {t for t in _real(targets, modules) if not t.startswith("unionfs.core")}
            assert outside <= {"unionfs", "unionfs._fsimport", "unionfs.errors", "unionfs.io"}, (module, outside)


def test_the_facade_reaches_the_formats_through_resolve_only():
    imports = _imports()
    modules = set(imports)
    for module in ("unionfs.overlay", "unionfs.changes", "unionfs.commit", "unionfs.errors", "unionfs.io", "unionfs"):
        formats = {t for t in _real(imports[module], modules) if t.startswith("unionfs.formats")}
        assert formats <= {"unionfs.formats", "unionfs.formats.resolve"}, (module, formats)


def test_no_two_modules_import_each_other():
    imports = _imports()
    modules = set(imports)
    graph = {module: _real(targets, modules) - {module} for module, targets in imports.items()}
    pairs = {
        tuple(sorted((a, b)))
        for a, targets in graph.items()
        for b in targets
        if a in graph.get(b, ()) and not (a == "unionfs" or b == "unionfs") and not a.startswith(b + ".") and not b.startswith(a + ".")
    }
    assert not pairs, pairs  # e.g. cli <-> demo, which render.py ended


def test_only_upper_writes_the_journal():
    """Every upper write goes through ``Upper`` (docs/design.rst): the journal's writing
    functions, like the sidecar's, are called from ``core/upper.py`` alone."""
    writers = {"begin", "finish", "drop_torn"}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or _module_name(path) in ("unionfs.core.upper", "unionfs.core.journal"):
                continue
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("journal"):
                    assert not writers & {alias.name for alias in node.names}, (path, node.lineno)
                if isinstance(node, ast.Attribute) and node.attr in writers and isinstance(node.value, ast.Name):
                    assert node.value.id != "journal", (path, node.lineno)


def test_one_change_notification_drives_every_cache():
    """``Upper`` updates the layer's index and the lookup's answers in its two notification
    methods alone (``_entry_changed``, ``_records_changed``), never by hand beside a write."""
    path = os.path.join(PACKAGE, "core", "upper.py")
    tree = ast.parse(open(path).read())
    upper = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Upper")
    caches = ("note_", "forget", "reset", "copied_up_dir")
    by_hand = []
    for method in upper.body:
        if not isinstance(method, ast.FunctionDef) or method.name in ("_entry_changed", "_records_changed"):
            continue
        for node in ast.walk(method):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith(caches)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in ("layer", "lookup")
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"
            ):
                by_hand.append((method.name, node.value.attr, node.attr))
    # move_file of a link record drops the old name's answer before the new name exists: the
    # view may show both names for a moment, never neither (no layer change to announce yet)
    assert by_hand == [("move_file", "lookup", "forget")], by_hand


def test_every_record_drop_in_upper_is_announced():
    """A method of ``Upper`` that drops sidecar records wholesale (``drop_records_below``,
    ``drop_markers_below``) also calls ``_records_changed``: the caches hear of every record
    that goes (``_clear_stale`` used to drop them silently)."""
    path = os.path.join(PACKAGE, "core", "upper.py")
    tree = ast.parse(open(path).read())
    upper = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Upper")
    silent = []
    for method in upper.body:
        if not isinstance(method, ast.FunctionDef):
            continue
        calls = [node.func for node in ast.walk(method) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
        drops = [call for call in calls if call.attr in ("drop_records_below", "drop_markers_below")
                 and isinstance(call.value, ast.Attribute) and call.value.attr == "sidecar"]
        announces = any(call.attr == "_records_changed" for call in calls)
        if drops and not announces:
            silent.append(method.name)
    assert silent == [], silent
