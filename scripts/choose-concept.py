#!/usr/bin/env python3
"""Choose a concept vector's recommended fusion mode and α from `destein eval-concept` results.

Usage: python3 scripts/choose-concept.py [--cost-only] reports/NAME/results.json

The rule (run it on dev prompts; report the chosen setting's numbers from a separate test run):
  1. keep the steered settings whose perplexity change against raw is at most +30%, for both the mean and
     the median (the point estimates of the paired bootstrap), and whose Dist-3 is within 0.02 of raw's;
  2. among them, pick the one with the highest lower 95% bound of the judge-rate gain over raw
     (ties: the smaller α, then the order of the results file).
With --cost-only (for a concept that no judge we ship can read, such as formality), step 2 is instead: the
strongest eligible setting (the largest α; ties: the order of the results file). The judge's rate is then
printed but not used.
A results file without bootstrap intervals is refused.
"""

from __future__ import annotations

import json
import math
import sys

MAX_PERPLEXITY_CHANGE = 0.30
MAX_DIST3_CHANGE = 0.02


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def interval(setting: dict, key: str) -> dict:
    """The interval vs_raw[key], checked to have a finite point, lo and hi."""
    iv = (setting.get("vs_raw") or {}).get(key)
    if not isinstance(iv, dict) or not all(isinstance(iv.get(k), (int, float)) for k in ("point", "lo", "hi")):
        fail(f"setting {label(setting)} has no bootstrap interval `{key}`: not a results file of "
             "`destein eval-concept` with intervals")
    return iv


def label(s: dict) -> str:
    st = s.get("setting", {})
    alpha = st.get("alpha")
    return f"{st.get('site')}/{st.get('mode')} α=" + (f"{alpha:g}" if isinstance(alpha, (int, float)) else str(alpha))


def main() -> None:
    args = sys.argv[1:]
    cost_only = "--cost-only" in args
    args = [a for a in args if a != "--cost-only"]
    if len(args) != 1:
        fail("usage: choose-concept.py [--cost-only] reports/NAME/results.json")
    path = args[0]
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"cannot read {path}: {e}")
    settings = results.get("settings") if isinstance(results, dict) else None
    if not isinstance(settings, list) or not settings:
        fail(f"{path} has no `settings` list: not a results file of `destein eval-concept`")
    raw = [s for s in settings if s.get("vs_raw") is None]
    steered = [s for s in settings if s.get("vs_raw") is not None]
    if len(raw) != 1 or not steered:
        fail("expected one raw setting and at least one steered setting with intervals")
    for s in steered:
        for key in ("rate_gain", "perplexity_mean_change", "perplexity_median_change"):
            interval(s, key)
    judge = results.get("config", {}).get("judge", "?")
    print(f"judge {judge}; raw rate {raw[0]['rate']['point']:.3f}, Dist-3 {raw[0]['dist3']:.3f}")
    eligible = []
    for s in steered:
        v = s["vs_raw"]
        ppl_mean, ppl_median = v["perplexity_mean_change"]["point"], v["perplexity_median_change"]["point"]
        dist3 = v.get("dist3_change")
        reasons = []
        if not ppl_mean <= MAX_PERPLEXITY_CHANGE:
            reasons.append(f"mean perplexity {ppl_mean:+.1%} > +30%")
        if not ppl_median <= MAX_PERPLEXITY_CHANGE:
            reasons.append(f"median perplexity {ppl_median:+.1%} > +30%")
        if not (isinstance(dist3, (int, float)) and math.isfinite(dist3) and abs(dist3) <= MAX_DIST3_CHANGE):
            reasons.append(f"Dist-3 change {dist3} beyond ±0.02")
        gain = v["rate_gain"]
        dist3_text = f"{dist3:+.3f}" if isinstance(dist3, (int, float)) else str(dist3)
        print(f"  {label(s):28} gain {gain['point']:+.3f} [{gain['lo']:+.3f}, {gain['hi']:+.3f}], perplexity "
              f"mean {ppl_mean:+.1%} median {ppl_median:+.1%}, Dist-3 {dist3_text}: "
              + ("eligible" if not reasons else "out (" + "; ".join(reasons) + ")"))
        if not reasons:
            eligible.append(s)
    if not eligible:
        print("no steered setting keeps perplexity within +30% and Dist-3 within 0.02 of raw: no recommendation")
        sys.exit(1)
    if cost_only:
        best = max(enumerate(eligible), key=lambda e: (e[1]["setting"]["alpha"], -e[0]))[1]
        print(f"choice (--cost-only): mode {best['setting']['mode']}, α {best['setting']['alpha']:g} — the strongest of the "
              f"{len(eligible)} settings within the perplexity and Dist-3 budget")
        return
    best = max(enumerate(eligible), key=lambda e: (e[1]["vs_raw"]["rate_gain"]["lo"], -e[1]["setting"]["alpha"], -e[0]))[1]
    g = best["vs_raw"]["rate_gain"]
    print(f"choice: mode {best['setting']['mode']}, α {best['setting']['alpha']:g} — the highest lower 95% bound of "
          f"the rate gain among the {len(eligible)} eligible settings ({g['lo']:+.3f}; gain {g['point']:+.3f}, "
          f"rate {best['rate']['point']:.3f} vs raw {raw[0]['rate']['point']:.3f})")
    if g["lo"] <= 0:
        print("note: its interval includes no gain (lower bound ≤ 0): the gain is not established on these prompts")


if __name__ == "__main__":
    main()
