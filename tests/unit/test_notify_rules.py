"""``NOTIFY_RULES`` files: what loads, and every mistake as its one-line ConfigError.

Each message must name the file, the rule (by name, or ``rule #N``) and the fault, and never
show a URL's credentials. Placeholders are checked against every matched type's example.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from clerk_sync.errors import ConfigError
from clerk_sync.hooks import ChangeEvent
from clerk_sync.notify import Alert, Notifications, Rule, load_rules
from clerk_sync.notify.alerts import format_duration, parse_duration
from clerk_sync.notify.templates import Template, context

DOCS = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
GOOD_URL = "json://127.0.0.1:9/hook"
EXAMPLE = """
[[rule]]
name = "signups"
events = ["user.created"]
notify = ["slack://T/B/C", "json://127.0.0.1:9000/hook"]
title  = "New user: {data.first_name} {data.last_name}"
body   = "{email} signed up"
[[rule]]
events = ["organization.*"]
notify = ["json://127.0.0.1:9000/hook"]
[[alert]]
kind = "no_deliveries"
after = "6h"
notify = ["mailto://ops@example.com"]
[[alert]]
kind = "signature_failures"
threshold = 3
notify = ["json://127.0.0.1:9000/ops"]
"""


def write(tmp_path: Path, text: str, name: str = "notify.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def refused(tmp_path: Path, text: str) -> str:
    """The ConfigError's message for ``text``, checked to be one line about this file."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    message = caught.value.detail
    assert "\n" not in message, message
    assert message.startswith(f"NOTIFY_RULES {path}"), message
    assert caught.value.exit_code == 2
    return message


def rule(**fields: str) -> str:
    """One ``[[rule]]`` with a good ``events`` and ``notify`` unless given."""
    values = {"events": '["user.created"]', "notify": f'["{GOOD_URL}"]', **fields}
    lines = "\n".join(f"{k} = {v}" for k, v in values.items() if v)
    return f"[[rule]]\n{lines}\n"


def alert(**fields: str) -> str:
    values = {"kind": '"dead_letters"', "notify": f'["{GOOD_URL}"]', **fields}
    lines = "\n".join(f"{k} = {v}" for k, v in values.items() if v)
    return f"[[alert]]\n{lines}\n"


# --- what loads --------------------------------------------------------------------------


def test_the_example_loads_with_its_names_hooks_and_defaults(tmp_path: Path) -> None:
    loaded = load_rules(write(tmp_path, EXAMPLE))
    assert [r.name for r in loaded.rules] == ["signups", "rule-2"]
    assert [a.name for a in loaded.alerts] == ["no_deliveries", "signature_failures"]
    orgs = loaded.rules[1]
    assert orgs.types == ("organization.created", "organization.deleted", "organization.updated")
    assert orgs.title.source == "{type}: {subject_id}"
    assert loaded.alerts[0].after_ms == 6 * 3_600_000
    assert loaded.alerts[1].after == "15m"
    assert loaded.alerts[1].threshold == 3
    hooks = {h.name: h for h in loaded.hooks()}
    assert list(hooks) == [
        "notify:signups",
        "notify:rule-2",
        "notify:alert:no_deliveries",
        "notify:alert:signature_failures",
    ]
    assert hooks["notify:signups"].patterns == ("user.created",)
    assert hooks["notify:rule-2"].patterns == ("organization.*",)
    assert hooks["notify:alert:no_deliveries"].patterns == ()
    assert all(h.phase == "after_commit" and not h.is_async for h in hooks.values())


def test_urls_stay_out_of_reprs(tmp_path: Path) -> None:
    text = rule(notify='["slack://TSECRET1/BSECRET2/CSECRET3"]') + alert(
        notify='["mailto://user:hunter22@example.com"]'
    )
    loaded = load_rules(write(tmp_path, text))
    shown = repr(loaded) + repr(loaded.hooks())
    assert "SECRET" not in shown
    assert "hunter22" not in shown


def test_find_takes_names_positions_and_alert_kinds(tmp_path: Path) -> None:
    loaded = load_rules(write(tmp_path, EXAMPLE))
    found = [loaded.find(n) for n in ("signups", "rule-1", "rule-2", "no_deliveries")]
    assert [getattr(f, "name", None) for f in found] == [
        "signups",
        "signups",
        "rule-2",
        "no_deliveries",
    ]
    assert isinstance(found[0], Rule)
    assert isinstance(found[3], Alert)
    assert loaded.find("rule-3") is None
    assert loaded.find("nothing") is None


