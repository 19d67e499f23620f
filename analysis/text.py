"""Transcript normalisation and word/character error rates: call :func:`pairwise_error_rates`.

:func:`pairwise_error_rates` compares the transcripts of every pair of annotators on each clip after
applying a project's :class:`NormalizationRules` (``NormalizationRules.from_dict(project.normalization)``)
and :func:`error_rate_summary` aggregates per clip and overall. :func:`normalize_transcript`,
:func:`wer` and :func:`cer` work on single strings.

Conventions, the same as jiwer's:

- Words are whitespace-separated tokens. Characters are those of the text with leading and trailing
  whitespace removed (inner spaces count).
- A rate is ``edit distance / reference length``. With an empty reference the length counts as one:
  an empty hypothesis scores 0, and a hypothesis of ``k`` words scores ``k`` (all insertions).
- Aggregates are corpus rates: total edits over total reference length, not a mean of rates.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from analysis.agreement import pairs_within, require_columns

DEFAULT_FILLERS: tuple[str, ...] = ("um", "uh", "er", "ah", "hmm")

# Typographic apostrophes count as the ASCII one, so "today’s" and "today's" are the same word.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u0060": "'", "\u00b4": "'"})
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th)?(?!\w)")
# An apostrophe is punctuation unless it sits between two word characters ("don't", "today's").
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion")
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


@functools.cache
def _punctuation_class() -> re.Pattern[str]:
    """Every Unicode punctuation (P*) and symbol (S*) character except the apostrophe, as a regex
    class. Built once; the standard ``re`` module has no ``\\p{P}``."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp))[0] in "PS" and cp != ord("'"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    parts = (re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[{''.join(parts)}_]")


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def _integer_words(digits: str) -> list[str]:
    n = int(digits)
    if n == 0:
        return ["zero"]
    if n >= 1000 ** len(_SCALES):
        return [_ONES[int(d)] for d in digits]
    words: list[str] = []
    for power in range(len(_SCALES) - 1, -1, -1):
        chunk = (n // 1000**power) % 1000
        if chunk:
            words += _below_thousand(chunk)
            if _SCALES[power]:
                words.append(_SCALES[power])
    return words


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return [*words[:-1], last]


def _number_words(match: re.Match[str]) -> str:
    whole, fraction, suffix = match.group(1), match.group(2), match.group(3)
    whole = whole.replace(",", "")
    if len(whole) > 1 and whole.startswith("0") and not fraction:
        # Leading zeros ("007", a PIN, a phone number) are read digit by digit.
        words = [_ONES[int(d)] for d in whole]
    else:
        words = _integer_words(whole)
    if fraction:
        words += ["point", *(_ONES[int(d)] for d in fraction)]
    elif suffix:
        words = _ordinal(words)
    return f" {' '.join(words)} "


@functools.cache
def _filler_pattern(fillers: tuple[str, ...]) -> re.Pattern[str] | None:
    if not fillers:
        return None
    alternatives = sorted(
        (re.escape(f.strip()).replace(r"\ ", r"\s+") for f in fillers if f.strip()), key=len
    )
    if not alternatives:
        return None
    return re.compile(rf"(?<![\w'])(?:{'|'.join(reversed(alternatives))})(?![\w'])", re.IGNORECASE)


def normalize_transcript(
    text: str,
    *,
    lowercase: bool = True,
    strip_punctuation: bool = True,
    remove_fillers: Iterable[str] = DEFAULT_FILLERS,
    numbers_to_words: bool = False,
    collapse_whitespace: bool = True,
) -> str:
    """Normalise a transcript so that spelling-neutral differences do not count as errors.

    The text is first put in Unicode NFKC form ("…" becomes "...", full-width letters become ASCII)
    and typographic apostrophes become ``'``. Then, in order:

    1. ``lowercase``: lower-case everything.
    2. ``numbers_to_words``: spell out numbers in English: "42" -> "forty two", "1,000" -> "one
       thousand", "3.5" -> "three point five", "21st" -> "twenty first", "007" -> "zero zero seven".
    3. ``strip_punctuation``: replace Unicode punctuation and symbols with spaces. Apostrophes inside a
       word are kept ("today's").
    4. ``remove_fillers``: drop these words wherever they stand alone, in any case. A filler of
       several words matches across any whitespace.
    5. ``collapse_whitespace``: trim and turn every run of whitespace into one space.

    Examples
    --------
    >>> normalize_transcript("Um… today's weather")
    "today's weather"
    >>> normalize_transcript("Meet at 5, not 50!", numbers_to_words=True)
    'meet at five not fifty'
    """
    if not isinstance(text, str):
        raise TypeError(f"a transcript must be a str; got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    if lowercase:
        text = text.lower()
    if numbers_to_words:
        text = _NUMBER.sub(_number_words, text)
    if strip_punctuation:
        text = _punctuation_class().sub(" ", text)
        text = _LOOSE_APOSTROPHE.sub(" ", text)
    pattern = _filler_pattern(_fillers(remove_fillers))
    if pattern is not None:
        text = pattern.sub(" ", text)
    if collapse_whitespace:
        text = " ".join(text.split())
    return text


@dataclass(frozen=True)
class NormalizationRules:
    """A project's transcript normalisation settings; see :func:`normalize_transcript`.

    Build from the project's settings dict with :meth:`from_dict` and apply with :meth:`normalize`.
    """

    lowercase: bool = True
    strip_punctuation: bool = True
    remove_fillers: tuple[str, ...] = DEFAULT_FILLERS
    numbers_to_words: bool = False
    collapse_whitespace: bool = True

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any] | None) -> NormalizationRules:
        """Rules from a settings mapping; missing keys keep their defaults.

        ``remove_fillers`` may be a list of words, a comma-separated string, ``True`` (the default
        fillers) or ``False``/``None`` (none). Unknown keys raise ``ValueError``, so a misspelt setting
        is not silently ignored.
        """
        settings = dict(settings or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown normalisation setting(s) {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        for name in ("lowercase", "strip_punctuation", "numbers_to_words", "collapse_whitespace"):
            if name in settings:
                if not isinstance(settings[name], bool):
                    raise ValueError(f"normalisation setting {name!r} must be true or false")
                values[name] = settings[name]
        if "remove_fillers" in settings:
            values["remove_fillers"] = _fillers(settings["remove_fillers"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Settings as JSON-ready values (fillers as a list)."""
        out = asdict(self)
        out["remove_fillers"] = list(self.remove_fillers)
        return out

    def normalize(self, text: str) -> str:
        """Apply these rules to one transcript."""
        return normalize_transcript(
            text,
            lowercase=self.lowercase,
            strip_punctuation=self.strip_punctuation,
            remove_fillers=self.remove_fillers,
            numbers_to_words=self.numbers_to_words,
            collapse_whitespace=self.collapse_whitespace,
        )


def _fillers(value: Any) -> tuple[str, ...]:
    if value is True:
        return DEFAULT_FILLERS
    if value is None or value is False:
        return ()
    if isinstance(value, str):
        return tuple(w.strip() for w in value.split(",") if w.strip())
    if isinstance(value, Iterable) and all(isinstance(w, str) for w in value):
        return tuple(w.strip() for w in value if w.strip())
    raise ValueError("normalisation setting 'remove_fillers' must be a list of words")


def _rate(errors: float, length: float) -> float:
    return errors / max(length, 1)


def wer(ref: str, hyp: str) -> float:
    """Word error rate of ``hyp`` against ``ref``: word edit distance over the reference's word count.

    Texts are compared as given (split on whitespace); normalise them first if needed. With an empty
    reference the rate is the number of hypothesis words (0 when both are empty).
    """
    ref_words = ref.split()
    return _rate(Levenshtein.distance(ref_words, hyp.split()), len(ref_words))


def cer(ref: str, hyp: str) -> float:
    """Character error rate of ``hyp`` against ``ref``, after trimming outer whitespace (inner spaces
    count as characters). With an empty reference the rate is the hypothesis length."""
    ref, hyp = ref.strip(), hyp.strip()
    return _rate(Levenshtein.distance(ref, hyp), len(ref))


def error_rates(refs: Sequence[str], hyps: Sequence[str], *, chars: bool = True) -> pd.DataFrame:
    """Word and character error counts and rates of many ``(ref, hyp)`` pairs at once.

    Parameters
    ----------
    refs, hyps : sequences of str
        References and hypotheses, pair by pair, compared as given.
    chars : bool
        Also compute the character columns (False when only WER is wanted).

    Returns
    -------
    DataFrame
        One row per pair with columns ``ref_words``, ``hyp_words``, ``word_errors``, ``wer`` and, with
        ``chars``, ``ref_chars``, ``hyp_chars``, ``char_errors``, ``cer``.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references and {len(hyps)} hypotheses")
    n = len(refs)
    ref_words = np.empty(n, dtype=np.int64)
    hyp_words = np.empty(n, dtype=np.int64)
    word_errors = np.empty(n, dtype=np.int64)
    distance = Levenshtein.distance
    # One C call per pair on freshly split token lists. Mapping words to integer ids first was slower:
    # it keeps millions of token objects alive at once, and allocating them dominated. Annotators
    # often type the same transcript, and equal strings need no alignment.
    for i, (ref, hyp) in enumerate(zip(refs, hyps, strict=True)):
        r = ref.split()
        if ref == hyp:
            ref_words[i] = hyp_words[i] = len(r)
            word_errors[i] = 0
            continue
        h = hyp.split()
        ref_words[i], hyp_words[i] = len(r), len(h)
        word_errors[i] = distance(r, h)
    out = pd.DataFrame(
        {
            "ref_words": ref_words,
            "hyp_words": hyp_words,
            "word_errors": word_errors,
            "wer": word_errors / np.maximum(ref_words, 1),
        }
    )
    if not chars:
        return out
    ref_stripped = [s.strip() for s in refs]
    hyp_stripped = [s.strip() for s in hyps]
    char_errors = np.zeros(n, dtype=np.int64)
    if n:
        char_errors = np.asarray(
            process.cpdist(ref_stripped, hyp_stripped, scorer=Levenshtein.distance, dtype=np.int64),
            dtype=np.int64,
        )
    ref_chars = np.fromiter(map(len, ref_stripped), dtype=np.int64, count=n)
    out["ref_chars"] = ref_chars
    out["hyp_chars"] = np.fromiter(map(len, hyp_stripped), dtype=np.int64, count=n)
    out["char_errors"] = char_errors
    out["cer"] = char_errors / np.maximum(ref_chars, 1)
    return out


def pairwise_error_rates(
    df: pd.DataFrame,
    *,
    item: str = "clip_id",
    rater: str = "annotator",
    text: str = "transcript",
    rules: NormalizationRules | Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """WER and CER between the transcripts of every pair of annotators on each clip.

    Parameters
    ----------
    df : DataFrame
        One row per transcript with columns ``item``, ``rater``, ``text``. A missing text (NaN, None)
        means no transcript and the row is dropped. An empty string is a transcript of silence and is
        compared.
    rules : NormalizationRules or mapping, optional
        Normalisation applied to every transcript before comparing (a mapping goes through
        :meth:`NormalizationRules.from_dict`). None compares the texts as typed.

    Returns
    -------
    DataFrame
        One row per pair of annotators sharing a clip: ``item``, ``rater_a``, ``rater_b`` (``rater_a``
        sorts first and is the reference), then the columns of :func:`error_rates`. Clips with a single
        transcript produce no row.
    """
    require_columns(df, [item, rater, text])
    if isinstance(rules, Mapping):
        rules = NormalizationRules.from_dict(rules)
    rows = df[df[text].notna()]
    if rows[[item, rater]].duplicated().any():
        raise ValueError(f"some ({item}, {rater}) pairs have more than one transcript")
    item_codes, items = pd.factorize(rows[item])
    rater_codes, raters = pd.factorize(rows[rater], sort=True)
    texts = rows[text].to_numpy(dtype=object)
    if rules is not None:
        texts = np.array([rules.normalize(t) for t in texts], dtype=object)
    left, right = pairs_within(np.asarray(item_codes, dtype=np.intp))
    swap = rater_codes[left] > rater_codes[right]
    left, right = np.where(swap, right, left), np.where(swap, left, right)
    rates = error_rates(texts[left].tolist(), texts[right].tolist())
    pairs = pd.DataFrame(
        {
            item: items.take(item_codes[left]),
            "rater_a": raters.take(rater_codes[left]),
            "rater_b": raters.take(rater_codes[right]),
        }
    )
    return pd.concat([pairs, rates], axis=1)


@dataclass(frozen=True)
class ErrorRateSummary:
    """Aggregates of :func:`pairwise_error_rates`.

    Attributes
    ----------
    per_clip : DataFrame
        One row per clip: ``item``, ``n_pairs``, ``wer``, ``cer`` (corpus rates over the clip's
        pairs), ``max_wer``.
    overall : dict
        ``n_pairs``, ``n_items``, ``wer``, ``cer`` (corpus rates over all pairs, as
        ``jiwer.wer(refs, hyps)`` computes for lists) and ``mean_pair_wer``, ``mean_pair_cer``.
    """

    per_clip: pd.DataFrame
    overall: dict[str, float | int | None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None."""

        def clean(x: Any) -> Any:
            if isinstance(x, np.generic):
                x = x.item()
            return None if isinstance(x, float) and not math.isfinite(x) else x

        return {
            "overall": {k: clean(v) for k, v in self.overall.items()},
            "per_clip": [
                {str(k): clean(v) for k, v in zip(self.per_clip.columns, row, strict=True)}
                for row in self.per_clip.itertuples(index=False, name=None)
            ],
        }


def error_rate_summary(pairs: pd.DataFrame, *, item: str = "clip_id") -> ErrorRateSummary:
    """Per-clip and overall WER/CER from the output of :func:`pairwise_error_rates`."""
    require_columns(pairs, [item, "word_errors", "ref_words", "char_errors", "ref_chars", "wer", "cer"])
    grouped = pairs.groupby(item, sort=True, observed=True)
    sums = grouped[["word_errors", "ref_words", "char_errors", "ref_chars"]].sum()
    per_clip = pd.DataFrame(
        {
            "n_pairs": grouped.size(),
            "wer": sums["word_errors"] / sums["ref_words"].clip(lower=1),
            "cer": sums["char_errors"] / sums["ref_chars"].clip(lower=1),
            "max_wer": grouped["wer"].max(),
        }
    ).reset_index()
    n = len(pairs)
    overall: dict[str, float | int | None] = {
        "n_pairs": n,
        "n_items": int(pairs[item].nunique()),
        "wer": _rate(float(pairs["word_errors"].sum()), float(pairs["ref_words"].sum())) if n else None,
        "cer": _rate(float(pairs["char_errors"].sum()), float(pairs["ref_chars"].sum())) if n else None,
        "mean_pair_wer": float(pairs["wer"].mean()) if n else None,
        "mean_pair_cer": float(pairs["cer"].mean()) if n else None,
    }
    return ErrorRateSummary(per_clip=per_clip, overall=overall)
