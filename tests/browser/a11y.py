"""axe-core on a page as it stands, in the light and the dark colour scheme: `assert_accessible(page, "a view")` fails
on any violation of impact serious or critical, listing each with its rule, impact, help text and target nodes.

axe comes from `axe-playwright-python`, which ships `axe.min.js` (no network). Playwright's `evaluate` runs it
through the DevTools protocol, which the page's Content-Security-Policy does not govern, so the checks run against
the site's real headers (no `bypass_csp`).
"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe

BLOCKING_IMPACTS = frozenset({"serious", "critical"})
SCHEMES = ("light", "dark")
_AXE = Axe()

SETTLE = """() => Promise.all(document.getAnimations()
  .filter((animation) => animation.effect.getComputedTiming().endTime !== Infinity)
  .map((animation) => animation.finished.catch(() => null)))"""
"""Wait for the transitions and finite animations (a new job row fades in, colours ease after a scheme change):
axe measures contrast with the colours of the moment."""


def blocking_violations(page: Any) -> list[dict[str, Any]]:
    """axe's violations of impact serious or critical on the page as it is now."""
    page.evaluate(SETTLE)
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_AXE.axe_script)
    results = page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    return [violation for violation in results["violations"] if violation["impact"] in BLOCKING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    """One paragraph per violation: what is wrong, how bad, where, and what axe measured on each node."""
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} [{violation['helpUrl']}]")
        for node in violation["nodes"]:
            summary = " ".join(node["failureSummary"].split())
            lines.append(f"    at {' '.join(map(str, node['target']))}: {summary}")
    return "\n".join(lines)


def assert_accessible(page: Any, view: str) -> None:
    """No serious or critical axe violation on the page in either colour scheme; the page's scheme is restored."""
    was_dark = page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches")
    found = []
    try:
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            violations = blocking_violations(page)
            if violations:
                found.append(f"{view}, {scheme} colour scheme:\n{describe(violations)}")
    finally:
        page.emulate_media(color_scheme="dark" if was_dark else "light")
    assert not found, "axe found serious or critical accessibility violations:\n" + "\n".join(found)
