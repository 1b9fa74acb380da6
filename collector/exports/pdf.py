"""The monthly vendor review as a PDF (fpdf2, its core Helvetica font; text outside Latin-1 is printed
with its accents dropped, or as "?").

Sections: the KPIs (score, uptime lines met, MTTA, MTTR, recurrence, RCA timeliness, credits, incidents,
disputes open), SLA compliance per uptime line with its observed share, response and resolution
compliance per severity, incidents (disputed ones marked), credits with their arithmetic, disputes and
their outcomes, the twelve-month trend (charts of each uptime line and of credits, and a table), and the
audit evidence: the audit log's latest signed checkpoint, printed and attached as `audit-checkpoint.json`,
with the commands that verify it. Every figure is the one the JSON report of the same period and as-of
time holds.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

from collector.audit import canonical_json
from collector.audit_evidence import Checkpoint
from collector.exports.charts import BLUE, GREEN, GREY, RED, Bar, bar_chart
from collector.exports.tables import local_time
from collector.reporting import period_note
from linewarden.domain import Severity
from linewarden.sla.clocks import Clock
from linewarden.sla.report import ContractReport
from linewarden.sla.results import IncidentResult
from linewarden.timeutil import ms_to_dt

_W = 186.0  # usable width in mm (A4, 12 mm margins)
MAX_INCIDENT_ROWS = 200  # a month of a large plant has thousands: the CSV holds them all
_CELL = 280  # characters: a table row must fit on one page, and reasons may run to 2,000


_PLAIN = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "–": "-", "—": "-", "‘": "'", "’": "'",
          "“": '"', "”": '"', "…": "...", "€": "EUR", "≥": ">=", "≤": "<=", "×": "x"}  # fmt: skip


def text(value: object) -> str:
    """`value` in the core fonts' Latin-1: accents dropped where needed, other characters as '?'."""
    out = []
    for ch in str(value):
        if ord(ch) < 256 or ch in _PLAIN:
            out.append(_PLAIN.get(ch, ch))
            continue
        plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if ord(c) < 256 and not unicodedata.combining(c))
        out.append(plain or "?")
    return "".join(out)


def _fit(value: str) -> str:
    if len(value) <= _CELL:
        return value
    return f"{value[:_CELL]}... ({len(value) - _CELL} more characters: see the dispute)"


def notable(incidents: Sequence[IncidentResult], limit: int = MAX_INCIDENT_ROWS) -> list[IncidentResult]:
    """At most `limit` incidents for the review's table, in report order: the disputed, breached and
    recurring ones first, then by severity (S1 first), then by time."""

    def rank(pair: tuple[int, IncidentResult]) -> tuple[int, int, int]:
        n, i = pair
        breached = any(c is not None and c.met is False for c in (i.response, i.resolution))
        return (0 if i.disputed or breached or i.recurring else 1, i.severity.rank, n)

    chosen = sorted(enumerate(incidents), key=rank)[:limit]
    return [i for _, i in sorted(chosen, key=lambda p: p[0])]


def duration(ms: int | None) -> str:
    if ms is None:
        return "n/a"
    m = ms // 60_000
    d, h, mins = m // 1440, m % 1440 // 60, m % 60
    return f"{d}d {h}h" if d else f"{h}h {mins:02d}m" if h else f"{mins}m {ms // 1000 % 60:02d}s"


def _pct(v: Decimal | None) -> str:
    return "n/a" if v is None else f"{v} %"


def _met(clock: Clock | None) -> str:
    if clock is None:
        return "-"
    if clock.met is None and clock.target_ms is None:
        return f"{duration(clock.elapsed_ms)} no target"
    verdict = "met" if clock.met else "BREACHED" if clock.met is False else "running"
    return f"{duration(clock.elapsed_ms)} {verdict}"


