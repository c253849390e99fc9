"""A whole day of re-planning through the real service, checked after every step.

    python -m bench.simulate --osm ../shared/data/osm/liechtenstein.osm.pbf \
        --visits 300 --staff 25 --seed 1 [--seed 2 ...] [--days 1] [--db sqlite|postgresql] \
        [--findings sim-findings.jsonl]

Setup: ``python -m app serve`` as a subprocess on a free port with a fresh SQLite file or
PostgreSQL schema and the default (in-process) job backend; per seed an organisation made with
``python -m app create-org``, two planner keys, and a generated district imported through
``POST /v1/import``. Each day is planned with ``POST /v1/plans?wait=``, then a clock moves from
the first shift start to the last shift end through a seeded timeline (:mod:`bench._sim_events`):
sick calls before and during shifts (whole day and partial), a carer coming back, cancellations,
urgent visits of every priority and impossible ones, delays and overruns, visits reported by the
nurse's own sign-in, clients out, two planners racing on one version (one 201, one 409), a fresh
plan of the day, and a server restart (SIGTERM or SIGKILL) on the same database. A reader thread
fetches carers' routes with ETags all along.

After every step the simulator's own checker (:mod:`bench._sim_check`, no code shared with the
service) checks the stored version against what was sent: hard rules, frozen stops, event effects;
then every carer's route is fetched with ``If-None-Match``: the ETag must change exactly for the
carers whose stops changed, and the route must show the current version's stops.

The last line of stdout is one JSON summary (see :func:`summary`); each failure (step, event,
status, message, violation ids; never names or addresses) is a JSON line in ``--findings``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._sim_check import (
    EFFECT,
    END_OF_TIME,
    HARD,
    Availability,
    DayTruth,
    TravelBook,
    Violation,
    VisitTruth,
    changed_staff,
    check_facts,
    check_frozen,
    check_plan,
    hhmm,
    routes_by_staff,
    secs,
    stop_signature,
)
from bench._sim_events import Step, make_event, timeline
from bench._sim_server import ROOT, Api, Server, Stats, drop_schema, fresh_database, message

FIRST_DAY = dt.date(2027, 3, 1)
DISTRICT = "north"
FREEZE_S = 20 * 60
NURSE_PASSWORD = "simulated-nurse-password"
#: The issue's latency floor: an event answer slower than this is written down as a finding.
SLOW_EVENT_S = 3.0


class Findings:
    """Failures as JSON lines (ids only) and the summary's counters."""

    def __init__(self, path: Path | None, context: dict[str, Any]) -> None:
        self.path = path
        self.context = context
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.lost: set[tuple[int, int]] = set()
        self.codes: Counter[str] = Counter()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def add(self, category: str, **fields: Any) -> None:
        """Count one failure of ``category`` and write it down."""
        with self.lock:
            self.counts[category] += 1
            for v in fields.get("violations", []):
                self.codes[v["code"]] += 1
            if self.path is not None:
                line = {"category": category, **self.context, **fields}
                with self.path.open("a") as f:
                    f.write(json.dumps(line, sort_keys=True) + "\n")


class Reader(threading.Thread):
    """Fetches random carers' routes with ETags all day; flags 5xx and versions older than known."""

    def __init__(self, api: Api, staff: list[str], day: str, sim: DaySim) -> None:
        super().__init__(daemon=True)
        self.api, self.staff, self.day, self.sim = api, staff, day, sim
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.etags: dict[str, str] = {}
        self.reads = 0

    def run(self) -> None:
        rng = random.Random(len(self.staff))
        while not self.stop.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            staff = rng.choice(self.staff)
            known = self.sim.published_version
            headers = {"If-None-Match": self.etags[staff]} if staff in self.etags else None
            r = self.api.call(
                "GET",
                f"/v1/staff/{staff}/route",
                what="route",
                headers=headers,
                params={"date": self.day},
            )
            self.reads += 1
            if r.status_code == 200:
                self.etags[staff] = r.headers.get("etag", "")
                if r.json()["plan_version"] < known:
                    self.sim.findings.add(
                        "stale_routes",
                        step="reader",
                        staff=staff,
                        message=f"read version {r.json()['plan_version']} after {known}",
                    )
            elif r.status_code >= 500 and not self.paused.is_set():
                self.sim.findings.add(
                    "errors_5xx",
                    step="reader",
                    staff=staff,
                    status=r.status_code,
                    message=message(r),
                )
            time.sleep(0.15)


