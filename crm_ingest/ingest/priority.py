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
_DOWN_THINGS = (r"(production|prod|site|website|web ?shop|webshop|shop|server|servers|system|systems|app|api|network"
                r"|email|mail|portal|platform|service|checkout|database)")
HIGH = (
    ("outage", r"\b(outage|(is|are|was|were|went|been|goes|go) down\b|down (since|for|again)\b"
               rf"|{_DOWN_THINGS} (is |are )?down\b|(is|are|went|gone|been) offline|offline (since|for|sedan)\b"
               r"|not working at all|nothing works|everything is (broken|down)|no signal|no service|no connection"
               r"|locked out|can ?n?o?t (access|log ?in|pay|work|take payments|check out)|no ?one can work"
               r"|nobody can work|service unavailable|ligger (ni |det )?nere|legat nere|nere sedan|(ar|blivit) nere\b"
               r"|gar inte att (logga in|komma at|anvanda|betala)|kan inte (logga in|komma at|jobba|arbeta|ta betalt)"
               r"|ingen kan (jobba|arbeta|logga in)|avbrott|driftstopp|fungerar inte alls|funkar inte alls"
               r"|inget (fungerar|funkar)|ingenting (fungerar|funkar)|totalt stopp|star still|utan (telefoni|internet"
               r"|natverk|tackning|el|strom)|ingen tackning|stannat|krasch|crash|utelast"
               r"|(kassan|kassasystemet|betalningen|betalterminalen|kortterminalen) (funkar|fungerar) inte"
               r"|(payroll|lonekorning)\w* (failed|misslyckades)|(not|inte|ingen) (get paid|fa lon|lon))"),
    ("data loss", r"\b(data loss|lost (all |a day of |our |my )*(data|work|files|notes|records|customers|orders)"
                  r"|(data|files|notes|work|records|orders|emails|customers) (is|are|was|were|has|have) (all )?"
                  r"(gone|lost|deleted|vanished)|vanished|(was|were|has been|have been|got) reverted"
                  r"|deleted (all|everything)|dataforlust|forlorat (all |alla )?(data|filer|information|arbete)"
                  r"|(data|filer)(n|na)? (ar|har) (borta|forsvunnit|raderats)|allt ar borta|raderat (allt|hela)"
                  r"|rakat radera|blivit av med (all|alla))"),
    ("security", r"\b(security (issue|problem|breach|incident|hole|flaw|vulnerability|concern)|breach|hacked"
                 r"|hacke[dr]|phishing|security team|compromised|unauthori[sz]ed|data leak|leaked (data|passwords|details)"
                 r"|someone (logged|has logged) in|someone (has|had|got) access|identity theft"
                 r"|sakerhets(problem|hal|brist|lucka|incident|risk)|intrang|inbrott|hackad|hackat|kapad|kapat"
                 r"|dataintrang|lackt|obehorig|natfiske|personuppgiftsincident|loggat in pa mitt konto"
                 r"|tillgang till andra|(kommit|kom) at (vart|mitt|vara|mina) )"),
    ("legal threat", r"\b(lawyer|attorney|solicitor|legal action|we act for|sue\b|suing|courts?\b|lawsuit"
                     r"|small claims|advokat|jurist|stamning|stamma (er|dig|bolaget|foretaget)|stammer (er|dig)"
                     r"|tingsratt|arn\b|allmanna reklamationsnamnden|konsumentverket|kronofogden"
                     r"|anmal(a|er)? (er|dig|bolaget))"),
    ("urgent", r"\b(urgent|urgently|asap|emergency|immediately|right now|critical(?! of)|akut|bradsk|bratt(om)?\b"
               r"|omedelbart|omgaende|snarast|genast|kritiskt?|jatteviktigt|mycket viktigt|viktigt!)"),
)
LOW = (
    ("cosmetic", r"\b(typo|spelling|misspel|cosmetic|font|colou?r of|alignment|404|broken link|out of date"
                 r"|not a big deal|small thing|minor|fyi|stavfel|felstav|kosmetisk|typsnitt|liten grej|smasak)"),
    ("how-to", r"\b(how (do|can|should) (i|we|you|one)\b|how to\b|how often|how long does|how much does"
               r"|is there a (way|guide)|where (do|can) i|what s the (difference|best|weight)|step by step"
               r"|can (i|we|you) (set|change|add|use|schedule)|hur (man|\w+ (jag|man))\b"
               r"|finns det (ett satt|nagon guide|en guide)|kan man\b|vad ar skillnaden|var hittar|gar det att)"),
    ("suggestion", r"\b(suggestion|feature request|would be (nice|great)|it would be great if|could you add"
                   r"|please add|wishlist|forslag|onskemal|vore (bra|smidigt|kul))"),
)
# Urgency said not to be there ('inte akut', 'not urgent', 'no rush'): read before the rules.
_NOT_URGENT = re.compile(r"\b(not|no|isn t|is not|inte|ej|inget|ingen|inte sa|inte sarskilt|nothing)\s+"
                         r"(so |that |very |super |jatte |sa |sarskilt )?(urgent|critical|an emergency|rush|hurry"
                         r"|akut|bradsk\w*|kritiskt?|viktigt|bratt\w*)\b")
_HIGH = [(why, re.compile(p)) for why, p in HIGH]
_LOW = [(why, re.compile(p)) for why, p in LOW]


def case_priority(text: str | None) -> tuple[str, str | None]:
    """('high' | 'normal' | 'low', the reason or None). High wins over low."""
    folded = _NOT_URGENT.sub(" ", fold(text or ""))
    for why, pattern in _HIGH:
        if pattern.search(folded):
            return "high", why
    for why, pattern in _LOW:
        if pattern.search(folded):
            return "low", why
    return "normal", None
