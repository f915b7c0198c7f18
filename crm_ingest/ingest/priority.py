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
    ("outage", r"\b(outage|(is|are|was|were|went|been|goes|go) down\b|down (since|for|again)\b|offline"
               r"|not working at all|nothing works|no signal|no service|no connection|locked out"
               r"|can ?n?o?t (access|log ?in|pay|work)|service unavailable|ligger (ni |det )?nere|legat nere"
               r"|nere sedan|gar inte att (logga in|komma at|anvanda)|avbrott|driftstopp|fungerar inte alls"
               r"|funkar inte alls|inget fungerar|ingenting fungerar|totalt stopp|utan (telefoni|internet|natverk"
               r"|tackning|el|strom)|ingen tackning|stannat|kraschat|crash)"),
    ("data loss", r"\b(data loss|lost (all |a day of |our |my )*(data|work|files|notes)|(data|files|notes|work)"
                  r" (is|are|was|were|has|have) (gone|lost|deleted|vanished)|vanished|reverted|deleted (all|everything)"
                  r"|dataforlust|forlorat (all |alla )?(data|filer|information|arbete)|(data|filer)(n|na)? (ar|har)"
                  r" (borta|forsvunnit|raderats)|allt ar borta|raderat (allt|hela)|rakat radera)"),
    ("security", r"\b(security|breach|hacked|hacke[dr]|phishing|compromised|unauthori[sz]ed|data leak|leaked (data|passwords|details)"
                 r"|confidential|someone (logged|has logged) in|identity theft|sakerhet|intrang|inbrott|hackad"
                 r"|hackat|kapad|kapat|dataintrang|lackt|obehorig|natfiske|personuppgiftsincident"
                 r"|loggat in pa mitt konto|tillgang till andra)"),
    ("legal threat", r"\b(lawyer|attorney|solicitor|legal action|we act for|sue\b|suing|court|lawsuit|small claims"
                     r"|advokat|jurist|stamning|stamma|tingsratt|arn\b|allmanna reklamationsnamnden"
                     r"|konsumentverket|kronofogden|anmal(a|er)? (er|dig|bolaget))"),
    ("urgent", r"\b(urgent|urgently|asap|emergency|immediately|right now|critical|akut|brad(skande)?"
               r"|omedelbart|omgaende|snarast|genast|kritiskt?|viktigt)"),
)
LOW = (
    ("cosmetic", r"\b(typo|spelling|misspel|cosmetic|font|colou?r of|alignment|404|broken link|out of date"
                 r"|instead of|not a big deal|small thing|minor|fyi|stavfel|felstav|kosmetisk|typsnitt"
                 r"|liten grej|smasak)"),
    ("how-to", r"\b(how (do|can|should|to|often|long|much)|is there a (way|guide)|where (do|can) i"
               r"|what s the (difference|best|weight)|step by step|can (i|we|you) (set|change|add|use|schedule)"
               r"|hur\b|finns det (ett satt|nagon guide|en guide)|kan man\b|vad ar skillnaden|var hittar"
               r"|gar det att)"),
    ("suggestion", r"\b(suggestion|feature request|would be (nice|great)|it would be great if|could you add"
                   r"|please add|wish(list)?|forslag|onskemal|onskar|vore (bra|smidigt|kul))"),
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
