"""Random usernames for the naming property tests: seeded, reproducible, hostile on purpose.

JupyterHub hands the spawner whatever its authenticator produced (usually normalised: many authenticators
lowercase, some do not), so the naming must be injective on anything it may be given: unicode, dots, slashes,
``..``, NUL, very long names, names differing only in case, and names that look like another name's encoding.
Lone surrogates are left out: JupyterHub cannot store them (its database encodes names as UTF-8).
"""

from __future__ import annotations

import random
import string

from kubespawner.slugs import escape_slug, safe_slug

ASCII = string.ascii_letters + string.digits + "._-@+~ /\\:%$#!'\"`{}()[]<>,;=?*&|^"
PIECES = [".", "..", "/", "../", "/..", "-", "--", "---", "_", "@", "\0", " ", "\t", "\n", "{", "}", "{username}",
          "%2e", "-2e", "-2d", "x---", "é", "É", "ß", "ẞ", "İ", "ı", "ﬁ", "Ω", "Ω", "e\u0301", "😀", "\u200b",
          "\ufeff", "\u202e", "ä", "a\u0308", "日本", "Ⅻ", "ǅ", "K", "K", "Å", "Å"]


def _char(rng: random.Random) -> str:
    while True:
        c = rng.randrange(0x110000)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def _word(rng: random.Random, max_len: int) -> str:
    kind = rng.random()
    n = rng.randint(1, max_len)
    if kind < 0.35:
        return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))
    if kind < 0.6:
        return "".join(rng.choice(ASCII) for _ in range(n))
    if kind < 0.8:
        return "".join(rng.choice(PIECES) if rng.random() < 0.5 else rng.choice(ASCII) for _ in range(n))
    return "".join(_char(rng) if rng.random() < 0.7 else rng.choice(PIECES) for _ in range(n))


def _variants(rng: random.Random, name: str) -> list[str]:
    """Names that a careless scheme would merge with ``name``."""
    out = [name.upper(), name.lower(), name.swapcase(), name.title(), name.casefold(),
           escape_slug(name), safe_slug(name), name + ".", "." + name, name.replace(".", "-"),
           name.replace("-", "."), name.replace("/", "-2f"), name + "-"]
    if len(name) > 1:
        i = rng.randrange(1, len(name))
        out.append(name[:i] + "/" + name[i:])
        out.append(name[:i] + "\0" + name[i:])
    return out


def usernames(count: int, seed: int = 20241122) -> list[str]:
    """``count`` distinct non-empty names (JupyterHub refuses the empty name), deterministic for a seed."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    fixed = [".", "..", "...", "/", "//", "../..", "./a", "a/..", "a/b", "\0", "a\0b", "A", "a", "-", "--", "-2d",
             "x", "x---", "jupyter", "shared", "homes", "lost+found", "é", "e\u0301", "İ", "i̇", "ß", "ss", "SS",
             "a" * 63, "a" * 64, "a" * 255, "A" * 64, "😀" * 255, "\u202egnp.exe"]
    for name in fixed:
        seen.setdefault(name)
    while len(seen) < count:
        r = rng.random()
        if r < 0.02:  # very long: up to the 255 characters of JupyterHub's column and beyond
            name = _word(rng, 1000)
        elif r < 0.12:  # emails and realm-qualified names
            name = f"{_word(rng, 12)}@{_word(rng, 8)}.{rng.choice(['com', 'edu', 'org'])}"
        else:
            name = _word(rng, 40)
        if not name:
            continue
        seen.setdefault(name)
        if rng.random() < 0.2:
            for v in _variants(rng, name):
                if v and len(seen) < count:
                    seen.setdefault(v)
    return list(seen)[:count]
