#!/usr/bin/env python3
"""Export the VADER sentiment judge from its PyPI package into a data file that
`src/sentiment.rs` scores with natively and in WebAssembly, plus reference scores that the
package computes itself.

Judge: vaderSentiment 3.3.2 (MIT, C.J. Hutto; Hutto & Gilbert, ICWSM 2014): a lexicon of
about 7,500 rated tokens plus rules for negation, "but", boosters, ALL CAPS, "!" and "?",
a few idioms, and emoji replaced by their descriptions.

Environment (what `scripts/export_vader.sh` does in a throw-away venv):

    python3 -m venv /tmp/destein-vader-venv
    /tmp/destein-vader-venv/bin/pip install "vaderSentiment==3.3.2"
    /tmp/destein-vader-venv/bin/python scripts/export_vader.py

Tested with CPython 3.11.7. The Python version matters for exact agreement: the package sums
valences with the builtin `sum`, which adds left to right up to Python 3.11 and uses
compensated summation from 3.12 on; `src/sentiment.rs` adds left to right, as 3.11 does.

Outputs (paths relative to the repository root)
-----------------------------------------------
* data/judges/vader_lexicon.tsv      the package's two dictionaries as the analyzer holds them
                                     after loading (`lexicon`: token -> mean valence, `emojis`:
                                     emoji -> description), one entry a line:
                                     "L\\t<token>\\t<valence>" and "E\\t<emoji>\\t<description>",
                                     valences written with Python's repr (shortest round trip),
                                     and a last line "END\t<tokens>\t<emoji>" with the counts
* data/judges/LICENSES.md            the VADER section (MIT notice from the installed package)
* tests/fixtures/vader_reference.json texts and the package's scores for them: `polarity_scores`
                                     (rounded as the package rounds) and the same code with its
                                     rounding switched off (`unrounded`, as repr strings)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import vaderSentiment.vaderSentiment as vs

ROOT = Path(__file__).resolve().parent.parent
PIN = "3.3.2"
LICENSE_HEADING = "## vader_lexicon.tsv — vaderSentiment 3.3.2"


def handwritten_texts() -> list[tuple[str, str]]:
    """(category, text) pairs written for this test, each aimed at one rule of the package."""
    edge = ["", " ", "   ", "\t\n", "\u00a0", "\u200b", "\x1c", "a\x1fb", "a", "I", ".", "!!!", "???", "?!",
            "12345", ":)", ":(", ":-)", ":D", "<3", "</3", ";)", ":P", "(:", "):", "lol", "LOL", "xD", ":')",
            "...good...", "'good'", "\"great\"", "(happy)", "[sad]", "--bad--", "good!", "bad?", "good,",
            "ok", "OK", "okay", "meh", "-_-", "^_^", "o_O", ":/", "=)", ":]", "8)"]
    negation = ["This is not good.", "This is not bad.", "It isn't good.", "It isnt good.", "It wasn't terrible.",
                "I don't like it.", "I dont like it", "I never liked it.", "Nobody was happy.",
                "Nothing good came of it.", "not very good", "not so bad", "not at all good",
                "never so happy", "never this good", "without doubt the best", "without a doubt great",
                "I can't stand it.", "I cannot believe how good it is.", "no good", "no problem",
                "no love or joy", "no hope nor joy", "no", "No.", "no no no", "There is no joy here.",
                "It ain't great.", "hardly good", "rarely happy", "seldom bad", "despite the good news",
                "it wouldn't be fair", "it won't hurt", "he doesn't hate you", "she didn't win",
                "uh-uh, not happy", "nope, sad", "neither good nor bad", "the least bad option",
                "at least it was fun", "very least happy", "least happy", "not the least bit happy",
                "he isn't not happy", "I haven't been this happy in years.", "shouldn't be sad"]
    but = ["The food was great but the service was awful.", "It was bad but I loved it.",
           "good but", "but good", "Good but bad but good.", "I like it, but...", "BUT it was fine",
           "nice nice but nice nice", "bad bad but bad", "great great great but terrible",
           "the plot is weak but the acting is excellent", "not bad but not good either",
           "good good good good but", "It's fine, but honestly kind of boring."]
    boosters = ["very good", "VERY good", "very GOOD", "extremely bad", "kind of good", "kinda good",
                "sort of bad", "sorta bad", "kind of", "kind of kind of good", "just enough good",
                "somewhat happy", "slightly sad", "barely good", "really really good", "so so good",
                "the most amazing day", "more happy", "less happy", "it is quite nice", "fucking awesome",
                "FUCKING awesome", "totally awful", "utterly brilliant", "a little sad", "hella good",
                "deeply sorry", "incredibly happy", "almost perfect", "marginally better",
                "super good", "insanely great", "very very very very good", "occasionally happy",
                "especially bad", "very", "very.", "VERY"]
    caps = ["GOOD", "good", "Good", "This is GOOD", "This is GOOD!", "THIS IS GOOD", "I HATE this",
            "i hate THIS", "HAPPY happy HAPPY", "BAD day", "AWESOME", "The movie was AWFUL.",
            "ǅemal is happy", "ǅ GOOD", "ΣΑΣ GOOD", "İSTANBUL is lovely", "STRASSE good", "ÉTÉ GREAT",
            "LOVE it", "love IT", "LOL that was fun"]
    punct = ["good!!", "good!!!", "good!!!!", "good!!!!!!!!", "bad!", "bad!!!!", "good?", "good??",
             "good???", "good????", "bad???", "bad??????", "good?!?!", "Really?? That bad??",
             "!good", "Amazing!!! Just amazing!!!", "Terrible!!! Just terrible???", "!!! ???", "okay!"]
    emoji = ["😀", "😀😀", "I love it 😍", "😍I love it", "sad 😢", "😢sad", "😡😡😡", "great 👍", "👎",
             "❤️", "❤", "☹️", "☺️", "💩", "🔥", "🙂 fine", "fine🙂", "a😀b", "😀 😀", " 😀 ", "👶🏻 baby",
             "🎉🎉 party", "I 🖤 you", "✨ nice ✨", "😂😂😂", "🤔", "🙄 whatever", "🤬 angry", "🥰", "💔",
             "thumbs 👍 up", "🙏 thanks", "😭😭", "😊 thank you!", "🍕 pizza 🍕", "🌞 sunny day"]
    idioms = ["That show was the shit", "the shit", "This is the bomb!", "the bomb", "what a bad ass",
              "badass", "waiting at the bus stop", "yeah right", "Yeah right, great.", "the kiss of death",
              "a cake to die for", "to die for", "her beating heart", "it didn't cut the mustard",
              "living hand to mouth", "break a leg", "under the weather", "in the red", "in the black",
              "the shit is good", "bomb", "kind of the bomb", "sort of to die for", "shit happens",
              "he is the bomb and the shit"]
    sentences = ["VADER is smart, handsome, and funny.", "VADER is smart, handsome, and funny!",
                 "VADER is very smart, handsome, and funny.", "VADER is VERY SMART, handsome, and FUNNY.",
                 "VADER is VERY SMART, handsome, and FUNNY!!!", "The book was good.",
                 "At least it isn't a horrible book.", "The book was only kind of good.",
                 "The plot was good, but the characters are uncompelling and the dialog is not great.",
                 "Today SUX!", "Today only kinda sux! But I'll get by, lol", "Make sure you :) or :D today!",
                 "Catch utf-8 emoji such as 💘 and 💋 and 😁", "Not bad at all",
                 "The weather today is sunny with a light breeze.", "Thank you for your help with the project.",
                 "The committee will meet on Tuesday to discuss the budget.", "He cooked pasta for dinner.",
                 "I love spending time with my family.", "and it was the best day of my life.",
                 "and then everything went wrong.", "The storm destroyed three houses.",
                 "She smiled and thanked everyone for coming.", "I feel lonely and useless.",
                 "We got married in June and the wedding was beautiful.", "The meeting was a waste of time.",
                 "Please review the attached document and send your comments.",
                 "Scientists discovered a new species of frog in the rainforest.",
                 "I will kill you.", "You are a fucking idiot.", "fuck you", "What an asshole.",
                 "Good morning my friend, I hope you're having a fantastic day!",
                 "don't you dare", "DON'T CAN'T WON'T", "don’t worry, be happy", "it’s not good",
                 "tab\tseparated\tgood\twords", "new\nline\nhappy", "nbsp\u00a0good\u00a0day",
                 "Café très bon, naïve fiancée", "这是一个测试句子", "Привет, хорошо", "good\u0301 day",
                 "ＧＯＯＤ", "Ⓖⓞⓞⓓ", "good_day", "good-day", "good/bad", "good.bad", "happy-go-lucky",
                 "http://example.com/great", "@user you are great", "#happy #blessed", "I'm happy",
                 "Im happy", "can't stand", "fed up", "screwed up", "( '}{' )", "$:", "%-)"]
    repeated = ["good " * 50, "bad " * 40, "happy sad " * 30, "not good " * 20, "the " * 100,
                "great!" * 10, "love " * 3, "GOOD good " * 10]
    par = ("The city council met on Tuesday evening to discuss the new library, the budget for road repairs and a "
           "proposal to plant more trees along the river. Residents were pleased, but some worried about parking. ")
    long_texts = [par * 10, "Terrible! " + par * 10, par * 10 + "Wonderful!!!", " ".join(f"w{i}" for i in range(600))]
    out: list[tuple[str, str]] = []
    for cat, items in [("edge", edge), ("negation", negation), ("but", but), ("booster", boosters),
                       ("caps", caps), ("punctuation", punct), ("emoji", emoji), ("idiom", idioms),
                       ("sentence", sentences), ("repeated", repeated), ("long", long_texts)]:
        out += [(cat, t) for t in items]
    return out


def ground_truth_texts(sdist: Path | None, per_set: int) -> list[tuple[str, str]]:
    """The first `per_set` texts of each ground-truth set that the vaderSentiment sdist ships (MIT)."""
    if sdist is None:
        return []
    out = []
    with tarfile.open(sdist) as outer:
        member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(member).read()))
        for name in ["tweets", "movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets"]:
            m = next(m for m in inner.getmembers() if m.name.endswith(f"{name}_GroundTruth.txt"))
            lines = inner.extractfile(m).read().decode("utf-8", "replace").splitlines()
            out += [(f"hutto2014/{name}", line.split("\t", 2)[2]) for line in lines[:per_set]]
    return out


def rtp_texts(n: int) -> list[tuple[str, str]]:
    path = ROOT / "data" / "rtp" / "test100.jsonl"
    with open(path, encoding="utf-8") as f:
        return [("rtp/test100", json.loads(line)["prompt"]["text"]) for line in f.readlines()[:n]]


def export_lexicon(analyzer, out: Path) -> None:
    lines = [f"# VADER lexicon and emoji descriptions of vaderSentiment=={PIN} (MIT), exported by scripts/export_vader.py"]
    for word, valence in analyzer.lexicon.items():
        assert "\t" not in word and "\n" not in word, word
        lines.append(f"L\t{word}\t{valence!r}")
    for emoji, description in analyzer.emojis.items():
        assert "\t" not in emoji + description and "\n" not in emoji + description, emoji
        lines.append(f"E\t{emoji}\t{description}")
    # the counts let the reader tell a truncated file from a complete one
    lines.append(f"END\t{len(analyzer.lexicon)}\t{len(analyzer.emojis)}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def unrounded_scores(analyzer, text: str) -> dict[str, float]:
    """The package's own code with its final `round` calls switched off."""
    vs.round = lambda x, n=None: x  # module globals shadow the builtin inside score_valence
    try:
        return analyzer.polarity_scores(text)
    finally:
        del vs.round


