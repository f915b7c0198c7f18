"""Benchmark: reading a list saved by Excel (.xlsx) at growing sizes, our reader next to
openpyxl's own read-only reading of the same file, each in a child process of its own: wall time
and peak RSS. Flat memory means the peak stays put as the rows grow tenfold.

    .venv/bin/python bench/read_workbook.py [--rows 100000 1000000] [--keep DIR]

The workbook is written as Excel writes one: every text cell an index into the shared strings
table, each person's name and address a string of their own (openpyxl writes its text inline,
so a workbook it writes would not show what Excel's cost). With --no-dimension the sheet does
not record its size, as some writers leave it out. Never run as a test.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["Förnamn", "Efternamn", "E-post", "Mobil", "Företag", "Titel", "Ort"]
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
TYPES = "application/vnd.openxmlformats-officedocument.spreadsheetml"


def write_workbook(path: Path, rows: int, dimension: bool = True) -> None:
    """An Excel-style workbook of `rows` people, written streaming (shared strings in memory)."""
    strings: dict[str, int] = {}

    def shared(value: str) -> int:
        return strings.setdefault(value, len(strings))

    def row(number: int, values: list[str]) -> str:
        return f'<row r="{number}">' + "".join(
            f'<c r="{chr(65 + column)}{number}" t="s"><v>{shared(value)}</v></c>'
            for column, value in enumerate(values)) + "</row>"

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            size = f'<dimension ref="A1:G{rows + 1}"/>' if dimension else ""
            sheet.write(f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}">{size}<sheetData>'.encode())
            sheet.write(row(1, HEADER).encode())
            for n in range(rows):
                sheet.write(row(n + 2, [f"Anna{n % 5000}", f"Berg{n}", f"anna.berg{n}@firma{n % 1000}.se",
                                        f"070{n:07d}", f"Firma {n % 20000} AB", "VD", f"Ort{n % 300}"]).encode())
            sheet.write(b"</sheetData></worksheet>")
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as table:
            table.write(f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{MAIN}" count="{len(strings)}" '
                        f'uniqueCount="{len(strings)}">'.encode())
            for value in strings:
                table.write(f"<si><t>{escape(value)}</t></si>".encode())
            table.write(b"</sst>")
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{TYPES}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{TYPES}.worksheet+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{TYPES}.sharedStrings+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            f'2006/relationships"><Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"))
        archive.writestr("xl/workbook.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>'
            '<sheet name="Leads" sheetId="1" r:id="rId1"/></sheets></workbook>'))
        archive.writestr("xl/_rels/workbook.xml.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            f'2006/relationships"><Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/></Relationships>'))


def read(kind: str, path: Path) -> None:
    """In the child: read every row, print rows, seconds and peak RSS (MB)."""
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    if kind == "ours":
        from crm_ingest.connectors.listfile import ListFile

        rows = sum(1 for _ in ListFile(path).fetch())
    else:  # openpyxl as its documentation says to read a big file
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
        rows = sum(1 for _ in book.worksheets[0].iter_rows(values_only=True)) - 1
        book.close()
    print(rows, round(time.perf_counter() - started, 2), peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM, not getrusage's ru_maxrss, which a child started by
    fork and exec inherits from its parent (here the writer of the workbook, which held every
    string)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-dimension", action="store_true", help="the sheet does not record its size")
    parser.add_argument("--keep", type=Path, default=None, help="write the workbooks here and keep them")
    parser.add_argument("--_read", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._read:
        read(args._read[0], Path(args._read[1]))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="crm_bench_xlsx_"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{'rows':>9} | {'method':<28} | {'seconds':>8} | {'peak RSS MB':>11}")
    for rows in args.rows:
        path = folder / f"excel-{rows}{'-nodim' if args.no_dimension else ''}.xlsx"
        if not path.exists():
            write_workbook(path, rows, dimension=not args.no_dimension)
        for kind, label in (("ours", "ours: ListFile"), ("openpyxl", "openpyxl read-only iter_rows")):
            out = subprocess.run([sys.executable, __file__, "--_read", kind, str(path)], capture_output=True,
                                 text=True, check=True).stdout.split()
            count, seconds, peak = int(out[0]), float(out[1]), float(out[2])
            assert count == rows, (kind, count, rows)
            print(f"{rows:>9,} | {label:<28} | {seconds:>8.1f} | {peak:>11.1f}", flush=True)
        if args.keep is None:
            path.unlink()


if __name__ == "__main__":
    main()
