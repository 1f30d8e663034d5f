"""Keyword lists from text: validation, and the negative words a keyword set is trained against.

``parse_keywords("hey nova,lights on,stop")`` checks the words and gives their class names
(``hey_nova``); ``plan_negatives`` picks, from a built-in list of common English words (and the
user's own negatives), the *other words* for ``_unknown_`` and each keyword's *near misses*:
words that start like it (same first two phonemes by espeak-ng's en-us phonemes, or the same
first two letters), plus the separate words of a multi-word keyword. Words that sound the same
as a keyword (same phonemes, e.g. "know" for "no") or differ by one phoneme from a keyword of
five or more phonemes are left out of the negatives entirely: they would be label noise.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from audio_nas.data.engines import phonemes
from audio_nas.errors import DataError

log = logging.getLogger(__name__)

RESERVED_CLASSES = ("_unknown_", "_silence_")
_ALLOWED = re.compile(r"^[a-z]+(?:['-][a-z]+)*(?: [a-z]+(?:['-][a-z]+)*)*$")
MAX_KEYWORDS = 50

# Common English words (Speech Commands' auxiliary words first), the pool for other-word and
# near-miss negatives. Anything a keyword sounds like is removed per keyword set (plan_negatives).
WORD_POOL: tuple[str, ...] = tuple(
    """