class DaySim:
    """One seed's organisation and its days."""

    def __init__(
        self, server: Server, stats: Stats, findings: Findings, args: argparse.Namespace, seed: int
    ) -> None:
        self.server, self.stats, self.findings, self.args, self.seed = (
            server,
            stats,
            findings,
            args,
            seed,
        )
        self.rng = random.Random(seed)
        out = server.cli(
            "create-org", f"Simulated org {seed}", "--dev", "--timezone", "Europe/Vaduz"
        )
        self.admin_key = out.strip().splitlines()[-1]
        self.admin = Api(server.base, self.admin_key, stats)
        self.planners = [self._key(f"planner {c}") for c in "AB"]
        self.nurses: dict[str, Api] = {}
        self.nurse_since: dict[str, float] = {}
        self.kinds: dict[str, Counter[str]] = defaultdict(Counter)
        self.events = 0
        self.days = 0
        self.plan_latency: list[float] = []
        self.published_version = 0
        self.book = TravelBook()
        self.unplaced_urgent = 0
        self.evno = 0
        self.seen: set[tuple[int, str, str | None, str | None]] = set()

    def close(self) -> None:
        """Close every client's connections."""
        for api in [self.admin, *self.planners, *self.nurses.values()]:
            api.close()

    def _key(self, name: str) -> Api:
        r = self.admin.call("POST", "/v1/api-keys", json={"name": name, "role": "planner"})
        r.raise_for_status()
        return Api(self.server.base, r.json()["key"], self.stats)

    def nurse(self, staff: str) -> Api:
        """The nurse's own signed-in client (a user linked to the staff row; made once).

        Sign-in tokens last 30 minutes (``TOKEN_TTL_S``): a token older than 20 is renewed.
        """
        email = f"nurse.{staff}@seed{self.seed}.example"
        if staff not in self.nurses:
            body = {"email": email, "role": "nurse", "staff": staff, "password": NURSE_PASSWORD}
            r = self.admin.call("POST", "/v1/users", json=body)
            r.raise_for_status()
        elif time.monotonic() - self.nurse_since[staff] < 20 * 60:
            return self.nurses[staff]
        t = self.admin.call(
            "POST", "/v1/auth/token", json={"email": email, "password": NURSE_PASSWORD}
        )
        t.raise_for_status()
        if staff in self.nurses:
            self.nurses[staff].close()
        self.nurses[staff] = Api(self.server.base, t.json()["access_token"], self.stats)
        self.nurse_since[staff] = time.monotonic()
        return self.nurses[staff]

    # -- one day --------------------------------------------------------------------------------

    def run_day(self, batch: dict[str, Any], day: str) -> None:
        """Import, plan and live through one day."""
        self.day = day
        self.days += 1
        self.published_version = 0
        self.step_no = f"{day}#plan"
        r = self.admin.call("POST", "/v1/import", json=batch)
        r.raise_for_status()
        truth = DayTruth.from_batch(batch, day)
        self.truth = truth
        self.clients = [c["external_id"] for c in batch["clients"]]
        t0 = time.perf_counter()
        plan = self.fresh_plan("plan_day")
        self.plan_latency.append(time.perf_counter() - t0)
        if plan is None:
            return
        self.plan = plan
        self.check_version(plan, "plan_day", None)
        self.etags: dict[str, str] = {}
        self.sweep(None, None, "plan_day")
        staff = sorted(truth.shifts)
        reader = Reader(Api(self.server.base, self.admin_key, self.stats), staff, day, self)
        self.reader = reader
        reader.start()
        try:
            for i, step in enumerate(
                timeline(self.rng, truth, visits=self.args.visits, staff=len(staff))
            ):
                self.step_no = f"{day}#{i}@{hhmm(step.at)}"
                self.do(step)
        finally:
            reader.stop.set()
            reader.join(timeout=10)
            reader.api.close()

    def do(self, step: Step) -> None:
        """One step of the day's timeline."""
        if step.kind == "restart":
            self.restart(signal.SIGKILL if step.variant == "SIGKILL" else signal.SIGTERM)
        elif step.kind == "fresh_plan":
            name = f"fresh_plan:{step.variant}"
            self.kinds[name]["sent"] += 1
            new = self.fresh_plan(name, now=step.at if step.variant == "now" else None)
            if new is not None:
                facts = check_facts(new, self.truth)
                self.check_version(new, name, None, extra=facts)
                self.sweep(self.plan, new, name, exact=False)
                self.plan = new
        elif step.kind == "race":
            self.race(step)
        elif step.kind == "end_of_day":
            self.check_version(self.plan, "end_of_day", None)
        else:
            ev = make_event(step, self.rng, self.plan, self.truth, self.clients)
            name = step.kind + (f":{step.variant}" if step.variant else "")
            if ev is None:
                self.kinds[name]["skipped"] += 1
                return
            staff = ev.pop("_staff", None)
            api = self.nurse(staff) if staff is not None else self.planners[0]
            if staff is not None and self.kinds[name]["sent"] == 0:
                self.nurse_probe(step, staff)
            self.post(step, name, [ev], api)

    # -- events ---------------------------------------------------------------------------------

    def _send(
        self, api: Api, events: list[dict[str, Any]], at: int, version: int, what: str = "event"
    ) -> Any:
        """POST events; ``what="event"`` counts the answer's latency in the summary."""
        return api.call(
            "POST",
            f"/v1/plans/{self.plan['id']}/events",
            what=what,
            json={"events": events, "now": hhmm(at)},
            headers={"If-Match": f'"{version}"'},
        )

    def post(self, step: Step, name: str, events: list[dict[str, Any]], api: Api) -> None:
        """Post events on the current version and check what comes back."""
        self.kinds[name]["sent"] += 1
        self.events += 1
        t0 = time.perf_counter()
        r = self._send(api, events, step.at, self.plan["version"])
        took = time.perf_counter() - t0
        if took > SLOW_EVENT_S:
            self.findings.add("slow_events", event=name, step=self.step_no, seconds=round(took, 2))
        self.kinds[name][str(r.status_code)] += 1
        self.accept(step, name, events, r)

    def accept(self, step: Step, name: str, events: list[dict[str, Any]], r: Any) -> None:
        """Check an event post's answer; on 201 make it the current version."""
        ids = [
            {k: v for k, v in e.items() if k in ("kind", "visit", "staff", "client")}
            for e in events
        ]
        if r.status_code != 201:
            category = "errors_5xx" if r.status_code >= 500 else "refused"
            self.findings.add(
                category,
                step=self.step_no,
                event=name,
                events=ids,
                status=r.status_code,
                message=message(r),
            )
            return
        new = r.json()
        numbers = [self.apply(e, step.at) for e in events]
        base = self.plan
        exempt, exempt_from = self.exemptions(events, base)
        frozen = check_frozen(
            base,
            new,
            now=step.at,
            freeze_s=FREEZE_S,
            exempt_visits=exempt,
            exempt_from=exempt_from,
        )
        self.check_version(new, name, numbers, extra=frozen, events=ids)
        for e, n in zip(events, numbers, strict=True):
            if e["kind"] == "urgent_visit_added":
                self.check_urgent(e, n, new, name)
        self.sweep(base, new, name)
        self.check_stored(events, name)
        self.plan = new

    def apply(self, e: dict[str, Any], now: int) -> int:
        """Record an accepted event in the truth; its number."""
        self.evno += 1
        n, t = self.evno, self.truth
        kind = e["kind"]
        if kind in ("carer_absent", "carer_available"):
            a = Availability(
                "absent" if kind == "carer_absent" else "available",
                secs(e["from_time"]) if e.get("from_time") else 0,
                secs(e["until_time"]) if e.get("until_time") else END_OF_TIME,
                n,
            )
            t.availability.setdefault(e["staff"], []).append(a)
        elif kind == "visit_cancelled":
            t.cancelled[e["visit"]] = n
        elif kind == "urgent_visit_added":
            t.visits[e["visit"]] = VisitTruth(
                id=e["visit"],
                client=e["client"],
                windows=[(secs(w["start"]), secs(w["end"])) for w in e["windows"]],
                duration=e["duration_minutes"] * 60,
                competences=frozenset(e.get("competences", [])),
                carers=e.get("carers_required", 1),
                urgent_event=n,
            )
        elif kind in ("visit_delayed", "actual_times_reported"):
            staff = next(
                r["staff"]
                for r in self.plan["routes"]
                for s in r["stops"]
                if s.get("visit") == e["visit"]
            )
            end = secs(e["actual_end"]) if e.get("actual_end") else None
            t.actuals[e["visit"]] = (secs(e["actual_start"]), end, staff, n)
        elif kind == "client_unavailable":
            t.unavailable.setdefault(e["client"], []).append(
                (secs(e["from_time"]), secs(e["until_time"]), now, n)
            )
        return n

    def exemptions(
        self, events: list[dict[str, Any]], base: dict[str, Any]
    ) -> tuple[set[str], dict[str, int]]:
        """Visits and carers' route tails that these events may change inside the freeze."""
        visits: set[str] = set()
        tails: dict[str, int] = {}
        where = {
            s["visit"]: (r["staff"], secs(s["start"]))
            for r in base["routes"]
            for s in r["stops"]
            if s["kind"] == "visit"
        }
        for e in events:
            if e["kind"] == "visit_cancelled":
                visits.add(e["visit"])
            elif e["kind"] == "carer_absent":
                start = secs(e["from_time"]) if e.get("from_time") else 0
                tails[e["staff"]] = min(tails.get(e["staff"], start), start)
                visits |= {v for v, (st, at) in where.items() if st == e["staff"] and at >= start}
            elif e["kind"] in ("visit_delayed", "actual_times_reported") and e["visit"] in where:
                st, at = where[e["visit"]]
                tails[st] = min(tails.get(st, at), at)
        # Reported times push a carer's later stops, and a pushed two-carer visit its partner.
        doubles = {v for v, t in self.truth.visits.items() if t.carers == 2}
        for _ in range(3):
            for r in base["routes"]:
                for s in r["stops"]:
                    vid = s.get("visit")
                    if vid not in doubles or r["staff"] not in tails:
                        continue
                    if secs(s["start"]) < tails[r["staff"]]:
                        continue
                    for other in base["routes"]:
                        if any(x.get("visit") == vid for x in other["stops"]):
                            at = secs(s["start"])
                            tails[other["staff"]] = min(tails.get(other["staff"], at), at)
        return visits, tails

    def check_version(
        self,
        plan: dict[str, Any],
        step: str,
        numbers: list[int] | None,
        *,
        extra: list[Violation] | None = None,
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        """Hard rules, effects and frozen stops of one version; count and write what fails."""
        found = check_plan(plan, self.truth, self.book) + (extra or [])
        hard = [v for v in found if v.code in HARD]
        effect = [v for v in found if v.code in EFFECT]
        frozen = [v for v in found if v.code == "frozen_changed"]
        context: dict[str, Any] = {
            "step": self.step_no if step != "plan_day" else "plan_day",
            "event": step,
        }
        if events:
            context["events"] = events
        context["version"] = plan.get("version")
        if hard:
            # Every version with a broken rule counts; the findings name each violation once.
            keys = {(self.days, v.code, v.visit, v.staff) for v in hard}
            fresh = [v for v in hard if (self.days, v.code, v.visit, v.staff) not in self.seen]
            self.seen |= keys
            self.findings.add(
                "invalid_plans",
                **context,
                violations=[v.as_dict() for v in fresh[:50]],
                violation_count=len(hard),
                new_violations=len(fresh),
            )
        if frozen:
            with self.findings.lock:
                self.findings.counts["frozen_changes"] += len(frozen) - 1
            self.findings.add(
                "frozen_changes",
                **context,
                violations=[v.as_dict() for v in frozen[:50]],
                violation_count=len(frozen),
            )
        new_lost = {
            (self.seed * 1000 + self.days, v.event) for v in effect if v.event is not None
        } - self.findings.lost
        if new_lost:
            self.findings.lost |= new_lost
            with self.findings.lock:
                self.findings.counts["lost_events"] += len(new_lost) - 1
            lost = {n for _, n in new_lost}
            shown = [v.as_dict() for v in effect if v.event in lost][:50]
            self.findings.add("lost_events", **context, violations=shown, lost=sorted(lost))

    def check_urgent(self, e: dict[str, Any], n: int, plan: dict[str, Any], name: str) -> None:
        """An urgent visit is placed, or unassigned with its reason (counted as unplaced)."""
        reason = next((u for u in plan["unassigned"] if u["visit"] == e["visit"]), None)
        if reason is not None:
            self.unplaced_urgent += 1
            self.findings.add(
                "unplaced_urgent",
                step=self.step_no,
                event=name,
                visit=e["visit"],
                reason=reason["reason"],
                message=reason["detail"][:200],
            )

    def check_stored(self, events: list[dict[str, Any]], name: str) -> None:
        """Events as data: a cancelled visit reads cancelled, an urgent visit exists as a visit."""
        for e in events:
            if e["kind"] not in ("visit_cancelled", "urgent_visit_added"):
                continue
            r = self.admin.call("GET", f"/v1/visits/{e['visit']}")
            ok = r.status_code == 200 and (
                e["kind"] != "visit_cancelled" or r.json().get("status") == "cancelled"
            )
            if not ok:
                got = r.json().get("status") if r.status_code == 200 else r.status_code
                self.findings.add(
                    "events_not_stored",
                    step=self.step_no,
                    event=name,
                    visit=e["visit"],
                    message=f"GET /v1/visits/{{id}} gave {got}",
                )

    # -- routes and ETags -----------------------------------------------------------------------

    def sweep(
        self,
        base: dict[str, Any] | None,
        new: dict[str, Any] | None,
        name: str,
        *,
        exact: bool = True,
    ) -> None:
        """Every carer's route with ``If-None-Match``: ETags change exactly where stops changed."""
        plan = new or self.plan
        self.published_version = plan["version"]
        changed = None if base is None or new is None else changed_staff(base, new)
        mine = routes_by_staff(plan)
        if (
            changed is not None
            and exact
            and new is not None
            and new is not base
            and new.get("diff")
        ):
            claimed = set(new["diff"].get("affected_staff", []))
            if claimed != changed:
                self.findings.add(
                    "diff_mismatch",
                    step=self.step_no,
                    event=name,
                    claimed_not_changed=sorted(claimed - changed),
                    changed_not_claimed=sorted(changed - claimed),
                )
        for staff in sorted(self.truth.shifts):
            old = self.etags.get(staff)
            r = self.admin.call(
                "GET",
                f"/v1/staff/{staff}/route",
                what="route",
                headers={"If-None-Match": old} if old else None,
                params={"date": self.day},
            )
            if r.status_code >= 500:
                self.findings.add(
                    "errors_5xx",
                    step=self.step_no,
                    event=name,
                    staff=staff,
                    status=r.status_code,
                    message=message(r),
                )
                continue
            if r.status_code == 304:
                if changed is not None and staff in changed:
                    self.findings.add(
                        "stale_routes",
                        step=self.step_no,
                        event=name,
                        staff=staff,
                        message="stops changed but the ETag did not",
                    )
                continue
            if r.status_code != 200:
                self.findings.add(
                    "refused",
                    step=self.step_no,
                    event=name,
                    staff=staff,
                    status=r.status_code,
                    message=message(r),
                )
                continue
            body = r.json()
            self.etags[staff] = r.headers.get("etag", "")
            shown = [x[:5] for x in stop_signature(body)]
            expected = [x[:5] for x in mine.get(staff, [])]
            if body["plan_version"] != plan["version"] or shown != expected:
                self.findings.add(
                    "stale_routes",
                    step=self.step_no,
                    event=name,
                    staff=staff,
                    message=f"route shows version {body['plan_version']}, "
                    f"plan is {plan['version']}; stops equal: {shown == expected}",
                )
            elif changed is not None and exact and staff not in changed and old is not None:
                self.findings.add(
                    "spurious_etag_changes",
                    step=self.step_no,
                    event=name,
                    staff=staff,
                    message="ETag changed, stops did not",
                )

    # -- planners' race, fresh plan, restart ----------------------------------------------------

    def race(self, step: Step) -> None:
        """Two planners post on one version at once: one 201, one 409; the loser resends."""
        name = "race"
        first = make_event(step, self.rng, self.plan, self.truth, self.clients)
        second = make_event(step, self.rng, self.plan, self.truth, self.clients)
        if first is None or second is None or first == second:
            self.kinds[name]["skipped"] += 1
            return
        version = self.plan["version"]
        barrier = threading.Barrier(2)
        answers: list[Any] = [None, None]

        def go(i: int, ev: dict[str, Any]) -> None:
            barrier.wait()
            answers[i] = self._send(self.planners[i], [ev], step.at, version)

        threads = [
            threading.Thread(target=go, args=(i, ev)) for i, ev in enumerate([first, second])
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.events += 2
        self.kinds[name]["sent"] += 2
        codes = sorted(a.status_code for a in answers)
        for c in codes:
            self.kinds[name][str(c)] += 1
        if codes != [201, 409]:
            self.findings.add(
                "race_outcome",
                step=self.step_no,
                event=name,
                statuses=codes,
                messages=[message(a) for a in answers],
            )
        winners = [i for i, a in enumerate(answers) if a.status_code == 201]
        if not winners:
            for a, ev in zip(answers, [first, second], strict=True):
                if a.status_code >= 500:
                    self.accept(step, name, [ev], a)
            return
        w = winners[0]
        self.accept(step, name, [[first, second][w]], answers[w])
        loser = [first, second][1 - w]
        if len(winners) == 1 and loser["visit"] not in self.truth.cancelled:
            self.post(step, "race_resend", [loser], self.planners[1 - w])

    def fresh_plan(self, name: str, now: int | None = None) -> dict[str, Any] | None:
        """``POST /v1/plans?wait=`` for the day (polls the job if it outlasts the wait).

        ``now``: the planner's clock (the plan keeps what started before it), else the whole
        day is planned around its facts.
        """
        body: dict[str, Any] = {"district": DISTRICT, "date": self.day}
        if now is not None:
            body["now"] = hhmm(now)
        if self.args.plan_time_limit:
            body["options"] = {"time_limit_s": self.args.plan_time_limit}
        r = self.planners[0].call("POST", "/v1/plans", json=body, params={"wait": "60"})
        self.kinds[name][str(r.status_code)] += 1
        if r.status_code == 202:
            job = r.json()["id"]
            for _ in range(600):
                time.sleep(0.5)
                j = self.admin.call("GET", f"/v1/jobs/{job}").json()
                if j["status"] in ("done", "failed", "cancelled"):
                    break
            if j["status"] != "done":
                self.findings.add(
                    "errors_5xx" if j["status"] == "failed" else "refused",
                    step=name,
                    event=name,
                    status=j["status"],
                    message=str(j.get("error"))[:300],
                )
                return None
            r = self.admin.call("GET", f"/v1/plans/{j['result_plan_id']}")
        if r.status_code not in (200, 201):
            category = "errors_5xx" if r.status_code >= 500 else "refused"
            self.findings.add(
                category, step=name, event=name, status=r.status_code, message=message(r)
            )
            return None
        plan: dict[str, Any] = r.json()
        return plan

    def restart(self, sig: int) -> None:
        """Kill and restart the server on the same database; routes and version must stay."""
        name = f"restart:{signal.Signals(sig).name}"
        self.kinds[name]["sent"] += 1
        self.reader.paused.set()
        time.sleep(0.2)
        self.server.stop(sig)
        self.server.start()
        for api in [self.admin, *self.planners, *self.nurses.values(), self.reader.api]:
            api.reset()
        self.reader.paused.clear()
        r = self.admin.call(
            "GET", f"/v1/districts/{DISTRICT}/plans/current", params={"date": self.day}
        )
        if r.status_code != 200 or r.json()["version"] != self.plan["version"]:
            self.findings.add(
                "stale_routes",
                step=self.step_no,
                event=name,
                status=r.status_code,
                message="current version after the restart differs",
            )
        self.sweep(self.plan, self.plan, name)
        self.kinds[name]["ok"] += 1

    def nurse_probe(self, step: Step, staff: str) -> None:
        """A nurse may not report another carer's visit (404) nor a sick call (403)."""
        other = next(
            (
                s["visit"]
                for r in self.plan["routes"]
                if r["staff"] != staff
                for s in r["stops"]
                if s["kind"] == "visit"
            ),
            None,
        )
        probes: list[tuple[dict[str, Any], int]] = [({"kind": "carer_absent", "staff": staff}, 403)]
        someone = next((r["staff"] for r in self.plan["routes"] if r["staff"] != staff), None)
        if someone is not None:  # another carer's whereabouts are not hers to report
            ev = {"kind": "carer_position_reported", "staff": someone, "at": hhmm(step.at)}
            probes.append(({**ev, "lat": 47.1, "lon": 9.5}, 404))
        if other is not None:
            ev = {
                "kind": "actual_times_reported",
                "visit": other,
                "actual_start": hhmm(step.at - 3600),
            }
            probes.append((ev, 404))
        for ev, want in probes:
            r = self._send(self.nurse(staff), [ev], step.at, self.plan["version"], "probe")
            self.kinds["nurse_probe"][str(r.status_code)] += 1
            if r.status_code != want:
                self.findings.add(
                    "nurse_probe",
                    step=self.step_no,
                    event=ev["kind"],
                    status=r.status_code,
                    expected=want,
                    message=message(r),
                )


def summary(
    sims: list[DaySim],
    stats: Stats,
    findings: Findings,
    args: argparse.Namespace,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The one JSON line: totals over every seed and day."""
    lat = sorted(stats.event_latency)
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for s in sims:
        for k, c in s.kinds.items():
            kinds[k].update(c)
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0
    c = findings.counts
    return {
        "osm": Path(args.osm).name,
        "db": args.db,
        "visits": args.visits,
        "staff": args.staff,
        "seeds": args.seed,
        "days": sum(s.days for s in sims),
        "events": sum(s.events for s in sims),
        "errors_5xx": stats.errors_5xx,
        "invalid_plans": c["invalid_plans"],
        "frozen_changes": c["frozen_changes"],
        "lost_events": c["lost_events"],
        "stale_routes": c["stale_routes"],
        "unplaced_urgent": sum(s.unplaced_urgent for s in sims),
        "p95_latency_s": round(p95, 3),
        "max_latency_s": round(lat[-1], 3) if lat else 0.0,
        "median_latency_s": round(statistics.median(lat), 3) if lat else 0.0,
        "plan_latency_max_s": round(max((x for s in sims for x in s.plan_latency), default=0), 3),
        "refused": c["refused"],
        "dropped_connections": stats.dropped,
        "race_outcome": c["race_outcome"],
        "spurious_etag_changes": c["spurious_etag_changes"],
        "diff_mismatch": c["diff_mismatch"],
        "events_not_stored": c["events_not_stored"],
        "nurse_probe": c["nurse_probe"],
        "distinct_violations": sum(len(s.seen) for s in sims),
        "violation_codes": dict(sorted(findings.codes.items())),
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(kinds.items())},
        "statuses": dict(sorted(stats.statuses.items())),
        **extra,
    }


def _server_env(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, str]:
    import os

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REGION_", "JOB_"))
    }
    env.update(
        DATABASE_URL=url,
        REGION_FILE=str(Path(args.osm).resolve()),
        OSM_CACHE_DIR=str((ROOT / "osm_cache").resolve()),
        DATA_DIR=str(workdir),
        DEV_MODE="true",
        RATE_LIMIT_PER_S="0",
        LOGIN_ATTEMPTS_PER_MIN="100000",
        LOG_LEVEL="WARNING",
        PLANNING_WORKERS="1",
    )
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulation; print the JSON summary last."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--osm", required=True, help="region extract (.osm.pbf)")
    ap.add_argument("--visits", type=int, default=300)
    ap.add_argument("--staff", type=int, default=25)
    ap.add_argument("--seed", type=int, nargs="+", default=[1], help="one or more seeds")
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--findings", type=Path, default=None, help="JSON lines of every failure")
    ap.add_argument(
        "--plan-time-limit",
        type=float,
        default=None,
        help="solver seconds of each day plan (default: the service's SOLVER_TIME_LIMIT_S)",
    )
    args = ap.parse_args(argv)

    from app.routing.region import load_region
    from app.scheduling.sample import generate_district
    from app.store.seed import sample_batch

    t0 = time.perf_counter()
    region = load_region(Path(args.osm), modes=(), cache_dir=ROOT / "osm_cache")
    stats = Stats()
    findings = Findings(args.findings, {"osm": Path(args.osm).name, "db": args.db})
    sims: list[DaySim] = []
    with tempfile.TemporaryDirectory(prefix="sim-") as tmp:
        workdir = Path(tmp)
        url, schema = fresh_database(args.db, workdir)
        server = Server(_server_env(args, url, workdir), workdir)
        try:
            server.cli("migrate", "--dev")
            server.start()
            for seed in args.seed:
                findings.context["seed"] = seed
                sim = DaySim(server, stats, findings, args, seed)
                sims.append(sim)
                sample = generate_district(
                    region.addresses, visits=args.visits, staff=args.staff, seed=seed
                )
                for d in range(args.days):
                    day = FIRST_DAY + dt.timedelta(days=d)
                    batch = sample_batch(sample, day, district=DISTRICT, district_name="North")
                    sim.run_day(batch, day.isoformat())
        finally:
            for sim in sims:
                sim.close()
            server.stop()
            if args.findings is not None and server.log.is_file():
                # JSON logs without personal data (house rule), kept beside the findings.
                shutil.copy(server.log, args.findings.with_suffix(".server.log"))
                db_file = workdir / "sim.sqlite3"
                if db_file.is_file():
                    # The stored versions, to replay a finding (generated data only).
                    shutil.copy(db_file, args.findings.with_suffix(".sqlite3"))
            if schema is not None:
                drop_schema(schema)
    extra = {"server_start_s": server.start_s, "wall_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(summary(sims, stats, findings, args, extra)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