@pytest.mark.parametrize(
    ("text", "ms"), [("90s", 90_000), ("15m", 900_000), ("6h", 21_600_000), ("2d", 172_800_000)]
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


def test_duration_text() -> None:
    assert format_duration(6 * 3_600_000 + 2 * 60_000 + 5_000) == "6h 2m"
    assert format_duration(90_000) == "1m 30s"
    assert format_duration(0) == "0s"


def test_the_docs_examples_load(tmp_path: Path) -> None:
    """Every ```toml block of docs/notifications.md is a rules file that loads."""
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    for n, block in enumerate(blocks):
        assert isinstance(load_rules(write(tmp_path, block, f"docs-{n}.toml")), Notifications)


# --- placeholders ------------------------------------------------------------------------


def test_placeholders_render_from_a_change() -> None:
    data = {
        "id": "user_1",
        "first_name": "Ada",
        "last_name": None,
        "primary_email_address_id": "idn_2",
        "email_addresses": [
            {"id": "idn_1", "email_address": "old@example.com"},
            {"id": "idn_2", "email_address": "ada@example.com"},
        ],
        "public_metadata": {"plan": "pro", "seats": 3, "beta": True, "tags": ["a"]},
    }
    event = ChangeEvent("msg_1", "user.created", "user_1", data)
    template = Template.parse(
        "{type} {svix_id} {subject_id} <{email}> [{name}] {data.email_addresses.0.email_address}"
        " {data.public_metadata.plan}/{data.public_metadata.seats}/{data.public_metadata.beta}"
        " {data.public_metadata.tags} {data.last_name}|{data.public_metadata.absent}| {{x}}"
    )
    assert template.render(context(event)) == (
        'user.created msg_1 user_1 <ada@example.com> [Ada] old@example.com pro/3/true ["a"] || {x}'
    )


@pytest.mark.parametrize(
    ("data", "email", "name"),
    [
        ({"email_address": "inv@example.com"}, "inv@example.com", ""),
        (
            {"public_user_data": {"identifier": "m@example.com", "first_name": "Grace"}},
            "m@example.com",
            "Grace",
        ),
        ({"public_user_data": {"identifier": "+15555550100"}}, "", ""),
        (
            {
                "user": {
                    "first_name": " Alan ",
                    "last_name": "Turing",
                    "primary_email_address_id": "i",
                    "email_addresses": [{"id": "i", "email_address": "alan@example.com"}],
                }
            },
            "alan@example.com",
            "Alan Turing",
        ),
        ({"name": "Acme Corp"}, "", "Acme Corp"),
        ({"id": "x"}, "", ""),
    ],
)
def test_email_and_name_fall_back_in_order(data: dict[str, object], email: str, name: str) -> None:
    values = context(ChangeEvent("msg", "t", "x", data))
    assert (values["email"], values["name"]) == (email, name)


# --- every mistake, one line -------------------------------------------------------------


def test_a_placeholder_typo_names_the_placeholder_and_the_type(tmp_path: Path) -> None:
    message = refused(tmp_path, rule(name='"signups"', title='"Hi {data.frist_name}"'))
    assert message.endswith(
        ', rule "signups": placeholder {data.frist_name} does not exist in user.created (in title)'
    )


def test_a_placeholder_missing_in_one_matched_type_names_that_type(tmp_path: Path) -> None:
    # user.deleted's payload is the stub {deleted, id, object}: no first_name there.
    message = refused(tmp_path, rule(events='["user.*"]', body='"{data.first_name}"'))
    assert ", rule #1: placeholder {data.first_name} does not exist in user.deleted (in body)" in (
        message
    )


def test_email_and_name_exist_for_every_type(tmp_path: Path) -> None:
    loaded = load_rules(write(tmp_path, rule(events='["*"]', body='"{name} {email} {data.id}"')))
    assert len(loaded.rules[0].types) > 20


def test_metadata_keys_are_the_applications_own(tmp_path: Path) -> None:
    text = rule(body='"{data.public_metadata.plan} {data.private_metadata.crm.id}"')
    assert load_rules(write(tmp_path, text)).rules[0].name == "rule-1"


@pytest.mark.parametrize(
    ("template", "fault"),
    [
        ("{data.__class__}", "placeholder {data.__class__} does not exist in user.created"),
        ("{data.id.__class__}", "placeholder {data.id.__class__} does not exist in user.created"),
        ("{data.email_addresses.9.id}", "placeholder {data.email_addresses.9.id} does not exist"),
        ("{type.__class__}", "placeholder {type.__class__} does not exist (use {type}"),
        ("{foo}", "placeholder {foo} does not exist (use {type}, {svix_id}"),
        ("{data!r}", "placeholder {data!r} has a conversion or format spec"),
        ("{data.id:>40}", "placeholder {data.id:>40} has a conversion or format spec"),
        ("{data[0]}", "placeholder {data[0]} is not a name or a dotted path"),
        ("{}", "placeholder {} is not a name or a dotted path"),
        ("{0}", "placeholder {0} is not a name or a dotted path"),
        ("{data.id", "braces do not match (expected '}' before end of string)"),
        ("oops }", "braces do not match (Single '}' encountered in format string)"),
    ],
)
def test_unsafe_or_broken_placeholders_are_refused(
    tmp_path: Path, template: str, fault: str
) -> None:
    message = refused(tmp_path, rule(name='"r"', title=repr(template).replace("'", '"')))
    assert f', rule "r": {fault}' in message
    assert message.endswith("(in title)")


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ('[[rule]\nevents = ["user.created"]\n', ": not valid TOML: "),
        ("", ": defines no [[rule]] and no [[alert]]"),
        ('rules = []\n[[rule]]\nevents = ["user.created"]\n', ": unknown top-level key 'rules'"),
        ('[rule]\nevents = ["user.created"]\n', ": 'rule' must be tables written [[rule]]"),
        (rule(evnets='["x"]'), ", rule #1: unknown field 'evnets' (fields: name, events,"),
        (rule(events=""), ", rule #1: events is missing: a list of event types"),
        (rule(notify=""), ", rule #1: notify is missing: a list of apprise URLs"),
        (rule(events='"user.created"'), ", rule #1: events must be a list of event types"),
        (rule(events="[]"), ", rule #1: events is empty"),
        (rule(notify="[]"), ", rule #1: notify is empty"),
        (rule(notify='"json://h/x"'), ", rule #1: notify must be a list of apprise URLs"),
        (rule(title="3"), ", rule #1: title must be a string"),
        (rule(level='"loud"'), ", rule #1: level 'loud' must be one of info, success, warning,"),
        (rule(name='"two words"'), ", rule #1: name 'two words' must be letters, digits"),
        (
            rule(name='"signups"', events='["user.craeted"]'),
            ", rule \"signups\": events pattern 'user.craeted' matches no event type clerk-sync "
            "applies",
        ),
        (
            rule(events='["organisation.*"]'),
            ", rule #1: events pattern 'organisation.*' matches no event type",
        ),
        (
            rule(name='"a"') + rule(name='"a"'),
            ', rule "a": the name is already used by rule #1',
        ),
        (rule() + rule(name='"rule-1"'), ', rule "rule-1": the name is already used by rule #1'),
        (alert(kind=""), ", alert #1: kind is missing (one of no_deliveries, dead_letters,"),
        (alert(kind='"disk_full"'), ", alert #1: unknown kind 'disk_full' (one of no_deliveries"),
        (alert(notify=""), ", alert #1: notify is missing"),
        (alert(sevrity='"high"'), ", alert #1: unknown field 'sevrity' (fields: name, kind,"),
        (alert(threshold="5"), ", alert #1: threshold applies to signature_failures alerts only"),
        (
            alert(kind='"signature_failures"', threshold="0"),
            ", alert #1: threshold 0 must be 1 to 10000",
        ),
        (
            alert(kind='"signature_failures"', threshold='"ten"'),
            ", alert #1: threshold must be a whole number",
        ),
        (
            alert() + alert(),
            ', alert "dead_letters": the name is already used by alert #1: give one of them a name',
        ),
        (alert(name='"ops"', after='"soon"'), ", alert \"ops\": after 'soon' is not a duration"),
    ],
)
def test_each_mistake_is_one_line_naming_file_rule_and_fault(
    tmp_path: Path, text: str, fault: str
) -> None:
    assert fault in refused(tmp_path, text)


