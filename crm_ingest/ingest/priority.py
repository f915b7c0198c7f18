"""A case's priority from its text, in English and Swedish: high for an outage, data loss, a
security problem, a legal threat or explicit urgency; low for cosmetic matters, how-to questions
and suggestions; normal otherwise. Words are matched on folded text (case and diacritics
dropped: 'akut', 'AKUT', 'säkerhet' = 'sakerhet'), as word beginnings where inflections and
compounds follow ('hackad', 'hackade'; 'dataförlust').
"""
from __future__ import annotations

import re

from .matching import fold

# (why, pattern on folded text). Each pattern's words start at a word boundary.
HIGH = (
    ("outage", r"\b(outage|(is|are|was|were|went|been|goes|go) down\b|down (since|for|again)\b|not working at all|nothing works|cannot log ?in at all"
               r"|service unavailable|ligger nere|nere sedan|gar inte att (logga in|komma at|anvanda)|avbrott"
               r"|driftstopp|fungerar inte alls|funkar inte alls|inget fungerar|ingenting fungerar|totalt stopp"
               r"|stannat|kraschat|crash)"),
    ("data loss", r"\b(data loss|lost (all )?(our |my )?data|data (is|are|was|were) (gone|lost|deleted)"
                  r"|deleted (all|everything)|dataforlust|forlorat (all |alla )?(data|filer|information)"
                  r"|data(n)? (ar|har) (borta|forsvunnit|raderats)|allt ar borta|raderat allt)"),
    ("security", r"\b(security|breach|hacked|hacke[dr]|phishing attack|compromised|unauthori[sz]ed"
                 r"|leak(ed)?|sakerhet|intrang|hackad|hackat|kapad|kapat|dataintrang|lackt|obehorig)"),
    ("legal threat", r"\b(lawyer|attorney|legal action|sue\b|suing|court|lawsuit|small claims|advokat"
                     r"|jurist|stamning|stamma|tingsratt|arn\b|allmanna reklamationsnamnden"
                     r"|konsumentverket|kronofogden|anmal(a|er)? (er|dig|bolaget))"),
    ("urgent", r"\b(urgent|urgently|asap|emergency|immediately|right now|critical|akut|brad(skande)?"
               r"|omedelbart|snarast|genast|kritiskt?)"),
)
LOW = (
    ("cosmetic", r"\b(typo|spelling|misspel|cosmetic|font|colou?r of|alignment|stavfel|felstavat|"
                 r"kosmetisk|typsnitt)"),
    ("how-to", r"\b(how (do|can|to) (i|we|you)|is it possible to|where (do|can) i find|hur (gor|kan|ska)"
               r"|var hittar|gar det att)"),
    ("suggestion", r"\b(suggestion|feature request|would be nice|it would be great if|wish(list)?"
                   r"|forslag|onskemal|onskar|vore (bra|smidigt|kul))"),
)
_HIGH = [(why, re.compile(p)) for why, p in HIGH]
_LOW = [(why, re.compile(p)) for why, p in LOW]


def case_priority(text: str | None) -> tuple[str, str | None]:
    """('high' | 'normal' | 'low', the reason or None). High wins over low."""
    folded = fold(text or "")
    for why, pattern in _HIGH:
        if pattern.search(folded):
            return "high", why
    for why, pattern in _LOW:
        if pattern.search(folded):
            return "low", why
    return "normal", None
