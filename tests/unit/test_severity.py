"""The severity matrix: all 32 cells of criticality × state × production vs the default table in docs/figures.md."""

from __future__ import annotations

import pytest

from linewarden.config.agent import SeverityMatrix, SeverityRow
from linewarden.domain import Criticality, Severity, State
from linewarden.severity import severity_for, worst

# docs/figures.md, copied as text: criticality | DOWN in prod | DOWN off prod | DEGRADED in prod | DEGRADED off prod
DOCUMENTED_TABLE = """
critical S1 S2 S2 S3
high     S2 S3 S3 S4
medium   S3 S4 S4 S4
low      S4 S4 S4 S4
"""


def _cells() -> list[tuple[Criticality, State, bool, Severity | None]]:
    cells: list[tuple[Criticality, State, bool, Severity | None]] = []
    for line in DOCUMENTED_TABLE.strip().splitlines():
        name, down_in, down_off, degraded_in, degraded_off = line.split()
        crit = Criticality(name)
        cells += [
            (crit, State.DOWN, True, Severity(down_in)),
            (crit, State.DOWN, False, Severity(down_off)),
            (crit, State.DEGRADED, True, Severity(degraded_in)),
            (crit, State.DEGRADED, False, Severity(degraded_off)),
        ]
        cells += [(crit, state, prod, None) for state in (State.UP, State.UNKNOWN) for prod in (True, False)]
    return cells


CELLS = _cells()


def test_table_covers_all_32_cells() -> None:
    assert len({(c, s, p) for c, s, p, _ in CELLS}) == 32


@pytest.mark.parametrize(("criticality", "state", "in_production", "expected"), CELLS)
def test_default_matrix(criticality: Criticality, state: State, in_production: bool, expected: Severity | None) -> None:
    assert severity_for(SeverityMatrix(), criticality, state, in_production) is expected


def test_configured_matrix_is_used() -> None:
    everything_s1 = SeverityRow(
        down_in_production=Severity.S1,
        down_off_production=Severity.S1,
        degraded_in_production=Severity.S1,
        degraded_off_production=Severity.S1,
    )
    matrix = SeverityMatrix(low=everything_s1)
    assert severity_for(matrix, Criticality.LOW, State.DEGRADED, False) is Severity.S1
    assert severity_for(matrix, Criticality.LOW, State.UP, True) is None
    assert severity_for(matrix, Criticality.MEDIUM, State.DOWN, True) is Severity.S3


def test_worst() -> None:
    assert worst([Severity.S3, None, Severity.S2, Severity.S4]) is Severity.S2
    assert worst([None, None]) is None
    assert worst([]) is None