bed bird cat dog eight five four happy house marvin nine one seven sheila six three tree two wow zero
learn follow forward backward visual yes no up down left right on off stop go
about above after again air all almost also always and animal answer any apple area arm around ask
away baby back bad bag ball bank base bean bear beat become begin being bell best better big bill
black blue boat body book both box boy bread break bring brother build bus busy but buy cake call
came can car card care carry case catch cause center chair change check child city class clean clear
close cloud coat cold color come common cook cool corn could count country cover cross cup cut dance
dark day dead deal deep desk did dinner dish do doctor does done door double draw dream dress drink
drive drop dry during each early earth east easy eat edge egg end enough even evening ever every eye
face fact fall family far farm fast father feel feet few field fight fill final find fine finger fire
first fish fit flat floor flower fly food foot for form free friend from front fruit full fun game
garden gate gave get girl give glad glass goal goat gold gone good got grass gray great green ground
group grow guess had hair half hall hand hang hard has hat have head hear heart heat heavy held hello
help her here high hill him his hit hold hole home hope horse hot hour how hundred hunt idea if inch
into iron island it its jump just keep kept key kick kind king kitchen knee knock lady lake land large
last late laugh law lay lead leaf least leave leg less let letter level lift light like line lion list
listen little live long look lost lot loud love low lunch made main make man many map mark market
matter may mean meet men middle might mile milk mind minute miss money month moon more morning most
mother mountain mouth move much music must name near neck need never new next nice night noise none
noon north nose note nothing now number ocean offer office often oil old once only open orange order
other our out over own page paint pair paper park part party pass past pay pen people pick picture
piece place plan plant play please pocket point pool poor power press pretty pull push put queen
question quick quiet race rain ran reach read ready real red remember rest rice rich ride ring river
road rock roll room root rope rose round row rule run safe said sail salt same sand save say school
sea seat second see seed sell send sense set shape share sharp ship shoe shop short should shout show
side sign silver simple sing sister sit size skin sky sleep slow small smile snow soft some son song
soon sound south space speak spring square stand star start state stay step stick still stone store
story street strong study such sugar summer sun supper sure sweet swim table tail take talk tall teach
team tell ten test than thank that then there thing think this those though thousand through throw
time tiny today together told tomorrow tonight took top touch town toy train travel true try turn
under until upon upper use usual valley very voice wait walk wall want warm wash watch water wave
way wear weather week well went west wet what wheel when where which while white who whole why wide
wife wild will wind window winter wish with woman wonder wood word work world write yard year yellow
yet you young
""".split()
)


@dataclass(frozen=True)
class NegativePlan:
    keywords: tuple[str, ...]  # spoken text, in class order
    other_words: tuple[str, ...]  # _unknown_ words unlike every keyword
    near_misses: tuple[tuple[str, ...], ...]  # per keyword
    excluded: tuple[str, ...]  # pool words left out because they sound like a keyword


def class_name(keyword: str) -> str:
    return keyword.replace(" ", "_")


def parse_word_list(text: str | list[str] | tuple[str, ...], what: str = "--words") -> tuple[str, ...]:
    """Comma-separated words (or a list) -> normalised (lower case, single spaces); clear errors."""
    items = text.split(",") if isinstance(text, str) else list(text)
    if not [i for i in items if i.strip()]:
        raise DataError(f'{what} is empty; give comma-separated words, e.g. {what} "hey nova,lights on,stop"')
    out: list[str] = []
    for pos, raw in enumerate(items, 1):
        word = " ".join(raw.strip().lower().split())
        if not word:
            raise DataError(f"{what}: entry {pos} is empty (two commas in a row, or a trailing comma?)")
        if word in RESERVED_CLASSES or word.strip("_") in ("unknown", "silence"):
            raise DataError(
                f"{what}: {raw.strip()!r} collides with the {RESERVED_CLASSES} classes every keyword set has"
            )
        if not _ALLOWED.match(word):
            bad = sorted({c for c in word if not (c.isascii() and (c.isalpha() or c in " '-"))})
            hint = (
                f"characters {''.join(bad)!r} cannot be spoken reliably by every engine"
                if bad
                else "a word must start and end with a letter"
            )
            raise DataError(
                f"{what}: {raw.strip()!r}: {hint}; use ASCII letters, spaces, apostrophes and hyphens "
                f"(write numbers as words, e.g. 'seven')"
            )
        if word in out:
            raise DataError(f"{what}: {word!r} is given twice")
        out.append(word)
    return tuple(out)


def parse_keywords(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    words = parse_word_list(text, "--words")
    if len(words) > MAX_KEYWORDS:
        raise DataError(f"--words: {len(words)} keywords; at most {MAX_KEYWORDS}")
    for a in words:
        for b in words:
            if a != b and f" {a} " in f" {b} ":
                raise DataError(
                    f"--words: keyword {a!r} is part of keyword {b!r}: the partial-keyword negatives of "
                    f"{b!r} would sound like {a!r} and be labelled _unknown_; choose keywords that do not "
                    f"contain each other"
                )
    return words


def edit_distance(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def too_similar(word_ph: tuple[str, ...], kw_ph: tuple[str, ...]) -> bool:
    d = edit_distance(word_ph, kw_ph)
    return d == 0 or (d == 1 and len(kw_ph) >= 5)


def plan_negatives(keywords: tuple[str, ...], extra_negatives: tuple[str, ...] = ()) -> NegativePlan:
    """Other words and near misses for ``keywords`` (see the module doc); user negatives must not clash."""
    pool = list(dict.fromkeys(extra_negatives + WORD_POOL))
    parts = sorted({p for k in keywords for p in k.split()})
    ph = phonemes(list(dict.fromkeys(list(keywords) + parts + pool)))
    kw_ph = {k: ph[k] for k in keywords}
    for w in extra_negatives:
        for k in keywords:
            if w == k or too_similar(ph[w], kw_ph[k]):
                raise DataError(
                    f"--negatives: {w!r} sounds like keyword {k!r} (phonemes {' '.join(ph[w])} vs "
                    f"{' '.join(kw_ph[k])}); a negative must not be a keyword"
                )
    excluded = tuple(w for w in pool if w in keywords or any(too_similar(ph[w], p) for p in kw_ph.values()))
    others = tuple(w for w in pool if w not in excluded)
    near: list[tuple[str, ...]] = []
    for k in keywords:
        first = k.split()[0]
        fp, kp = ph[first], kw_ph[k]
        cands = [
            w
            for w in others
            if (len(fp) >= 2 and ph[w][:2] == fp[:2]) or (len(first) >= 2 and w[:2] == first[:2])
        ]
        cands += [p for p in k.split() if len(k.split()) > 1 and p not in keywords and p not in excluded]
        if len(cands) < 3:  # nothing starts like it: the closest words by phonemes
            cands += sorted(others, key=lambda w: (edit_distance(ph[w], kp), w))[: 3 - len(cands)]
        near.append(tuple(dict.fromkeys(c for c in cands if c != k)))
    if excluded:
        log.info("left out of the negatives (they sound like a keyword): %s", ", ".join(excluded))
    return NegativePlan(keywords=keywords, other_words=others, near_misses=tuple(near), excluded=excluded)
