"""A ``/metrics`` answer read the way Prometheus reads it: with ``prometheus_client``'s own
parser (never a regular expression of ours), then looked up by sample name and labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    """Every sample of one scrape: ``(sample name, sorted labels) → value``."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    families: dict[str, str]
    """Family name → its type (``counter``, ``gauge``, ``histogram``…)."""

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None when it is not there."""
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def by(self, name: str, label: str, **where: str) -> dict[str, float]:
        """``label``'s value → sample value, for the samples of ``name`` matching ``where``."""
        out: dict[str, float] = {}
        for (sample, labels), value in self.samples.items():
            found = dict(labels)
            if sample == name and label in found and where.items() <= found.items():
                out[found[label]] = value
        return out

    def pairs(self, name: str, first: str, second: str) -> dict[tuple[str, str], float]:
        """``(first label, second label) → value`` for every sample of ``name``, zeros left out."""
        out: dict[tuple[str, str], float] = {}
        for (sample, labels), value in self.samples.items():
            found = dict(labels)
            if sample == name and value:
                out[(found[first], found[second])] = value
        return out


def parse(text: str) -> Scrape:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    families: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(samples, families)