@pytest.mark.parametrize("after", ['"90"', '"1.5h"', '"6 hours"', '"0m"', '"-5m"', "6", '"6H"'])
def test_bad_durations_are_refused(tmp_path: Path, after: str) -> None:
    message = refused(tmp_path, alert(after=after))
    assert ", alert #1: after " in message
    assert 'is not a duration: a whole number and s, m, h or d, e.g. "90s"' in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mailtoo://user:hunter22@example.com", "mailtoo://…"),
        ("slack://", "slack://…"),
        ("hunter22-no-scheme-token", "(no scheme)"),
        ("json://127.0.0.1/a, json://127.0.0.1/b", "json://…"),
    ],
)
def test_unsupported_urls_show_the_scheme_only(tmp_path: Path, url: str, shown: str) -> None:
    message = refused(tmp_path, rule(name='"ops"', notify=f'["{GOOD_URL}", "{url}"]'))
    assert f', rule "ops": notify URL #2 ({shown}) is not a URL apprise supports' in message
    assert "hunter22" not in message
    assert "127.0.0.1" not in message


def test_a_repeated_url_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, rule(notify=f'["{GOOD_URL}", "{GOOD_URL}"]'))
    assert ", rule #1: notify URL #2 (json://…) repeats #1" in message


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=re.escape(f"NOTIFY_RULES {missing}: no such file")):
        load_rules(missing)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_rules(str(tmp_path))
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'# caf\xe9\n[[rule]]\nevents = ["user.created"]\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_rules(str(latin))


def test_without_apprise_the_message_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, EXAMPLE)
    monkeypatch.setitem(sys.modules, "apprise", None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert caught.value.detail == (
        f"NOTIFY_RULES {path}: notifications need the apprise package, which is not installed: "
        "pip install 'clerk-sync[notify]'"
    )
