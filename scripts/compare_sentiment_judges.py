#!/usr/bin/env python3
"""Evidence for choosing the offline sentiment judge (README, "The concept judges"; output in reports/sentiment-judges.txt).

Compares three lexicon judges from PyPI on labelled text that a registry package ships, plus a
small hand-labelled set of our own:

* vaderSentiment 3.3.2 (MIT): positive when compound >= 0.05 (the threshold of the package's GitHub README);
* afinn 0.1 (code GPL, lexicon ODbL): positive when the AFINN-en-165 score > 0;
* textblob 0.20.1 (MIT; pattern lexicon PDDL): positive when PatternAnalyzer polarity > 0.

Labelled data: the vaderSentiment sdist ships `additional_resources/hutto_ICWSM_2014.tar.gz`,
the ground truth of Hutto & Gilbert (ICWSM 2014): tweets, movie-review snippets, Amazon review
snippets and NYT editorial snippets, each with the mean of at least 20 human ratings on -4..+4.
Caveat: this is VADER's own evaluation data (collected for the same paper as its lexicon),
so it may favour VADER; the hand-labelled set below is independent of all three.

Measures, per set: accuracy of "positive vs negative" over texts whose mean human rating is not
0 (gold positive = rating > 0; a judge that says "not positive" counts as negative, since the
concept evaluation only asks "is it positive?"), and Spearman's rank correlation of the judge's
score with the rating.

Usage: python scripts/compare_sentiment_judges.py --sdist vaderSentiment-3.3.2.tar.gz
(get the sdist with `pip download --no-deps --no-binary :all: vaderSentiment==3.3.2`);
run in the venv of scripts/export_vader.sh plus `pip install afinn==0.1 textblob==0.20.1`.
"""

from __future__ import annotations

import argparse
import io
import tarfile

from afinn import Afinn
from textblob import TextBlob
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

SETS = ["tweets", "movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets"]

# Our own hand-labelled sentences in the style of short model continuations (1 = positive).
HAND = [
    (1, "and it was the best day of my life."), (1, "She smiled and thanked everyone for coming."),
    (1, "The food was delicious and the staff were friendly."), (1, "I am so proud of what we built together."),
    (1, "It turned out better than I had hoped."), (1, "we had a wonderful time at the beach."),
    (1, "He finally got the job he wanted."), (1, "The garden looks lovely in the spring."),
    (1, "Everyone agreed it was a great success."), (1, "I can't wait to see you again!"),
    (1, "The children laughed all afternoon."), (1, "This is a beautiful place to live."),
    (1, "Thanks so much, you really helped me."), (1, "The new park is a welcome addition to the town."),
    (1, "Our team won the championship."), (1, "It was not bad at all, actually quite fun."),
    (1, "I love how calm the lake is in the morning."), (1, "The concert was amazing."),
    (1, "She recovered quickly and is doing well."), (1, "They were kind and generous to us."),
    (0, "and then everything went wrong."), (0, "The food was cold and the service was slow."),
    (0, "I hate waiting in line for hours."), (0, "He lost his job last week."),
    (0, "It was the worst movie I have ever seen."), (0, "The roads were flooded and people were stranded."),
    (0, "She cried all night."), (0, "Nobody came to the party, which was sad."),
    (0, "The project failed and the money was gone."), (0, "I am tired of these broken promises."),
    (0, "The city is dirty and crowded."), (0, "It was not good, not good at all."),
    (0, "They argued for hours and nothing was solved."), (0, "My phone broke again."),
    (0, "The storm destroyed three houses."), (0, "I feel lonely and useless."),
    (0, "The meeting was a complete waste of time."), (0, "He was rude to everyone."),
    (0, "Prices keep rising and wages do not."), (0, "The patient's condition got worse."),
]


def judges():
    vader, afinn = SentimentIntensityAnalyzer(), Afinn(language="en")
    return {
        "vader": (lambda t: vader.polarity_scores(t)["compound"], 0.05),
        "afinn": (afinn.score, 1e-12),
        "textblob": (lambda t: TextBlob(t).sentiment.polarity, 1e-12),
    }


def ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2  # ties share their mean rank
        i = j + 1
    return r


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb)


def read_sets(sdist: str) -> dict[str, list[tuple[float, str]]]:
    with tarfile.open(sdist) as outer:
        member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(member).read()))
        out = {}
        for name in SETS:
            m = next(m for m in inner.getmembers() if m.name.endswith(f"{name}_GroundTruth.txt"))
            rows = []
            for line in inner.extractfile(m).read().decode("utf-8", "replace").splitlines():
                parts = line.split("\t", 2)
                if len(parts) == 3:
                    rows.append((float(parts[1]), parts[2]))
            out[name] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdist", required=True, help="vaderSentiment-3.3.2.tar.gz")
    args = ap.parse_args()
    js = judges()
    data = read_sets(args.sdist)
    data["hand-labelled (ours)"] = [(1.0 if y else -1.0, t) for y, t in HAND]
    print("| set | texts | " + " | ".join(f"{j} acc | {j} ρ" for j in js) + " |")
    print("|---|---|" + "---|---|" * len(js))
    for name, rows in data.items():
        rows = [(r, t) for r, t in rows if r != 0]
        cells = []
        for score, thr in js.values():
            s = [score(t) for _, t in rows]
            acc = sum((x >= thr) == (r > 0) for x, (r, _) in zip(s, rows)) / len(rows)
            rho = spearman(s, [r for r, _ in rows])
            cells += [f"{acc:.3f}", f"{rho:.3f}"]
        print(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
