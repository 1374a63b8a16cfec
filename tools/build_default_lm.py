"""Rebuild semgkit's shipped English character LM (semgkit/assets/english-char-6gram.arpa.gz).

Source: wordfreq 3.1.1's "large" English word list (data CC BY-SA 4.0, see
semgkit/assets/README.md): word frequencies from Wikipedia, subtitles, news, books, web
text and Twitter, not the synthetic corpus's prompts. A word's frequency times 1e8 (the
list's floor is 1e-8) stands in for its count, so the model is what emg2qwerty's recipe
(one word per sentence, lower-case letters only) gives on a 100-million-word corpus.
Words seen fewer than 20 times there are dropped: the file shrinks from 7.3 to 2.2 MB and
the prompts' words cost 2.172 instead of 2.152 bits per character.

    pip install wordfreq==3.1.1 && python tools/build_default_lm.py [--order 6] [--min-count N]
"""

from __future__ import annotations

import argparse
import re

from wordfreq import get_frequency_dict

from semgkit import lm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--min-count", type=int, default=20, help="drop rarer words")
    parser.add_argument("--out", default=str(lm.DEFAULT_ASSET))
    args = parser.parse_args()
    counts = {
        word: round(freq * 1e8)
        for word, freq in get_frequency_dict("en", wordlist="large").items()
        if re.fullmatch("[a-z]+", word) and round(freq * 1e8) >= args.min_count
    }
    model = lm.build(counts, args.order)
    model.write(args.out)
    print(f"{len(counts)} words -> {args.out}: {len(model.probs)} n-grams")


if __name__ == "__main__":
    main()
