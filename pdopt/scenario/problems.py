"""Problems in an input: where (a dotted path) and what, carried as objects end to end."""

from __future__ import annotations

from dataclasses import dataclass

from pdopt.errors import PdoptError


@dataclass(frozen=True)
class Problem:
    """One problem in an input: where (a dotted path, `workloads[1].slo.tpot_ms`) and what."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ScenarioError(PdoptError):
    """An input scenario is invalid; carries one `Problem` per thing wrong."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        prefix = f"{self.source}: " if self.source else ""
        return [f"{prefix}{p}" for p in self.problems]

    def with_source(self, source: str) -> ScenarioError:
        return ScenarioError(self.problems, source)
