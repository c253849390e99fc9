"""The planner's console and the nurse's view in a real browser, on the demo day.

One module-scoped service; the tests run in file order and build on each other's versions (the
sick call makes version 2, the moves and the taken recommendation the next ones, the comparison
reads them). Each writes a screenshot to docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

import re
import time
from typing import Any

from tests.web.conftest import Console, Live

VISIBLE = 15_000


def _plan(live: Live) -> dict[str, Any]:
    current = live.api("GET", f"/v1/districts/demo/plans/current?date={live.day}")
    assert current.status_code == 200, current.text
    body: dict[str, Any] = current.json()
    return body


def _visit_stops(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(r["staff"], s) for r in plan["routes"] for s in r["stops"] if s["kind"] == "visit"]


def test_sign_in_draws_the_demo_day_on_the_map_and_the_timeline(
    console: Console, live: Live
) -> None:
    plan = _plan(live)
    started = time.monotonic()
    console.sign_in(live.planner)
    page = console.page
    page.locator("#map .stop").first.wait_for(timeout=VISIBLE)
    page.locator(".tl-visit").first.wait_for(timeout=VISIBLE)
    drawn_s = time.monotonic() - started
    stops = _visit_stops(plan)
    assert page.locator("#map .stop").count() == len(stops)
    assert page.locator(".tl-visit").count() == len(stops)
    drawn_routes = [r for r in plan["routes"] if any(s["kind"] == "visit" for s in r["stops"])]
    assert page.locator("#map path.route").count() == len(drawn_routes)
    assert page.locator("#map path.road").count() == 2  # minor and main roads
    assert page.locator("#unassigned li").count() == max(1, len(plan["unassigned"]))
    assert page.locator("#map .unassigned-mark path").count() == len(plan["unassigned"])
    # Numbered stops: each route's visits count from 1.
    staff, first = stops[0]
    mark = page.locator(f'#map .stop[data-staff="{staff}"]').first
    assert mark.locator("text").text_content() == "1"
    console.shot("console-day")
    # A stop opens the visit (by keyboard here: stops of one client may lie on top of each other).
    page.locator(f'#map .stop[data-visit="{first["visit"]}"]').first.focus()
    page.keyboard.press("Enter")
    assert first["visit"] in page.locator("#visit-info").inner_text()
    # Versions and figures.
    assert "v1" in page.locator("#versions").inner_text()
    assert re.search(r"\d+ %", page.locator('[data-kpi="kpi_direct"]').inner_text())
    # Windows on hover.
    page.locator(".tl-visit").first.hover()
    assert page.locator(".tl-window").count() >= 1
    print(f"console drawn {drawn_s:.2f} s after sign-in ({len(stops)} stops)")
    assert drawn_s < 5


def test_swagger_ui_and_redoc_load_from_the_service(console: Console, live: Live) -> None:
    page = console.page
    page.goto(live.base + "/docs")
    page.locator(".swagger-ui .info .title").wait_for(timeout=VISIBLE)
    assert "Home-care planner API" in page.locator(".swagger-ui .info .title").inner_text()
    page.goto(live.base + "/redoc")
    page.locator("h1").first.wait_for(timeout=VISIBLE)
    assert "Home-care planner API" in page.locator("h1").first.inner_text()


def test_a_sick_call_from_the_page_makes_a_new_version(console: Console, live: Live) -> None:
    before = _plan(live)
    console.sign_in(live.planner)
    page = console.page
    page.locator("#map .stop").first.wait_for(timeout=VISIBLE)
    carer = next(r["staff"] for r in before["routes"] if r["staff"] != live.nurse_staff)
    page.get_by_label("What happened").select_option("carer_absent")
    page.locator("#ev-staff").select_option(carer)
    page.locator("#ev-from").fill("06:00")
    page.locator("#ev-now").fill("06:00")
    page.get_by_role("button", name="Send").click()
    page.locator("#event-result.ok").wait_for(timeout=60_000)
    after = _plan(live)
    assert after["version"] == before["version"] + 1
    assert f"Version {after['version']} made" in page.locator("#event-result").inner_text()
    assert not any(r["staff"] == carer and len(r["stops"]) > 2 for r in after["routes"])
    assert f"v{after['version']}" in page.locator("#versions").inner_text()
    console.shot("console-sick-call", "#event-form")


def test_a_stale_event_shows_the_newer_version_and_asks_again(console: Console, live: Live) -> None:
    console.sign_in(live.planner)
    page = console.page
    page.locator("#map .stop").first.wait_for(timeout=VISIBLE)
    shown = _plan(live)
    # Someone else changes the day behind the page's back ...
    visit = _visit_stops(shown)[-1][1]["visit"]
    r = live.api(
        "POST",
        f"/v1/plans/{shown['id']}/events",
        json={"events": [{"kind": "visit_cancelled", "visit": visit}], "now": "06:00"},
        headers={"If-Match": f'"{shown["version"]}"'},
    )
    assert r.status_code == 201, r.text
    newer = r.json()["version"]
    # ... the live stream updates the page, or a send gets 409 and the page reloads the day.
    console.allowed.append("status of 409 (Conflict)")
    page.get_by_label("What happened").select_option("visit_cancelled")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(
        "v => document.querySelector('#versions').innerText.includes('v' + v)", arg=newer
    )
    assert f"v{newer}" in page.locator("#versions").inner_text()


def _refused_and_valid(live: Live) -> tuple[str, str, str, dict[str, Any]]:
    plan = _plan(live)
    shifts = live.api("GET", f"/v1/shifts?district=demo&date={live.day}&limit=1000").json()
    late = max(shifts["items"], key=lambda s: s["start"])
    for staff, stop in _visit_stops(plan):
        if stop["start"] >= late["start"] or staff == late["staff"]:
            continue
        recs = live.api(
            "GET", f"/v1/plans/{plan['id']}/recommendations?visit={stop['visit']}"
        ).json()
        others = [it for it in recs["items"] if it["staff"] != staff]
        if others:
            return stop["visit"], late["staff"], stop["start"], others[0]
    raise AssertionError("no visit with another valid carer")


def test_a_refused_move_preview_and_a_committed_move(console: Console, live: Live) -> None:
    visit, late_carer, early, valid = _refused_and_valid(live)
    before = _plan(live)
    console.sign_in(live.planner)
    page = console.page
    page.locator("#map .stop").first.wait_for(timeout=VISIBLE)
    page.locator(f'.tl-visit[data-visit="{visit}"]').first.click()
    # Refused: a carer whose shift starts after the visit's time.
    page.get_by_label("To carer").select_option(late_carer)
    page.get_by_label("Start at (optional)").fill(early)
    page.get_by_role("button", name="Preview").click()
    page.locator("#move-result.bad").wait_for(timeout=VISIBLE)

    assert "Not valid" in page.locator("#move-result").inner_text()
    console.shot("console-move-refused", "#move-result")
    assert _plan(live)["version"] == before["version"]
    # Valid: a place the service recommends; preview, then commit.
    page.get_by_label("To carer").select_option(valid["staff"])
    page.get_by_label("Start at (optional)").fill(valid["start"])
    page.get_by_role("button", name="Preview").click()
    page.locator("#move-result.ok").wait_for(timeout=VISIBLE)
    assert "Valid" in page.locator("#move-result").inner_text()
    page.get_by_role("button", name="Commit").click()
    page.wait_for_function(
        "() => /Version \\d+ made/.test(document.querySelector('#move-result').innerText)"
    )
    after = _plan(live)
    assert after["version"] == before["version"] + 1
    staff = [s for s, st in _visit_stops(after) if st["visit"] == visit]
    assert staff == [valid["staff"]]
    console.shot("console-move-committed", "#move-result")


def test_a_recommendation_is_taken_in_one_click(console: Console, live: Live) -> None:
    before = _plan(live)
    console.sign_in(live.planner)
    page = console.page
    page.locator("#map .stop").first.wait_for(timeout=VISIBLE)
    for _staff, stop in _visit_stops(before):
        page.locator(f'.tl-visit[data-visit="{stop["visit"]}"]').first.click()
        page.locator("#visit-suggest").click()
        page.locator("#recs h3, #recs p").first.wait_for(timeout=VISIBLE)
        if page.locator("#recs li").count():
            break
    console.shot("console-recommendations", "#recs")
    page.locator("#recs li button").first.click()
    page.wait_for_function(
        "() => /Version \\d+ made/.test(document.querySelector('#message').innerText)"
    )
    assert _plan(live)["version"] == before["version"] + 1


def test_a_new_visit_is_placed_from_a_suggestion(console: Console, live: Live) -> None:
    before = _plan(live)
    console.sign_in(live.planner)
    page = console.page
    page.locator("#map .stop").first.wait_for(timeout=VISIBLE)
    client = _visit_stops(before)[0][1]["client"]
    page.get_by_label("What happened").select_option("urgent_visit_added")
    page.locator("#ev-client").select_option(client)
    page.locator("#ev-wstart").fill("08:00")
    page.locator("#ev-wend").fill("18:00")
    page.locator("#ev-now").fill("06:00")
    page.locator("#ev-suggest").click()
    page.locator("#recs li button").first.click()
    page.locator("#event-result.ok").wait_for(timeout=60_000)
    after = _plan(live)
    assert after["version"] == before["version"] + 1
    new = [s for _staff, s in _visit_stops(after) if s["visit"].startswith("URG-")]
    assert [s["client"] for s in new] == [client]


def test_two_versions_are_compared_in_plain_words(console: Console, live: Live) -> None:
    current = _plan(live)
    console.sign_in(live.planner)
    page = console.page
    page.locator("#map .stop").first.wait_for(timeout=VISIBLE)
    first = live.api("GET", f"/v1/plans?district=demo&date={live.day}&limit=100").json()
    v1 = next(p for p in first["items"] if p["version"] == 1)
    page.get_by_label("From version").select_option(str(v1["id"]))
    page.get_by_label("To version").select_option(str(current["id"]))
    page.get_by_role("button", name="Compare").click()
    page.locator("#compare-result h3").first.wait_for(timeout=VISIBLE)
    text = page.locator("#compare-result").inner_text()
    assert f"Version 1 to version {current['version']}" in text
    assert re.search(r"(handed to|taken over from|cancelled|moved from)", text)
    console.shot("console-compare", "#compare-result")


def test_an_open_page_follows_a_change_made_elsewhere(console: Console, live: Live) -> None:
    console.sign_in(live.planner)
    page = console.page
    page.locator("#map .stop").first.wait_for(timeout=VISIBLE)
    page.locator("#live").filter(has_text="Live").wait_for(timeout=VISIBLE)
    shown = _plan(live)
    visit = next(s["visit"] for staff, s in _visit_stops(shown) if staff != live.nurse_staff)
    r = live.api(
        "POST",
        f"/v1/plans/{shown['id']}/events",
        json={"events": [{"kind": "visit_cancelled", "visit": visit}], "now": "06:00"},
        headers={"If-Match": f'"{shown["version"]}"'},
    )
    assert r.status_code == 201, r.text
    newer = r.json()["version"]
    page.locator("#live").filter(has_text=f"version {newer}").wait_for(timeout=VISIBLE)
    assert page.locator(f'.tl-visit[data-visit="{visit}"]').count() == 0


def test_the_nurse_sees_her_day_at_phone_width(browser: Any, live: Live) -> None:
    phone = Console(browser, live, width=390, height=844)
    phone.sign_in(live.nurse, path=f"/?date={live.day}")
    page = phone.page
    page.locator("#nurse-stops li").first.wait_for(timeout=VISIBLE)
    route = live.api("GET", f"/v1/staff/{live.nurse_staff}/route?date={live.day}").json()
    visits = [s for s in route["stops"] if s["kind"] == "visit"]
    assert page.locator("#nurse-stops li").count() == len(visits)
    assert page.locator("#planner").is_hidden()
    assert page.locator("#day-nav").is_hidden()
    link = page.locator("#nurse-stops a.nav").first
    box = link.bounding_box()
    assert box is not None
    assert box["height"] >= 44  # a big target
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    phone.shot("nurse-phone")
    phone.close()
