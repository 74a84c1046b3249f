#!/usr/bin/env python3
"""Validate the vector-lab data in data/concepts/ (standard library only).

Usage: scripts/check-concepts.py [--stats] [REPO_ROOT]

Checks every file in data/concepts/ and exits 1 naming the first problem found. With --stats it also
prints the per-category counts and word-count ratios quoted in data/concepts/README.md.
"""
import json
import re
import sys
from collections import Counter
from statistics import mean, median
from pathlib import Path

MIN_PAIRS = 40
# Largest allowed ratio longer side / shorter side, in words. Formal paraphrases run a little longer.
RATIO_BOUND = {"formality.jsonl": 1.4}
DEFAULT_RATIO_BOUND = 1.3
PROMPT_WORDS = (5, 12)
PROMPT_FILES = ("neutral_dev.jsonl", "neutral_test.jsonl")
CATALOGUE_KEYS = {"id", "title", "away", "toward", "away_prefix", "toward_prefix", "pairs", "description"}
# Words that would make a "neutral" prompt lean toward the wedding topic; also banned from the
# away side of the wedding pairs, so that side really is about something else.
WEDDING_WORDS = {
    "wedding", "weddings", "bride", "brides", "groom", "grooms", "bridesmaid", "bridesmaids", "vow", "vows",
    "ring", "rings", "veil", "aisle", "altar", "bouquet", "bouquets", "newlyweds", "marriage", "married",
    "marry", "honeymoon", "engaged", "engagement", "ceremony", "reception", "guests", "confetti", "officiant",
}

# Plainly evaluative words that would tilt a "neutral" prompt toward one side of the sentiment concept.
SENTIMENT_WORDS = {
    "good", "bad", "great", "terrible", "awful", "wonderful", "lovely", "nice", "beautiful", "horrible",
    "excellent", "poor", "pleasant", "unpleasant", "happy", "sad", "angry", "love", "hate", "best", "worst",
    "perfect", "favourite", "amazing", "boring", "miserable", "delighted", "disappointed", "gloomy", "cheerful",
}


class Problem(Exception):
    pass


def words(text):
    return re.findall(r"[a-z]+", text.lower())


