"""Text written twice over: UTF-8 read as Windows-1252 by some tool and saved again as UTF-8
('BjÃ¶rn' for 'Björn', 'â€™' for '’'), as lists that passed through the wrong tool and mail
headers that name the wrong charset arrive. Pure functions; the readers decide when to use them.
"""
from __future__ import annotations

import re

# A UTF-8 sequence's lead byte as Windows-1252 shows it (Â..ß, à..ï), then its continuation
# bytes as it shows them (the five bytes it leaves undefined as Latin-1's controls)
_CONTINUATION = "".join(bytes([byte]).decode("cp1252", errors="ignore") or chr(byte) for byte in range(0x80, 0xC0))
DOUBLED = re.compile(f"[\u00c2-\u00df][{re.escape(_CONTINUATION)}]|[\u00e0-\u00ef][{re.escape(_CONTINUATION)}]{{2}}")


def read_back(text: str) -> str:
    """The text as its bytes were before Windows-1252 (or Latin-1) read them; `text` itself
    (the same object) when it cannot have been such text."""
    try:
        data = bytes(ord(char) if ord(char) < 0x100 else char.encode("cp1252")[0] for char in text)
        return data.decode("utf-8")
    except (UnicodeError, IndexError):
        return text


def undoubled(text: str) -> str:
    """One value read back when it shows such a sequence and reads back whole; else as it is."""
    return read_back(text) if not text.isascii() and DOUBLED.search(text) else text
