"""The README's "Onboarding flows" examples are real: the hooks module registers what it says,
and the rules file loads."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from clerk_sync.entities import handled_types
from clerk_sync.hooks import HookSet, hooks_of
from clerk_sync.notify import load_rules

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Onboarding flows") : text.index("## Embedding")]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def test_the_hooks_example_registers_its_three_hooks(tmp_path: Path) -> None:
    path = tmp_path / "readme_hooks.py"
    path.write_text(_blocks("python")[0], encoding="utf-8")
    spec = importlib.util.spec_from_file_location("readme_hooks", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_hooks"] = module
    try:
        spec.loader.exec_module(module)
        found = [
            h
            for name in ("send_welcome_email", "refresh_billing_seats", "create_workspace")
            for h in hooks_of(getattr(module, name))
        ]
    finally:
        del sys.modules["readme_hooks"]
    assert [(h.phase, h.patterns) for h in found] == [
        ("after_commit", ("user.created",)),
        ("after_commit", ("organization.created", "organizationMembership.*")),
        ("in_transaction", ("organization.created",)),
    ]
    assert found[1].is_async
    HookSet(tuple(found)).check_patterns(handled_types())


def test_the_rules_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "notify.toml"
    path.write_text(_blocks("toml")[0], encoding="utf-8")
    notifications = load_rules(str(path))
    assert [h.name for h in notifications.hooks()] == [
        "notify:signups",
        "notify:alert:no_deliveries",
    ]