class _Review(FPDF):
    def __init__(self, title: str, footer: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._title, self._footer = title, footer
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(True, margin=14)

    def header(self) -> None:
        self.set_font("Helvetica", "", 7)
        self.set_text_color(110, 110, 110)
        self.cell(0, 4, text(self._title), align="R")
        self.ln(5)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font("Helvetica", "", 7)
        self.set_text_color(110, 110, 110)
        self.cell(0, 4, text(f"{self._footer} - page {self.page_no()}/{{nb}}"), align="C")
        self.set_text_color(0, 0, 0)

    def section(self, title: str, room: float = 40) -> None:
        """A heading, on a new page unless `room` mm are left below it."""
        if self.get_y() > self.h - self.b_margin - room:
            self.add_page()
        self.ln(2)
        self.set_font("Helvetica", "B", 11)
        self.cell(0, 7, text(title), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", "", 7.5)

    def grid(self, head: Sequence[str], rows: Sequence[Sequence[object]], widths: Sequence[float]) -> None:
        if not rows:
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 5, "(none)", new_x="LMARGIN", new_y="NEXT")
            self.set_font("Helvetica", "", 7.5)
            return
        self.set_font("Helvetica", "", 7.5)
        with self.table(col_widths=tuple(widths), line_height=4.2, text_align="LEFT", width=_W,
                        headings_style=_HEADINGS) as t:  # fmt: skip
            for row in [head, *rows]:
                r = t.row()
                for cell in row:
                    r.cell(_fit(text("" if cell is None else cell)))
        self.ln(1)


_HEADINGS = FontFace(emphasis="BOLD", fill_color=(225, 230, 240))


def _kpis(pdf: _Review, r: ContractReport) -> None:
    sc = r.scorecard
    rca_total = sc.rca_on_time + sc.rca_late
    boxes = [
        ("Score", f"{sc.score} / 100"),
        ("SLA lines met", f"{sc.uptime_lines_met} of {sc.uptime_lines}"
         + (f" ({sc.uptime_lines_undecided} n/a)" if sc.uptime_lines_undecided else "")),
        ("MTTA", duration(sc.mtta_ms)),
        ("MTTR", duration(sc.mttr_ms)),
        ("Recurrence rate", f"{sc.recurrence_rate_pct} % ({sc.recurring} of {sc.incidents - sc.planned_stops})"),
        ("RCA on time", f"{sc.rca_on_time} of {rca_total}" + (f", {sc.rca_pending} pending" if sc.rca_pending else "")),
        ("Credits owed", f"{r.credits.total:.2f} {r.currency}"),
        ("Disputes open", str(sum(1 for d in r.disputes if d.state == "open"))),
    ]  # fmt: skip
    w, h = _W / 4, 14.0
    x0, y0 = pdf.l_margin, pdf.get_y()
    for i, (label, value) in enumerate(boxes):
        x, y = x0 + (i % 4) * w, y0 + (i // 4) * (h + 2)
        pdf.set_fill_color(240, 243, 248)
        pdf.rect(x + 0.5, y, w - 1, h, style="F")
        pdf.set_xy(x + 2, y + 1.5)
        pdf.set_font("Helvetica", "", 7)
        pdf.cell(w - 4, 4, text(label))
        pdf.set_xy(x + 2, y + 6.5)
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(w - 4, 6, text(value))
    pdf.set_xy(x0, y0 + 2 * (h + 2))


def _arithmetic(r: ContractReport) -> list[list[object]]:
    rows: list[list[object]] = []
    for c in r.credits.lines:
        rows.append([c.kind, c.ref, c.detail, f"{r.fee:.2f} x {c.fee_pct} % = {c.amount:.2f} {r.currency}"
                     if c.fee_pct else f"{c.amount:.2f} {r.currency}"])  # fmt: skip
    cr = r.credits
    rows.append(["subtotal", "", "", f"{cr.subtotal:.2f} {r.currency}"])
    rows.append(["cap", "", "applied" if cr.capped else "not reached", f"{cr.cap:.2f} {r.currency}"])
    rows.append(["total", "", "min(subtotal, cap)" if cr.capped else "subtotal", f"{cr.total:.2f} {r.currency}"])
    return rows


def _value(field: str, value: object, fmt: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(fmt(value)) if isinstance(value, int) and field.endswith("_at") else str(value)


def _trend_charts(pdf: _Review, r: ContractReport, trend: Sequence[ContractReport]) -> None:
    labels = [t.period.label[2:] for t in trend]
    for line in r.uptime[:6]:
        values: list[float | None] = []
        bars = []
        for t, label in zip(trend, labels, strict=True):
            found = next((u for u in t.uptime if u.scope == line.scope), None)
            pct = None if found is None or found.uptime_pct is None else float(found.uptime_pct)
            values.append(pct)
            colour = GREY if found is None or found.met is None else GREEN if found.met else RED
            bars.append(Bar(label, pct, "" if pct is None else f"{pct:.2f}", colour))
        target = float(line.target_pct)
        known = [v for v in values if v is not None] + [target]
        low = max(0.0, min(known) - max(100 - min(known), 0.05) * 0.5)
        if pdf.get_y() > 230:
            pdf.add_page()
        y = pdf.get_y()
        bar_chart(pdf, pdf.l_margin, y, _W, 48, text(f"Uptime % of {line.scope}, twelve months"), bars, low, 100.0,
                  (target, f"target {line.target_pct}"))  # fmt: skip
        pdf.set_xy(pdf.l_margin, y + 50)
    credits = [float(t.credits.total) for t in trend]
    if pdf.get_y() > 230:
        pdf.add_page()
    y = pdf.get_y()
    bars = [Bar(label, v, f"{v:.0f}", BLUE) for label, v in zip(labels, credits, strict=True)]
    bar_chart(pdf, pdf.l_margin, y, _W, 44, text(f"Credits owed ({r.currency}), twelve months"), bars, 0.0,
              max([*credits, 1.0]))  # fmt: skip
    pdf.set_xy(pdf.l_margin, y + 46)


def _severity_chart(pdf: _Review, r: ContractReport) -> None:
    counts = {s: sum(1 for i in r.incidents if i.severity == s) for s in Severity}
    if pdf.get_y() > 240:
        pdf.add_page()
    y = pdf.get_y()
    bars = [Bar(s.value, float(n), str(n), RED if s == Severity.S1 else BLUE) for s, n in counts.items()]
    bar_chart(pdf, pdf.l_margin, y, _W / 2, 40, "Incidents by severity", bars, 0.0, float(max([*counts.values(), 1])))
    pdf.set_xy(pdf.l_margin, y + 42)


CHECKPOINT_ATTACHMENT = "audit-checkpoint.json"
_VERIFY = (
    "linewarden audit verify-export audit.jsonl --public-key audit.key.pub --anchors " + CHECKPOINT_ATTACHMENT,
    "linewarden collector audit verify --config collector.toml --checkpoints " + CHECKPOINT_ATTACHMENT
    + " --public-key audit.key.pub",
)


def _evidence(pdf: _Review, cp: Checkpoint | None, fmt: Any, timezone: str) -> None:
    pdf.section("Audit evidence", room=80)
    pdf.set_font("Helvetica", "", 8.5)
    if cp is None:
        pdf.multi_cell(0, 4.5, "No signed checkpoint of the collector's audit log was written yet (no [audit] "
                       "signing_key in its configuration): this review carries no anchor of the audit log.",
                       new_x="LMARGIN", new_y="NEXT")  # fmt: skip
        return
    pdf.multi_cell(0, 4.5, text(
        "The collector's audit log as this review went out, signed with its Ed25519 key. Keep this review: a log "
        "rewritten later, even by whoever holds the key, contradicts this checkpoint."
    ), new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    pdf.ln(1)
    rows = [
        ("Entries", str(cp.count)),
        (f"Head hash (entry {cp.count})", cp.head),
        ("Signed at", f"{cp.to_dict()['at']} ({fmt(cp.at_ms)} {timezone})"),
        ("Collector", cp.collector),
        ("Key id", f"{cp.key_id} (SHA-256 of the raw public key, first 16 hex digits)"),
        ("Signature (Ed25519, base64)", cp.signature),
    ]
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 7.5)
        pdf.cell(44, 4.2, text(label))
        pdf.set_font("Courier", "", 7)
        pdf.multi_cell(0, 4.2, text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    pdf.set_font("Helvetica", "", 8.5)
    pdf.multi_cell(0, 4.5, text(
        f"The checkpoint is attached to this PDF as {CHECKPOINT_ATTACHMENT} (the reader's attachments, or "
        "`pdfdetach -saveall`). To verify it offline, with the collector's public key (audit.key.pub) and an "
        "export of the audit log from the plant (`linewarden collector audit export --config collector.toml "
        "--out audit.jsonl`), run the first command; at the collector, the second:"
    ), new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    pdf.set_font("Courier", "", 7)
    for command in _VERIFY:
        pdf.multi_cell(0, 4.2, command, new_x="LMARGIN", new_y="NEXT")
    pdf.embed_file(bytes=(canonical_json(cp.to_dict()) + "\n").encode("utf-8"), basename=CHECKPOINT_ATTACHMENT,
                   desc="the audit log's latest signed checkpoint", mime_type="application/json",
                   modification_date=ms_to_dt(cp.at_ms))  # fmt: skip


def render(
    report: ContractReport, trend: Sequence[ContractReport], now_ms: int, checkpoint: Checkpoint | None
) -> bytes:
    """The review of `report`; `trend` holds the twelve monthly reports ending with it, oldest first;
    `checkpoint` is the audit log's latest signed checkpoint."""
    r = report
    fmt = local_time(r.timezone)
    title = f"Monthly vendor review: {r.vendor}, contract {r.contract_id}, {r.period.label}"
    pdf = _Review(title, f"linewarden collector, {fmt(now_ms)} {r.timezone}")
    pdf.set_creation_date(ms_to_dt(now_ms))
    pdf.set_title(text(title))
    pdf.set_author("linewarden collector")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(0, 7, text(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 8.5)
    pdf.multi_cell(0, 4.5, text(
        f"Period {fmt(r.period.start_ms)} to {fmt(r.period.end_ms)} ({r.timezone}): {period_note(r, fmt)}. "
        f"Fee {r.fee:.2f} {r.currency}." + (" PARTIAL PERIOD: figures are provisional." if r.partial else "")
        + (" Items marked DISPUTED are not settled yet." if any(d.state == "open" for d in r.disputes) else "")
    ), new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    pdf.ln(2)
    _kpis(pdf, r)

    pdf.section("SLA compliance per uptime line")
    pdf.grid(
        ["Scope", "Coverage", "Target", "Uptime", "Observed share", "Observed", "Downtime", "Met"],
        [[u.scope, u.coverage, f"{u.target_pct} %", _pct(u.uptime_pct), _pct(u.observed_pct),
          duration(u.observed_ms), duration(int(u.measure.downtime_ms)),
          {"not_observed": "n/a: not observed", "insufficient_data": "n/a: insufficient data"}.get(
              u.status, "yes" if u.met else "NO")] for u in r.uptime],
        (26, 16, 12, 14, 16, 16, 14, 20),
    )  # fmt: skip

    pdf.section("Response and resolution per severity")
    pdf.grid(
        ["Severity", "Incidents", "Response met", "Response breached", "Response %", "Resolution met",
         "Resolution breached", "Resolution %"],
        [[s.severity.value, s.incidents, s.response_met, s.response_breached, _pct(s.response_compliance_pct),
          s.resolution_met, s.resolution_breached, _pct(s.resolution_compliance_pct)]
         for s in r.scorecard.by_severity if s.incidents],
        (12, 12, 14, 16, 14, 14, 16, 14),
    )  # fmt: skip
    _severity_chart(pdf, r)

    pdf.section("Incidents")
    shown = notable(r.incidents)
    if len(shown) < len(r.incidents):
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4.5, f"{len(shown)} of {len(r.incidents)} incidents: the disputed, breached and recurring "
                       "ones first, then by severity. Every incident is in the incidents table (incidents.csv).",
                       new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    pdf.grid(
        ["Incident", "Asset", "Sev.", "Notified", "Acknowl.", "Restored", "Response", "Resolution", "Rec.",
         "RCA", "Disputed"],
        [[i.id, i.asset, i.severity.value, fmt(i.notified_ms), fmt(i.acknowledged_ms), fmt(i.restored_ms),
          _met(i.response), _met(i.resolution), "yes" if i.recurring else "",
          "-" if i.rca is None else i.rca.status.replace("_", " "),
          ("DISPUTED " + ", ".join(i.disputed)) if i.disputed else ""] for i in shown],
        (14, 16, 8, 17, 17, 17, 18, 18, 7, 12, 24),
    )  # fmt: skip

    pdf.section("Credits and their arithmetic")
    pdf.grid(["Kind", "Ref", "Detail", "Amount"], _arithmetic(r), (20, 30, 40, 60))

    pdf.section("Disputes and their outcomes")
    pdf.grid(
        ["Dispute", "Incident", "Field", "Recorded", "Vendor says", "State", "Settled value", "Vendor's reason",
         "Plant IT's reason"],
        [[d.id, d.incident_id, d.field, _value(d.field, d.disputed_value, fmt), _value(d.field, d.proposed_value, fmt),
          "OPEN (disputed)" if d.state == "open" else d.outcome, _value(d.field, d.settled_value, fmt),
          f"{d.opened_by}, {fmt(d.opened_ms)}: {d.reason}",
          f"{d.settled_by}, {fmt(d.settled_ms)}: {d.settle_reason}" if d.settled_ms else ""]
         for d in r.disputes],
        (12, 12, 24, 18, 18, 16, 18, 32, 32),
    )  # fmt: skip

    pdf.section("Twelve-month trend", room=60)
    _trend_charts(pdf, r, trend)
    pdf.grid(
        ["Month", *[f"Uptime {u.scope}" for u in r.uptime[:4]], "Incidents", "MTTA", "MTTR", "Credits", "Score"],
        [[t.period.label + (" (partial)" if t.partial else ""),
          *[_pct(next((x.uptime_pct for x in t.uptime if x.scope == u.scope), None)) for u in r.uptime[:4]],
          t.scorecard.incidents, duration(t.scorecard.mtta_ms), duration(t.scorecard.mttr_ms),
          f"{t.credits.total:.2f}", str(t.scorecard.score)] for t in trend],
        (20, *[18] * len(r.uptime[:4]), 12, 14, 14, 16, 12),
    )  # fmt: skip
    _evidence(pdf, checkpoint, fmt, r.timezone)
    return bytes(pdf.output())
