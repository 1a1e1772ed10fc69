"""The packages read as data -> model -> service -> pages: no module imports from a layer above
its own, so each layer can be used (and tested) without the ones built on it."""
from __future__ import annotations

import ast

from tests.support.paths import ROOT

# longest prefix wins; a party's JSON API and pages are pages, its service is a service
LAYERS = {
    "app.common": 0, "app.security": 0,
    "app.db": 0, "app.data": 0,
    "app.recommender": 1, "app.modelstore": 1,
    "app.playlists": 2, "app.experiments": 2, "app.party": 2,
    "app.party.api": 3, "app.party.pages": 3, "app.party.schemas": 3,
    "app.web": 3, "app.admin": 3, "app.api": 3,
}
# `flask ab simulate` drives the whole application as a client would (it makes itself an API
# key); it is a tool on top of every layer that lives beside the experiments it simulates.
ALLOWED = {("app.experiments.simulation", "app.api")}


def layer(module: str) -> int | None:
    best = max((k for k in LAYERS if module == k or module.startswith(k + ".")),
               key=len, default=None)
    return LAYERS[best] if best else None


def test_no_import_runs_back_up_a_layer():
    upward = []
    for path in (ROOT / "app").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mine = layer(module)
        if mine is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
                theirs = layer(node.module)
                if theirs is not None and theirs > mine and \
                        not any(module == a and node.module.startswith(b) for a, b in ALLOWED):
                    upward.append(f"{module}:{node.lineno} imports {node.module}")
    assert not upward, upward


def test_the_apps_root_holds_only_the_factory_and_flasks_own_modules():
    """Helpers live in packages that say what they hold (``app/common``, ``app/security``)."""
    root = sorted(p.name for p in (ROOT / "app").glob("*.py"))
    assert root == ["__init__.py", "errors.py", "extensions.py", "health.py"], root
