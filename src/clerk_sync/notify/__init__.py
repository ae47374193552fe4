"""Notifications: built-in outbox consumers that send through apprise URLs.

``NOTIFY_RULES`` names a TOML file of ``[[rule]]`` (event patterns → URLs, with a title and
body template) and ``[[alert]]`` (operational alerts: no deliveries, dead letters, signature
failures); docs/notifications.md is its reference. :func:`load_rules` checks all of it at
startup; :meth:`Notifications.hooks` gives the outbox worker one hook per rule and per alert;
:meth:`Notifications.check_alerts` is what the worker calls periodically to enqueue alerts;
:class:`SignatureFailures` is the web layer's counter of failed verifications.

apprise is the optional extra ``clerk-sync[notify]``, imported only when rules are loaded.
"""

from .alerts import Alert, FailureCount, SignatureFailures
from .rules import Notifications, Rule, TestSent, load_rules
from .send import Message, NotificationFailed

__all__ = [
    "Alert",
    "FailureCount",
    "Message",
    "NotificationFailed",
    "Notifications",
    "Rule",
    "SignatureFailures",
    "TestSent",
    "load_rules",
]