def read_jsonl(path):
    """Each non-empty line as a dict, with its line number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise Problem(f"{path}: cannot read: {e}")
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise Problem(f"{path}:{n}: not valid JSON: {e}")
        if not isinstance(row, dict):
            raise Problem(f"{path}:{n}: expected a JSON object")
        rows.append((n, row))
    return rows


def read_pairs(path):
    """The pairs of a file as (line, away, toward, category); sides must be non-empty strings."""
    pairs = []
    for n, row in read_jsonl(path):
        sides = [row.get(k) for k in ("toxic", "nontoxic", "category")]
        for key, value in zip(("toxic", "nontoxic", "category"), sides):
            if not isinstance(value, str) or not value.strip():
                raise Problem(f"{path}:{n}: '{key}' missing or empty")
        pairs.append((n, *sides))
    return pairs


def check_pairs(path, pairs):
    if len(pairs) < MIN_PAIRS:
        raise Problem(f"{path}: {len(pairs)} pairs, fewer than {MIN_PAIRS}")
    bound = RATIO_BOUND.get(path.name, DEFAULT_RATIO_BOUND)
    seen = {}
    for n, away, toward, _ in pairs:
        for text in (away, toward):
            key = text.strip().casefold()
            if key in seen:
                raise Problem(f"{path}:{n}: text repeats line {seen[key]}: {text!r}")
            seen[key] = n
        a, b = len(away.split()), len(toward.split())
        if max(a, b) / min(a, b) > bound:
            raise Problem(f"{path}:{n}: word counts {a} and {b} differ by more than the bound {bound}")
    if path.name == "weddings.jsonl":
        for n, away, toward, _ in pairs:
            if WEDDING_WORDS & set(words(away)):
                raise Problem(f"{path}:{n}: away side mentions a wedding: {away!r}")
            if not WEDDING_WORDS & set(words(toward)):
                raise Problem(f"{path}:{n}: toward side has no wedding word: {toward!r}")


def read_prompts(path):
    prompts = []
    for n, row in read_jsonl(path):
        prompt = row.get("prompt")
        text = prompt.get("text") if isinstance(prompt, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise Problem(f"{path}:{n}: no non-empty prompt.text")
        count = len(text.split())
        if not PROMPT_WORDS[0] <= count <= PROMPT_WORDS[1]:
            raise Problem(f"{path}:{n}: {count} words, outside {PROMPT_WORDS[0]}-{PROMPT_WORDS[1]}")
        if text.rstrip()[-1] in ".!?":
            raise Problem(f"{path}:{n}: a prompt is an opening to continue, not a full sentence: {text!r}")
        if WEDDING_WORDS & set(words(text)):
            raise Problem(f"{path}:{n}: neutral prompt mentions a wedding: {text!r}")
        if SENTIMENT_WORDS & set(words(text)):
            raise Problem(f"{path}:{n}: neutral prompt has a sentiment word: {text!r}")
        prompts.append((n, text))
    return prompts


def check_prompts(sets, pair_texts):
    """Dev and test must not share a prompt, and no prompt may occur inside a pair text."""
    first = {}
    for path, prompts in sets:
        for n, text in prompts:
            key = text.strip().casefold()
            if key in first:
                raise Problem(f"{path}:{n}: prompt repeats {first[key]}: {text!r}")
            first[key] = f"{path.name}:{n}"
            for pair_text in pair_texts:
                if key in pair_text.casefold():
                    raise Problem(f"{path}:{n}: prompt occurs in the pair text {pair_text!r}")


def read_catalogue(root, path):
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Problem(f"{path}: cannot read: {e}")
    if not isinstance(entries, list) or not entries:
        raise Problem(f"{path}: expected a non-empty JSON array")
    ids = set()
    for i, entry in enumerate(entries):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict) or set(entry) - {"recommended"} != CATALOGUE_KEYS:
            raise Problem(f"{where}: keys must be exactly {sorted(CATALOGUE_KEYS)}, and optionally recommended")
        if not all(isinstance(entry[k], str) and entry[k].strip() for k in CATALOGUE_KEYS):
            raise Problem(f"{where}: every value but recommended must be a non-empty string")
        check_recommended(where, entry.get("recommended", {}))
        if entry["id"] in ids:
            raise Problem(f"{where}: id {entry['id']!r} repeats")
        ids.add(entry["id"])
        for key in ("away_prefix", "toward_prefix"):
            if not entry[key].endswith(": "):
                raise Problem(f"{where}: {key} must end with ': ' (colon and space)")
        if not (root / entry["pairs"]).is_file():
            raise Problem(f"{where}: pairs file {entry['pairs']} does not exist")
    return entries


def check_recommended(where, rec):
    """recommended: {site: {"mode": fusion mode, "alpha": number in (0, 2], optional "scope": all | generated}},
    the measured setting per site."""
    if not isinstance(rec, dict):
        raise Problem(f"{where}: recommended must be an object keyed by site")
    for site, r in rec.items():
        if site not in ("heads", "attn_out") or not isinstance(r, dict) or set(r) - {"scope"} != {"mode", "alpha"}:
            raise Problem(f"{where}: recommended.{site} must be a site (heads, attn_out) with mode, alpha and optionally scope")
        if r.get("scope", "all") not in ("all", "generated"):
            raise Problem(f"{where}: recommended.{site}.scope must be all or generated")
        if r["mode"] not in ("rotate", "headwise", "headwise-reference", "add", "project"):
            raise Problem(f"{where}: recommended.{site}.mode {r['mode']!r} is not a fusion mode")
        if not isinstance(r["alpha"], (int, float)) or not 0 < r["alpha"] <= 2:
            raise Problem(f"{where}: recommended.{site}.alpha must be a number in (0, 2]")


def check(root):
    folder = root / "data" / "concepts"
    if not folder.is_dir():
        raise Problem(f"{folder}: no such folder")
    entries = read_catalogue(root, folder / "concepts.json")
    listed = {(root / e["pairs"]).resolve() for e in entries}
    pair_files = {}
    for path in sorted(folder.iterdir()):
        if path.name in ("README.md", "concepts.json") or path.name in PROMPT_FILES:
            continue
        if path.suffix != ".jsonl":
            raise Problem(f"{path}: unexpected file in {folder}")
        if path.resolve() not in listed:
            raise Problem(f"{path}: pairs file not listed in concepts.json")
        pair_files[path] = read_pairs(path)
        check_pairs(path, pair_files[path])
    # Pair files outside the folder (detox) only need to parse; their texts still count for disjointness.
    checked = {p.resolve() for p in pair_files}
    for e in entries:
        path = root / e["pairs"]
        if path.resolve() not in checked:
            pair_files[path] = read_pairs(path)
    check_across_files(pair_files)
    pair_texts = [t for pairs in pair_files.values() for _, a, b, _ in pairs for t in (a, b)]
    missing = [name for name in PROMPT_FILES if not (folder / name).is_file()]
    if missing:
        raise Problem(f"{folder}: missing {missing[0]}")
    check_prompts([(folder / name, read_prompts(folder / name)) for name in PROMPT_FILES], pair_texts)
    return pair_files, folder


def check_across_files(pair_files):
    """No text may serve in two concept files: each concept's pairs are its own."""
    owner = {}
    for path, pairs in pair_files.items():
        for n, away, toward, _ in pairs:
            for text in {away.strip().casefold(), toward.strip().casefold()}:
                if text in owner and owner[text] != path:
                    raise Problem(f"{path}:{n}: text also used in {owner[text]}: {text!r}")
                owner[text] = path


def print_stats(pair_files, folder):
    for path, pairs in pair_files.items():
        if path.parent.resolve() != folder.resolve():
            continue
        ratios = sorted(len(b.split()) / len(a.split()) for _, a, b, _ in pairs)
        away = [len(a.split()) for _, a, _, _ in pairs]
        toward = [len(b.split()) for _, _, b, _ in pairs]
        print(f"\n{path.name}: {len(pairs)} pairs")
        print("| category | pairs |\n|---|---:|")
        for category, count in Counter(c for *_, c in pairs).items():
            print(f"| `{category}` | {count} |")
        print(f"away side {min(away)}-{max(away)} words (mean {mean(away):.1f}), "
              f"toward side {min(toward)}-{max(toward)} words (mean {mean(toward):.1f}); "
              f"toward/away word ratio {ratios[0]:.2f}-{ratios[-1]:.2f} "
              f"(mean {mean(ratios):.2f}, median {median(ratios):.2f})")


def main(argv):
    stats = "--stats" in argv
    args = [a for a in argv if a != "--stats"]
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    try:
        pair_files, folder = check(root)
    except Problem as e:
        print(f"check-concepts: {e}", file=sys.stderr)
        return 1
    if stats:
        print_stats(pair_files, folder)
    print(f"check-concepts: ok ({len(pair_files)} pair files, {len(PROMPT_FILES)} prompt files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
