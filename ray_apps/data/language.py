"""Language identification with py3langid, whose model ships inside the package (no download)."""

from __future__ import annotations

import re
from functools import lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

#: Language reported when there is too little prose to tell.
UNDETERMINED = "und"

_CODE_BLOCK = re.compile(r"```.*?(```|$)|`[^`\n]*`", re.DOTALL)
_MIN_LETTERS = 20
_MAX_CHARS = 4000


@lru_cache(maxsize=1)
def _identifier():
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """``(iso_code, confidence)`` of the prose in ``text``; code blocks are ignored."""
    prose = _CODE_BLOCK.sub(" ", text)[:_MAX_CHARS]
    if sum(ch.isalpha() for ch in prose) < _MIN_LETTERS:
        return UNDETERMINED, 0.0
    lang, confidence = _identifier().classify(prose)
    return lang, round(confidence, 4)