def write_license_section(licenses: Path) -> None:
    notice = next(f for f in metadata.distribution("vaderSentiment").files if f.name.upper().startswith("LICENSE"))
    section = f"""{LICENSE_HEADING}

From the PyPI package `vaderSentiment=={PIN}` by C.J. Hutto (https://github.com/cjhutto/vaderSentiment):
the VADER sentiment lexicon and the emoji descriptions, as loaded by the package. Cite: Hutto, C.J. &
Gilbert, E.E. (2014). VADER: A Parsimonious Rule-based Model for Sentiment Analysis of Social Media
Text. ICWSM-14. The Rust code that scores with them (`src/sentiment.rs`) is this project's.
`tests/fixtures/vader_reference.json` holds hand-written texts (this project's), texts of the ground-truth
sets that the package's source distribution ships (`additional_resources/hutto_ICWSM_2014.tar.gz`) and
RealToxicityPrompts prompt texts (Gehman et al. 2020, Apache-2.0), scored by the package.

```
{notice.read_text(encoding="utf-8").strip()}
```
"""
    text = licenses.read_text(encoding="utf-8") if licenses.exists() else ""
    # replace our own section (from its heading to the next "## " heading or the end), keep the rest
    pattern = re.compile(re.escape(LICENSE_HEADING) + r".*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub("", text).rstrip("\n")
    licenses.write_text((text + "\n\n" if text else "") + section, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=str(ROOT / "data" / "judges"))
    ap.add_argument("--fixture", default=str(ROOT / "tests" / "fixtures" / "vader_reference.json"))
    ap.add_argument("--sdist", help="vaderSentiment-3.3.2.tar.gz, for texts of its ground-truth sets")
    ap.add_argument("--per-set", type=int, default=40, help="ground-truth texts per set")
    args = ap.parse_args()
    if metadata.version("vaderSentiment") != PIN:
        sys.exit(f"vaderSentiment {metadata.version('vaderSentiment')} installed, pinned {PIN}")
    out_dir, fixture = Path(args.out_dir), Path(args.fixture)
    analyzer = vs.SentimentIntensityAnalyzer()
    export_lexicon(analyzer, out_dir / "vader_lexicon.tsv")
    write_license_section(out_dir / "LICENSES.md")

    cases = handwritten_texts() + ground_truth_texts(Path(args.sdist) if args.sdist else None, args.per_set)
    cases += rtp_texts(100)
    texts = [t for _, t in cases]
    assert len(set(texts)) == len(texts), [t for t in texts if texts.count(t) > 1]
    # unrounded scores as repr strings: a JSON reader may misread a 17-digit number by one unit in the last
    # place (serde_json without its float_roundtrip feature does), while Rust's str::parse is exact
    out_cases = [{"category": c, "text": t, "scores": analyzer.polarity_scores(t),
                  "unrounded": {k: repr(v) for k, v in unrounded_scores(analyzer, t).items()}} for c, t in cases]
    ref = {
        "generated_by": "scripts/export_vader.py",
        "python": sys.version.split()[0],
        "packages": {"vaderSentiment": PIN},
        "notes": ["scores: SentimentIntensityAnalyzer().polarity_scores(text), rounded by the package "
                  "(neg/neu/pos to 3 decimals, compound to 4); unrounded: the same code with round() "
                  "switched off, each value as Python's repr (exact round trip)."],
        "cases": out_cases,
    }
    fixture.write_text(json.dumps(ref, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for path in [out_dir / "vader_lexicon.tsv", out_dir / "LICENSES.md", fixture]:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
              f"({path.stat().st_size} bytes, sha256 {digest}…)")
    print(f"{len(out_cases)} reference texts")


if __name__ == "__main__":
    main()
