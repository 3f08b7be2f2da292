"""Repair of mis-decoded text ("mojibake"): UTF-8 bytes that were read as Latin-1 or Windows-1252, so that "–"
became "â€“" (or "â\\x80\\x93"), "é" became "Ã©" and "’" became "â€™". Common in scraped corpora (mr's own texts).

Only a run of characters that is exactly the Latin-1/Windows-1252 reading of a valid UTF-8 multi-byte sequence is
replaced, by the character those bytes encode; everything else (accents, symbols, other scripts) is left as it is.
Nothing here writes to the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Windows-1252 puts printable characters at bytes 0x80-0x9F, where Latin-1 has control characters; a mis-decoded text
# holds either, depending on which of the two read it
_CP1252 = {bytes([b]).decode("cp1252"): b for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}
_CONT = "[\x80-\xbf" + "".join(re.escape(c) for c in _CP1252) + "]"  # a continuation byte, as either codec shows it
# a UTF-8 lead byte (as Latin-1 shows it: Â-ß, à-ï, ð-ô) followed by its continuation bytes
_SEQUENCE = re.compile(f"[\xc2-\xdf]{_CONT}|[\xe0-\xef]{_CONT}{{2}}|[\xf0-\xf4]{_CONT}{{3}}")


def _byte(c: str) -> int:
    return _CP1252.get(c, ord(c))


def _decoded(match: re.Match[str]) -> str:
    raw = bytes(_byte(c) for c in match.group())
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # looked like a sequence but is not valid UTF-8 (e.g. an overlong form): keep it
        return match.group()


def repair(text: str) -> str:
    """`text` with every mis-decoded UTF-8 sequence replaced by its character; unchanged when it has none.
    Repeated until stable, for text that was mis-decoded twice."""
    for _ in range(3):
        fixed = _SEQUENCE.sub(_decoded, text)
        if fixed == text:
            break
        text = fixed
    return text


def repairs(texts: Iterable[str], examples: int = 3, width: int = 30) -> tuple[int, list[tuple[str, str]]]:
    """How many of `texts` `repair` would change, and the first `examples` of them as (before, after): `width`
    characters either side of the first change, control characters written as \\xNN so they can be seen."""
    count, shown = 0, []
    for t in texts:
        fixed = repair(t)
        if fixed != t:
            count += 1
            if len(shown) < examples:
                shown.append(_around_first_change(t, fixed, width))
    return count, shown


def _around_first_change(before: str, after: str, width: int) -> tuple[str, str]:
    i = next((k for k, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))
    start, shorter = max(0, i - width), len(before) - len(after)

    def window(t: str, end: int) -> str:
        part = "".join(f"\\x{ord(c):02x}" if 0x80 <= ord(c) < 0xA0 else c for c in t[start:end])
        return ("…" if start else "") + part + ("…" if end < len(t) else "")

    return window(before, i + width), window(after, max(i + 1, i + width - shorter))
