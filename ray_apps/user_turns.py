"""Checks on a user turn: the rollout resamples a simulated turn that fails one (each reason counted), and
`realm eval stats` reports how often real and simulated turns fail them."""

from __future__ import annotations

import re

# The simulator slipped into the assistant's voice: its openings, offers of help, saying what it is, refusals.
_ROLE_FLIP = re.compile(
    r"^(sure[,!.]|certainly[,!.]|of course[,!.]|absolutely[,!.]|as an ai\b|i'?d be (happy|glad) to\b|here('s| is| "
    r"are) (a|an|the|some)\b"
    r"|great question\b|i hope this helps\b|let me know if\b"
    r"|((hello|hi|hey)[!,.]*\s+)?how (can|may) i (help|assist) you\b"
    r"|i'?m (an ai|a chatbot|an? (helpful |virtual )?(ai )?assistant|a language model|here to (help|assist))\b"
    r"|as an? (helpful |virtual )?(ai|assistant|language model)\b"
    r"|i'?m sorry,? but i (can'?t|cannot|am unable)\b)",
    re.I,
)
# ... or said anywhere in the turn what only an assistant says of itself.
_ASSISTANT_SELF = re.compile(
    r"\b(i'?m here to (help|assist)|how (can|may) i (help|assist) you|as an ai\b|i'?m (an ai|a chatbot|an ai "
    r"assistant|a language model)\b)",
    re.I,
)
# A closing that carries nothing: the simulator should end with the end marker instead.
_POLITE_CLOSING = re.compile(
    r"^(ok(ay)?|great|cool|perfect|awesome|nice|got it|(thanks?|thank you)( (so|very) much)?( a "
    r"lot)?|bye|goodbye|have a (nice|good|great) day)"
    r"([,!. ]+(ok(ay)?|great|thanks?|thank you|bye|goodbye))*[\s!.,:)]*$",
    re.I,
)
_SPACE = re.compile(r"\s+")


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text.strip().lower())


def rejection(text: str, earlier_user_turns: list[str]) -> str | None:
    """Why a user turn is unusable (``empty``, ``role_flip``, ``repeated_turn``, ``polite_closing``), or None."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    if _ROLE_FLIP.match(stripped) or _ASSISTANT_SELF.search(stripped):
        return "role_flip"
    if _normal(stripped) in {_normal(t) for t in earlier_user_turns}:
        return "repeated_turn"
    if _POLITE_CLOSING.match(stripped):
        return "polite_closing"
    return None
